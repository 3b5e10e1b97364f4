"""Local training of the adapter on one client's shard (also used for the centralised baseline)."""

from __future__ import annotations

import torch

from semfed.adapter.losses import hardest_negative_triplet, skb_alignment
from semfed.adapter.model import GraphAdapter
from semfed.config import SemfedConfig
from semfed.data.shards import CAPTIONS_PER_IMAGE, Shard


def batch_loss(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
               cfg: SemfedConfig, device: str) -> torch.Tensor:
    """Loss of one mini-batch: triplet over (image, one caption) pairs when the client holds
    both modalities, plus skb-reg-weight x SKB alignment of every embedding it computes.

    idx: [B] shard rows; caption: [B] which of each image's five captions is used.
    """
    loss = torch.zeros((), device=device)
    image_z = text_z = None
    if shard.image is not None:
        _, image_z = model(shard.image.feats[idx].to(device), shard.image.mask[idx].to(device), shard.image.encoder)
        labels = shard.image_labels[idx].to(device)
        loss = loss + cfg.skb_reg_weight * skb_alignment(image_z, labels, model.concepts, cfg.skb_temperature)
    if shard.text is not None:
        feats, mask = shard.text.feats[idx, caption], shard.text.mask[idx, caption]
        _, text_z = model(feats.to(device), mask.to(device), shard.text.encoder)
        labels = shard.caption_labels[idx, caption].to(device)
        loss = loss + cfg.skb_reg_weight * skb_alignment(text_z, labels, model.concepts, cfg.skb_temperature)
    if image_z is not None and text_z is not None and len(idx) > 1:
        loss = loss + hardest_negative_triplet(image_z, text_z, cfg.triplet_margin)
    return loss


def train_local(model: GraphAdapter, shard: Shard, cfg: SemfedConfig, epochs: int, seed: int,
                device: str, optimizer: torch.optim.Optimizer | None = None) -> dict[str, float]:
    """Adam over the shard for `epochs` epochs of shuffled mini-batches; one random caption
    per image per epoch. Deterministic in `seed`. A fresh Adam unless `optimizer` is given.
    Returns mean loss and step count."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    model.train()
    total, steps = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(shard), generator=generator)
        captions = torch.randint(CAPTIONS_PER_IMAGE, (len(shard),), generator=generator)
        for start in range(0, len(shard), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss = batch_loss(model, shard, idx, captions[idx], cfg, device)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
    return {"train_loss": total / max(steps, 1), "steps": float(steps)}
