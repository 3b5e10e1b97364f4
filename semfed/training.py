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


def epoch_batches(n: int, epochs: int, batch_size: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of `epochs` shuffled passes over n samples: (rows [B], caption choice [B]),
    one random caption of the five per image per epoch."""
    batches = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        captions = torch.randint(CAPTIONS_PER_IMAGE, (n,), generator=generator)
        batches += [(order[i:i + batch_size], captions[order[i:i + batch_size]]) for i in range(0, n, batch_size)]
    return batches


def train_steps(model: GraphAdapter, steps: list[tuple[Shard, torch.Tensor, torch.Tensor]], cfg: SemfedConfig,
                device: str, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One optimiser step per (shard, rows, captions) in order. Returns mean loss and step count."""
    model.train()
    total = 0.0
    for shard, idx, caption in steps:
        loss = batch_loss(model, shard, idx, caption, cfg, device)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return {"train_loss": total / max(len(steps), 1), "steps": float(len(steps))}


def train_local(model: GraphAdapter, shard: Shard, cfg: SemfedConfig, epochs: int, seed: int,
                device: str) -> dict[str, float]:
    """A client's round: fresh Adam over its shard for `epochs` epochs; deterministic in `seed`."""
    generator = torch.Generator().manual_seed(seed)
    batches = epoch_batches(len(shard), epochs, cfg.batch_size, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    return train_steps(model, [(shard, idx, caption) for idx, caption in batches], cfg, device, optimizer)
