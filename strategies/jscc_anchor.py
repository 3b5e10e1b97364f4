"""Seed 001's anchor-aided two-stage framework as a strategy."""

from __future__ import annotations

from strategies.jscc_fedavg import Assignment, JSCCFedAvg


class AnchorFedAvg(JSCCFedAvg):
    """Rounds 1..stage1_rounds (stage 1; fewer if it plateaus first, end_phase): only the anchor client
    trains, the encoder jointly with its symmetric decoder. Later rounds (stage 2): every client trains its own decoder against the frozen
    encoder, in parallel, and returns only its decoder; the encoder stays bit-identical."""

    def __init__(self, nodes: dict[int, int], stage1_rounds: int, anchor: int, **kwargs):
        super().__init__(nodes, **kwargs)
        self.stage1_rounds, self.anchor = stage1_rounds, anchor

    def assign(self, server_round: int) -> list[Assignment]:
        if server_round <= self.stage1_rounds:
            return [Assignment(self.anchor, "stage1")]
        return [Assignment(pid, "stage2") for pid in sorted(self.nodes)]

    def phase(self, server_round: int) -> str:
        return "stage1" if server_round <= self.stage1_rounds else "stage2"

    def scored_partitions(self, server_round: int) -> list[int]:
        """Stage 1 trains the anchor's decoder only, and is scored by it."""
        return [self.anchor] if server_round <= self.stage1_rounds else sorted(self.nodes)

    def end_phase(self, server_round: int) -> bool:
        """Stage 1 ends early (stage 2 starts next round); stage 2 ends the run."""
        if server_round <= self.stage1_rounds:
            self.stage1_rounds = server_round
            return True
        return False
