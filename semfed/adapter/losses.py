"""Training losses: hardest-negative triplet ranking and SKB alignment regularisation."""

from __future__ import annotations

import torch


def hardest_negative_triplet(images: torch.Tensor, texts: torch.Tensor, margin: float) -> torch.Tensor:
    """VSE++ max-violation triplet loss, averaged over the batch.

    images, texts: [B, d] unit embeddings, row i of each is a matching pair.
    loss_i = max_j [margin + s(i, t_j) - s(i, t_i)]_+ + max_j [margin + s(i_j, t_i) - s(i, t_i)]_+, j != i.
    """
    scores = images @ texts.T  # [B, B]
    positive = scores.diag()
    off_diagonal = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_text = (margin + scores - positive[:, None]).clamp_min(0) * off_diagonal
    cost_image = (margin + scores - positive[None, :]).clamp_min(0) * off_diagonal
    return (cost_text.max(dim=1).values + cost_image.max(dim=0).values).mean()


def skb_alignment(embeddings: torch.Tensor, targets: torch.Tensor, concepts: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy pulling each embedding towards the SKB concepts its label names.

    embeddings: [B, d] unit; targets: [B, K] multi-hot concept labels; concepts: [K, d] unit.
    loss = mean_b [ -sum_k t_bk log softmax_k(<e_b, c_k> / T) / sum_k t_bk ] over rows with any target.
    """
    log_p = torch.log_softmax(embeddings @ concepts.T / temperature, dim=1)
    counts = targets.sum(1)
    has_target = counts > 0
    if not has_target.any():
        return embeddings.sum() * 0.0
    per_sample = -(targets * log_p).sum(1)[has_target] / counts[has_target]
    return per_sample.mean()
