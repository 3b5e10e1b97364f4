"""Graph construction over padded node sets: Gaussian-kernel top-k edges and top-k SKB edges."""

from __future__ import annotations

import torch


def gaussian_knn_edges(x: torch.Tensor, mask: torch.Tensor, k: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Intra-modal edges: each node keeps its k most similar other nodes of the same sample.

    x: [B, N, F] node features; mask: [B, N] bool (False = padding).
    Similarity w_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)); self-pairs and padding are excluded.
    Returns edge_index [2, E] (row 0 = source j, row 1 = target i) over the flattened
    B*N nodes, and edge_weight [E] = w_ij. A node with fewer than k valid neighbours
    keeps all of them.
    """
    b, n, _ = x.shape
    weight = torch.exp(-torch.cdist(x, x).pow(2) / (2.0 * sigma**2))  # [B, N, N]
    valid = mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=x.device)
    weight = weight.masked_fill(~valid, -1.0)
    k = min(k, n - 1)
    if k < 1:
        return torch.empty(2, 0, dtype=torch.long, device=x.device), x.new_empty(0)
    top_w, top_j = weight.topk(k, dim=2)  # [B, N, k]
    keep = top_w >= 0
    offset = (torch.arange(b, device=x.device) * n)[:, None, None]
    target = (torch.arange(n, device=x.device)[None, :, None] + offset).expand(b, n, k)
    source = top_j + offset
    return torch.stack([source[keep], target[keep]]), top_w[keep]


def topk_concept_edges(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Node-to-SKB edges: each valid node links to its k highest-scoring concepts.

    scores: [B, N, K] node-concept scores; mask: [B, N] bool.
    Returns edge_index [2, E] for a bipartite graph, row 0 = concept id in [0, K),
    row 1 = flattened node id in [0, B*N).
    """
    b, n, n_concepts = scores.shape
    top = scores.topk(min(k, n_concepts), dim=2).indices  # [B, N, k]
    node = torch.arange(b * n, device=scores.device).view(b, n, 1).expand_as(top)
    keep = mask[:, :, None].expand_as(top)
    return torch.stack([top[keep], node[keep]])
