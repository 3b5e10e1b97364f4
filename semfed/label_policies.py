"""The label-handling policies (seed 000 V-C; docs/labels.md): the one table of `label-handling` names,
each entry saying what the policy does in a client's round. Torch-free: the config reads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelPolicy:
    """scores: from round label-warmup-rounds + 1 on, every label gets a rank confidence before each
    epoch and labels under label-confidence-threshold sit that epoch out (semfed.retrieval.training).
    keeps_ledger: a per-label ledger (a file per round, semfed.retrieval.ledger_files) records each label's
    confidence every round and prunes the labels whose mean over the last label-prune-rounds rounds ranks
    like chance (semfed.retrieval.labels).
    uses_consensus: the ledger's cut uses the federation's null, the clients' decoy-confidence histograms
    pooled (strategies.label_consensus); it needs a method that aggregates."""

    scores: bool
    keeps_ledger: bool
    uses_consensus: bool


LABEL_POLICIES = {
    # every label trains every epoch
    "none": LabelPolicy(scores=False, keeps_ledger=False, uses_consensus=False),
    # per-epoch masking of low-confidence labels, no memory across rounds
    "exclusion": LabelPolicy(scores=True, keeps_ledger=False, uses_consensus=False),
    # + the ledger: a client prunes the labels that rank like its own decoys (chance), round after round
    "local": LabelPolicy(scores=True, keeps_ledger=True, uses_consensus=False),
    # + the federation's consensus on what chance looks like (the proposed scheme)
    "federated": LabelPolicy(scores=True, keeps_ledger=True, uses_consensus=True),
}
