"""UniformHead: the single-modal FedAvg baseline's model (seed 000 V-D, [7]): one lightweight head
per modality, the same for every encoder of that modality, with no graph and no encoder stems."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semfed.config_values import is_text_encoder


def modality(encoder: str) -> str:
    return "text" if is_text_encoder(encoder) else "image"


class UniformHead(nn.Module):
    """Per modality: token-wise Linear(D -> width) + LayerNorm + GELU + Linear(width -> d), masked
    mean pooling. Encoders of one modality share the head; features narrower than the modality's
    widest encoder are zero-padded to it (a uniform architecture cannot adapt to them).

    input_dims: {'image'|'text': D} for the modalities this participant holds.
    """

    def __init__(self, input_dims: dict[str, int], skb_embeddings: torch.Tensor, width: int = 256):
        super().__init__()
        self.register_buffer("concepts", F.normalize(skb_embeddings.float(), dim=-1), persistent=False)
        self.input_dims = dict(input_dims)
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.Linear(dim, width), nn.LayerNorm(width), nn.GELU(),
                                                     nn.Linear(width, skb_embeddings.shape[1]))
                                    for m, dim in sorted(input_dims.items())})

    def forward(self, features: torch.Tensor, mask: torch.Tensor, encoder: str) -> tuple[torch.Tensor, torch.Tensor]:
        """features: [B, N, D_enc]; mask: [B, N] bool. Returns unit tokens [B, N, d] (zero at padding)
        and the pooled unit embedding [B, d], as GraphAdapter does."""
        kind = modality(encoder)
        x = F.pad(features.float(), (0, self.input_dims[kind] - features.shape[-1]))
        tokens = F.normalize(self.heads[kind](x), dim=-1) * mask[..., None]
        pooled = tokens.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return tokens, F.normalize(pooled, dim=-1)
