"""Seed 001's anchor-aided two-stage framework as a strategy."""

from __future__ import annotations

from strategies.jscc_fedavg import Assignment, JSCCFedAvg


class AnchorFedAvg(JSCCFedAvg):
    """Rounds 1..stage1_rounds (stage 1): only the anchor client trains, the encoder jointly with its
    symmetric decoder. Later rounds (stage 2): every client trains its own decoder against the frozen
    encoder, in parallel, and returns only its decoder; the encoder stays bit-identical."""

    def __init__(self, nodes: dict[int, int], stage1_rounds: int, anchor: int, **kwargs):
        super().__init__(nodes, **kwargs)
        self.stage1_rounds, self.anchor = stage1_rounds, anchor

    def assign(self, server_round: int) -> list[Assignment]:
        if server_round <= self.stage1_rounds:
            return [Assignment(self.anchor, "stage1")]
        return [Assignment(pid, "stage2") for pid in sorted(self.nodes)]
