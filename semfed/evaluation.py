"""Retrieval evaluation of the adapter on a held-out split (Flickr30K protocol)."""

from __future__ import annotations

import torch

from semfed.adapter.model import GraphAdapter
from semfed.metrics import retrieval_recalls


@torch.no_grad()
def embed(model: GraphAdapter, feats: torch.Tensor, mask: torch.Tensor, encoder: str, device: str,
          batch_size: int = 500) -> torch.Tensor:
    """Pooled unit embeddings [N, d] of N samples' frozen features [N, L, D] (mask [N, L])."""
    model.eval()
    out = [model(feats[i:i + batch_size].to(device), mask[i:i + batch_size].to(device), encoder)[1].cpu()
           for i in range(0, len(feats), batch_size)]
    return torch.cat(out)


def evaluate_pair(model: GraphAdapter, images: dict, image_encoder: str, captions: dict, text_encoder: str,
                  device: str) -> dict[str, float]:
    """Recall@K / RSUM for one (image encoder, text encoder) pair.

    images: dict(feats [N, R, D], mask) of the split's images; captions: dict(feats [5N, T, D], mask).
    """
    image_z = embed(model, images["feats"], images["mask"], image_encoder, device)
    text_z = embed(model, captions["feats"], captions["mask"], text_encoder, device)
    return retrieval_recalls(image_z @ text_z.T)


def evaluate_federation(model: GraphAdapter, cfg, encoders: tuple[str, ...], split: str = "test") -> dict[str, dict[str, float]]:
    """Recalls for every (image encoder, text encoder) pair among `encoders`, keyed 'image+text'."""
    from semfed.config import IMAGE_ENCODERS
    from semfed.data.features import split_features
    from semfed.participants import dataset_and_skb

    scenes, _ = dataset_and_skb(cfg)
    images = [e for e in encoders if e in IMAGE_ENCODERS]
    texts = [e for e in encoders if e not in IMAGE_ENCODERS]
    return {f"{i}+{t}": evaluate_pair(model, split_features(cfg, scenes, i, split), i,
                                      split_features(cfg, scenes, t, split), t, cfg.torch_device)
            for i in images for t in texts}


def mean_recalls(per_pair: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average of each recall (and RSUM) over encoder pairs."""
    keys = next(iter(per_pair.values())).keys()
    return {k: sum(r[k] for r in per_pair.values()) / len(per_pair) for k in keys}


def group_rsum(per_pair: dict[str, dict[str, float]], group_encoders: tuple[str, ...]) -> float:
    """RSUM of a client group: mean over the encoder pairs that use all of the group's encoders."""
    pairs = [r["rsum"] for name, r in per_pair.items() if set(group_encoders) <= set(name.split("+"))]
    return sum(pairs) / len(pairs)
