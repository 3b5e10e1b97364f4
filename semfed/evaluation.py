"""Retrieval evaluation of the adapter on a held-out split (Flickr30K protocol)."""

from __future__ import annotations

import torch

from semfed.adapter.model import GraphAdapter
from semfed.config import IMAGE_ENCODERS, SemfedConfig
from semfed.data.features import split_features
from semfed.metrics import retrieval_recalls
from semfed.participants import dataset_and_skb


@torch.no_grad()
def embed(model: GraphAdapter, feats: torch.Tensor, mask: torch.Tensor, encoder: str, device: str,
          batch_size: int = 500) -> torch.Tensor:
    """Pooled unit embeddings [N, d] of N samples' frozen features [N, L, D] (mask [N, L])."""
    model.eval()
    out = [model(feats[i:i + batch_size].to(device), mask[i:i + batch_size].to(device), encoder)[1].cpu()
           for i in range(0, len(feats), batch_size)]
    return torch.cat(out)


def evaluate_federation(model: GraphAdapter, cfg: SemfedConfig, encoders: tuple[str, ...],
                        split: str = "test") -> dict[str, dict[str, float]]:
    """Recalls for every (image encoder, text encoder) pair among `encoders`, keyed 'image+text'.

    Each encoder's split (images [N, R, D] or captions [5N, T, D]) is embedded once.
    """
    scenes, _ = dataset_and_skb(cfg)
    embeddings = {}
    for encoder in encoders:
        features = split_features(cfg, scenes, encoder, split)
        embeddings[encoder] = embed(model, features["feats"], features["mask"], encoder, cfg.torch_device)
    images = [e for e in encoders if e in IMAGE_ENCODERS]
    texts = [e for e in encoders if e not in IMAGE_ENCODERS]
    return {f"{i}+{t}": retrieval_recalls(embeddings[i] @ embeddings[t].T) for i in images for t in texts}


def mean_recalls(per_pair: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average of each recall (and RSUM) over encoder pairs."""
    keys = next(iter(per_pair.values())).keys()
    return {k: sum(r[k] for r in per_pair.values()) / len(per_pair) for k in keys}


def group_rsum(per_pair: dict[str, dict[str, float]], group_encoders: tuple[str, ...]) -> float:
    """RSUM of a client group: mean over the encoder pairs that use all of the group's encoders."""
    pairs = [r["rsum"] for name, r in per_pair.items() if set(group_encoders) <= set(name.split("+"))]
    return sum(pairs) / len(pairs)


def clients_rsum(per_pair: dict[str, dict[str, float]], profiles: tuple, clients: tuple[int, ...]) -> float:
    """Mean over `clients` of each one's group RSUM (the encoder pairs it uses)."""
    return sum(group_rsum(per_pair, profiles[c].encoders) for c in clients) / len(clients)
