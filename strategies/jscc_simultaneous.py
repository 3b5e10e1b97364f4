"""Seed 001's simultaneous benchmark as a strategy."""

from __future__ import annotations

from strategies.jscc_fedavg import Assignment, JSCCFedAvg


class SimultaneousFedAvg(JSCCFedAvg):
    """Every round every client trains a copy of the encoder with its own decoder on its own loss; the
    server averages the encoder copies (equal weights: every client reports the same num-examples)
    and keeps each decoder from its own client.

    The paper updates the encoder from the sum of all users' losses. For one local SGD step of size
    lr from the same encoder theta, the average of theta - lr * grad L_i is theta - (lr / N) * grad sum_i L_i:
    a step on the summed loss (with lr / N). With several local steps, or Adam, it agrees to first order
    in lr only (the usual FedAvg vs. large-batch gap).
    """

    def assign(self, server_round: int) -> list[Assignment]:
        return [Assignment(pid, "simultaneous") for pid in sorted(self.nodes)]
