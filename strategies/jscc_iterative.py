"""Seed 001's iterative benchmark as a strategy."""

from __future__ import annotations

from strategies.jscc_fedavg import Assignment, JSCCFedAvg


class IterativeFedAvg(JSCCFedAvg):
    """Round r trains the encoder jointly with client (r - 1) mod N's decoder only, cycling through the
    clients in partition order (the paper: one epoch per user); the others' decoders are not touched."""

    def assign(self, server_round: int) -> list[Assignment]:
        clients = sorted(self.nodes)
        return [Assignment(clients[(server_round - 1) % len(clients)], "iterative")]

    def cycle_rounds(self) -> int:
        """One round per client: a round's scores swing with whose turn it was (the others forget)."""
        return len(self.nodes)
