"""The training methods a retrieval run can use: the proposed scheme and the baselines of
seed 000 V-D, each a set of switches over the same data, encoders and budget."""

from __future__ import annotations

from dataclasses import dataclass

from semfed.config import ClientProfile


@dataclass(frozen=True)
class Method:
    """model: 'graph' (per-encoder stems + GNN adapter) or 'uniform' (one MLP head per modality).
    concept_edges: the GNN links nodes to SKB concepts. skb_alignment: the SKB alignment loss
    term is trained. training: 'federated' (keyed FedAvg), 'local' (each client keeps its own
    model, never averaged) or 'pooled' (one model on the union of the shards, no clients)."""

    model: str
    concept_edges: bool
    skb_alignment: bool
    training: str

    def client_trains(self, profile: ClientProfile) -> bool:
        """Whether this client has any loss to train: the SKB alignment term, or the triplet
        term, which needs both modalities."""
        return self.skb_alignment or len(profile.encoders) == 2


METHODS = {
    # seed 000 V: per-encoder stems, GNN with intra-modal and SKB concept edges, SKB alignment
    "proposed": Method("graph", concept_edges=True, skb_alignment=True, training="federated"),
    # [7] single-modal FedAvg: a uniform lightweight head per modality, no graph, same losses
    "single-modal": Method("uniform", concept_edges=False, skb_alignment=True, training="federated"),
    # [15] FedGNN-style: the GNN over heterogeneous stems without the SKB (no concept edges, no
    # alignment loss): only cross-modal pairs teach it, so single-modality users have nothing to train
    "fedgnn": Method("graph", concept_edges=False, skb_alignment=False, training="federated"),
    # the proposed model trained by each user alone
    "local-only": Method("graph", concept_edges=True, skb_alignment=True, training="local"),
    # the proposed model on the pooled shards: the upper bound
    "centralised": Method("graph", concept_edges=True, skb_alignment=True, training="pooled"),
}
