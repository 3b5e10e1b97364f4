"""Training losses: hardest-negative triplet ranking and SKB alignment regularisation.

Both take an optional `keep` mask [B] bool: excluded samples (low-confidence labels) give no
loss term and, in the triplet loss, serve as no one's negative either, so they send no
gradient at all. The mean is over kept samples.
"""

from __future__ import annotations

import torch


def _kept_mean(per_sample: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return (per_sample * keep).sum() / keep.sum().clamp_min(1)


def hardest_negative_triplet(images: torch.Tensor, texts: torch.Tensor, margin: float,
                             keep: torch.Tensor | None = None) -> torch.Tensor:
    """VSE++ max-violation triplet loss, averaged over the kept pairs.

    images, texts: [B, d] unit embeddings, row i of each is a matching pair; keep: [B] bool.
    loss_i = max_j [margin + s(i, t_j) - s(i, t_i)]_+ + max_j [margin + s(i_j, t_i) - s(i, t_i)]_+, j != i, j kept.
    """
    keep = torch.ones(len(images), dtype=torch.bool, device=images.device) if keep is None else keep
    scores = images @ texts.T  # [B, B]
    positive = scores.diag()
    negatives = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device) & keep[:, None] & keep[None, :]
    cost_text = (margin + scores - positive[:, None]).clamp_min(0) * negatives
    cost_image = (margin + scores - positive[None, :]).clamp_min(0) * negatives
    return _kept_mean(cost_text.max(dim=1).values + cost_image.max(dim=0).values, keep)


def skb_alignment(embeddings: torch.Tensor, targets: torch.Tensor, concepts: torch.Tensor, temperature: float,
                  keep: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy pulling each embedding towards the SKB concepts its label names.

    embeddings: [B, d] unit; targets: [B, K] multi-hot concept labels; concepts: [K, d] unit; keep: [B] bool.
    loss = mean_b [ -sum_k t_bk log softmax_k(<e_b, c_k> / T) / sum_k t_bk ] over kept rows with any target.
    """
    log_p = torch.log_softmax(embeddings @ concepts.T / temperature, dim=1)
    counts = targets.sum(1)
    used = counts > 0
    if keep is not None:
        used = used & keep
    per_sample = -(targets * log_p).sum(1) / counts.clamp_min(1)
    return _kept_mean(per_sample, used)
