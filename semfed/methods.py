"""The training methods a retrieval run can use: the proposed scheme and the baselines of
seed 000 V-D, each a set of switches over the same data, encoders and budget."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """model: 'graph' (per-encoder stems + GNN adapter) or 'uniform' (one MLP head per modality).
    concept_edges: the GNN links nodes to SKB concepts. training: 'federated' (keyed FedAvg),
    'local' (each client keeps its own model, never averaged) or 'pooled' (one model on the
    union of the shards, no clients). Every method trains the same losses."""

    model: str
    concept_edges: bool
    training: str


METHODS = {
    # seed 000 V: per-encoder stems, GNN with intra-modal and SKB concept edges, SKB alignment
    "proposed": Method("graph", concept_edges=True, training="federated"),
    # [7] single-modal FedAvg: a uniform lightweight head per modality, no graph
    "single-modal": Method("uniform", concept_edges=False, training="federated"),
    # [15] FedGNN-style cross-modal adapter: the GNN over heterogeneous stems, intra-modal edges only
    # (its graph is not grounded in the SKB's concepts)
    "fedgnn": Method("graph", concept_edges=False, training="federated"),
    # the proposed model trained by each user alone
    "local-only": Method("graph", concept_edges=True, training="local"),
    # the proposed model on the pooled shards: the upper bound
    "centralised": Method("graph", concept_edges=True, training="pooled"),
}
