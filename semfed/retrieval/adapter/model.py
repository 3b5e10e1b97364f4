"""GraphAdapter: per-encoder stems -> semantic graph -> SKB-aligned tokens and a pooled embedding."""

from __future__ import annotations

import hashlib
import re

import torch
import torch.nn.functional as F
from torch import nn

from semfed.retrieval.adapter.graph import gaussian_knn_edges, topk_concept_edges
from semfed.retrieval.adapter.layers import ConceptMeanConv, KernelAttentionConv


def stem_id(encoder: str) -> str:
    """State-dict-safe name of an encoder's input stem (hf@ paths become a short hash)."""
    if encoder.startswith("hf@"):
        return "hf_" + hashlib.sha256(encoder.encode()).hexdigest()[:10]
    return re.sub(r"[^0-9A-Za-z_]", "_", encoder)


class AdapterLayer(nn.Module):
    """One round of message passing: intra-modal kernel attention + node-to-SKB concept pooling."""

    def __init__(self, width: int, skb_dim: int, intra_k: int, sigma: float, skb_k: int, attention_scale: float):
        """skb_k = 0: no concept edges (intra-modal message passing only)."""
        super().__init__()
        self.intra_k, self.sigma, self.skb_k = intra_k, sigma, skb_k
        self.attention = KernelAttentionConv(width, attention_scale)
        if skb_k:
            self.concept_query = nn.Linear(width, skb_dim)  # learned mapping refining node-concept similarity
            self.concept_value = nn.Linear(skb_dim, width)
            self.concept_pool = ConceptMeanConv()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """h: [B, N, F]; mask: [B, N]; concepts: [K, d] unit SKB embeddings. Returns [B, N, F]."""
        b, n, width = h.shape
        flat = h.reshape(b * n, width)
        edge_index, edge_weight = gaussian_knn_edges(F.normalize(h, dim=-1), mask, self.intra_k, self.sigma)
        flat = flat + self.attention(flat, edge_index, edge_weight)
        if self.skb_k:
            scores = F.normalize(self.concept_query(h), dim=-1) @ concepts.T  # [B, N, K]
            concept_edges = topk_concept_edges(scores.detach(), mask, self.skb_k)
            edge_score = scores.reshape(b * n, -1)[concept_edges[1], concept_edges[0]]
            flat = flat + self.concept_pool(self.concept_value(concepts), concept_edges, edge_score, b * n)
        flat = self.norm1(flat)
        flat = self.norm2(flat + self.ffn(flat))
        return flat.view(b, n, width)


class GraphAdapter(nn.Module):
    """The global adapter. Holds one stem per frozen encoder it serves (or per group of encoders that share
    one, `shared_stems`); the rest is shared.

    Clients build it with their own encoders' stems only, the server with all of them,
    so a state dict holds exactly the keys a participant can train.
    """

    def __init__(self, stem_dims: dict[str, int], skb_embeddings: torch.Tensor, width: int = 256, layers: int = 1,
                 intra_k: int = 4, sigma: float = 0.5, skb_k: int = 3, attention_scale: float = 1.5,
                 shared_stems: dict[str, str] | None = None):
        """stem_dims: each encoder's feature width; shared_stems: encoder -> the name of the stem it shares
        with the other encoders of that name (of equal width); an encoder not in it has a stem of its own."""
        super().__init__()
        skb_dim = skb_embeddings.shape[1]
        self.register_buffer("concepts", F.normalize(skb_embeddings.float(), dim=-1), persistent=False)
        stems, self.stem_of = {}, {}
        for encoder, dim in sorted(stem_dims.items()):  # built in this order: the initial weights follow it
            name = self.stem_of[encoder] = stem_id((shared_stems or {}).get(encoder, encoder))
            if name not in stems:
                stems[name] = nn.Sequential(nn.Linear(dim, width), nn.LayerNorm(width))
            elif stems[name][0].in_features != dim:
                raise ValueError(f"encoders sharing stem {name!r} differ in width: {encoder} gives {dim}, "
                                 f"another {stems[name][0].in_features}")
        self.stems = nn.ModuleDict(stems)
        self.layers = nn.ModuleList(AdapterLayer(width, skb_dim, intra_k, sigma, skb_k, attention_scale)
                                    for _ in range(layers))
        self.to_skb = nn.Linear(width, skb_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, encoder: str) -> tuple[torch.Tensor, torch.Tensor]:
        """features: [B, N, D_enc] frozen-encoder regions/tokens; mask: [B, N] bool.

        Returns SKB-aligned unit tokens [B, N, d] (zero at padding) and the pooled
        unit embedding per sample [B, d].
        """
        h = self.stems[self.stem_of[encoder]](features.float())
        for layer in self.layers:
            h = layer(h, mask, self.concepts)
        tokens = F.normalize(self.to_skb(h), dim=-1) * mask[..., None]
        pooled = tokens.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return tokens, F.normalize(pooled, dim=-1)
