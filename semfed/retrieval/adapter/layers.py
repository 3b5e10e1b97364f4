"""Message-passing layers of the adapter (PyTorch Geometric)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax


class KernelAttentionConv(MessagePassing):
    """Scaled dot-product attention over intra-modal edges, biased by the Gaussian kernel weight.

    alpha_ij = softmax_j(scale * <q_i, k_j> / sqrt(F) + log w_ij); out_i = sum_j alpha_ij v_j.
    """

    def __init__(self, width: int, scale: float):
        super().__init__(aggr="add")
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.scale = scale / math.sqrt(width)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        """h: [M, F] nodes; edge_index: [2, E] (source, target); edge_weight: [E] in (0, 1]. Returns [M, F]."""
        return self.propagate(edge_index, q=self.query(h), k=self.key(h), v=self.value(h), w=edge_weight)

    def message(self, q_i, k_j, v_j, w, index, ptr, size_i):
        logits = self.scale * (q_i * k_j).sum(-1) + torch.log(w.clamp_min(1e-12))
        return softmax(logits, index, ptr, size_i).unsqueeze(-1) * v_j


class ConceptMeanConv(MessagePassing):
    """Mean over a node's selected SKB concepts of (similarity x concept value): cross-modal pooling."""

    def __init__(self):
        super().__init__(aggr="mean", flow="source_to_target")

    def forward(self, concept_values: torch.Tensor, edge_index: torch.Tensor, edge_score: torch.Tensor, num_nodes: int) -> torch.Tensor:
        """concept_values: [K, F]; edge_index: [2, E] (concept, node); edge_score: [E]. Returns [num_nodes, F]."""
        return self.propagate(edge_index, x=(concept_values, None), s=edge_score, size=(concept_values.shape[0], num_nodes))

    def message(self, x_j, s):
        return s.unsqueeze(-1) * x_j
