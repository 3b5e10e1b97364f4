"""The training methods a retrieval run can use (`method`): the proposed scheme and the baselines of
seed 000 V-D, each a set of switches over the same data, encoders, losses and budget. Torch-free:
the config reads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """model: 'graph' (per-encoder stems + GNN adapter) or 'uniform' (one MLP head per modality,
    semfed.retrieval.participants.build_adapter). concept_edges: the GNN links nodes to SKB concepts.
    aggregates: the server averages the clients' updates (keyed FedAvg or a robust rule); without,
    each client keeps its own model (strategies.local_only). pooled: no clients; one model trains
    in the ServerApp on the union of the shards (semfed.retrieval.centralised)."""

    model: str
    concept_edges: bool
    aggregates: bool
    pooled: bool = False

    @property
    def resumable(self) -> bool:
        """Only the averaged global model is checkpointed: per-client or pooled state is not."""
        return self.aggregates


METHODS = {
    # seed 000 V: per-encoder stems, GNN with intra-modal and SKB concept edges, SKB alignment
    "proposed": Method("graph", concept_edges=True, aggregates=True),
    # [7] single-modal FedAvg: a uniform lightweight head per modality, no graph
    "single-modal": Method("uniform", concept_edges=False, aggregates=True),
    # [15] FedGNN-style cross-modal adapter: the GNN over heterogeneous stems, intra-modal edges only
    # (its graph is not grounded in the SKB's concepts)
    "fedgnn": Method("graph", concept_edges=False, aggregates=True),
    # the proposed model trained by each user alone
    "local-only": Method("graph", concept_edges=True, aggregates=False),
    # the proposed model on the pooled shards: the upper bound
    "centralised": Method("graph", concept_edges=True, aggregates=False, pooled=True),
}
