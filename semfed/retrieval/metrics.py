"""Retrieval metrics: Recall@K and RSUM under the Flickr30K protocol (five captions per image)."""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger("semfed.retrieval.metrics")

RECALL_KS = (1, 5, 10)
RECALL_NAMES = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in RECALL_KS)


def retrieval_recalls(similarity: torch.Tensor, captions_per_image: int = 5) -> dict[str, float]:
    """Recall@{1,5,10} both ways and their sum, in percent.

    similarity: [N_images, N_images * captions_per_image], caption j of image i at
    column captions_per_image * i + j. Image-to-text counts a hit when any of the
    image's captions ranks within K; text-to-image when the caption's image does.
    Ties are broken pessimistically (a tied wrong item ranks above the right one).
    A matrix with any NaN or infinite entry (a diverged model) scores 0 everywhere, with a
    warning: it must never score well, and must not end the run that produced it.
    """
    n_img, n_cap = similarity.shape
    if n_cap != n_img * captions_per_image:
        raise ValueError(f"similarity has {n_cap} caption columns, expected {n_img} x {captions_per_image}")
    if not torch.isfinite(similarity).all():
        log.warning("similarity matrix has %d non-finite entries of %d (diverged model?): every recall scores 0",
                    int((~torch.isfinite(similarity)).sum()), similarity.numel())
        return {**{name: 0.0 for name in RECALL_NAMES}, "rsum": 0.0}
    owner = torch.arange(n_cap, device=similarity.device) // captions_per_image  # [N_cap]
    # image -> text: rank of the best-ranked true caption = number of wrong captions scoring >= it
    true_mask = owner[None, :] == torch.arange(n_img, device=similarity.device)[:, None]
    best_true = similarity.masked_fill(~true_mask, float("-inf")).max(dim=1).values
    i2t_rank = ((similarity >= best_true[:, None]) & ~true_mask).sum(dim=1)
    # text -> image: rank of the caption's own image
    own_score = similarity[owner, torch.arange(n_cap, device=similarity.device)]
    t2i_rank = (similarity >= own_score[None, :]).sum(dim=0) - 1
    result = {}
    for direction, rank in (("i2t", i2t_rank), ("t2i", t2i_rank)):
        for k in RECALL_KS:
            result[f"{direction}_r{k}"] = 100.0 * (rank < k).float().mean().item()
    result["rsum"] = sum(result[name] for name in RECALL_NAMES)
    return result


def users_mean(client_rsum: dict[int, float], clients) -> float:
    """Mean RSUM of `clients`, leaving out users without test images (NaN); NaN if none has any."""
    values = [client_rsum[c] for c in clients if not math.isnan(client_rsum[c])]
    return sum(values) / len(values) if values else float("nan")
