"""Local training of the adapter on one client's shard (also used for the centralised baseline)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from semfed.config import SemfedConfig
from semfed.data.dataset import CAPTIONS_PER_IMAGE
from semfed.retrieval.adapter.losses import hardest_negative_triplet, skb_alignment
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.labels import concept_prototypes, decoy_rank_confidence, rank_confidence
from semfed.retrieval.shards import Shard
from semfed.seeds import decoy_seed

Step = tuple[Shard, torch.Tensor, torch.Tensor, torch.Tensor | None]  # shard, rows [B], caption [B], keep [B] or None


def batch_embeddings(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
                     device: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Pooled unit embeddings [B, d] of the batch's images and of its chosen captions (None
    for a modality the client lacks). idx: [B] shard rows; caption: [B] which of five."""
    image_z = None
    if shard.image is not None:
        _, image_z = model(shard.image.feats[idx].to(device), shard.image.mask[idx].to(device), shard.image.encoder)
    return image_z, None if shard.text is None else caption_embeddings(model, shard, idx, caption, device)


def caption_embeddings(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
                       device: str) -> torch.Tensor:
    """Pooled unit embeddings [B, d] of rows idx's captions `caption` [B] (a client holding text)."""
    feats, mask = shard.text.feats[idx, caption], shard.text.mask[idx, caption]
    _, text_z = model(feats.to(device), mask.to(device), shard.text.encoder)
    return text_z


def batch_loss(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
               cfg: SemfedConfig, device: str, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Loss of one mini-batch: triplet over (image, one caption) pairs when the client holds
    both modalities, plus skb-reg-weight x SKB alignment of every embedding it computes.
    keep: [B] bool, rows whose label takes part (None = all)."""
    keep = None if keep is None else keep.to(device)
    image_z, text_z = batch_embeddings(model, shard, idx, caption, device)
    loss = torch.zeros((), device=device)
    if image_z is not None:
        labels = shard.image_labels[idx].to(device)
        loss = loss + cfg.skb_reg_weight * skb_alignment(image_z, labels, model.concepts, cfg.skb_temperature, keep)
    if text_z is not None:
        labels = shard.caption_labels[idx, caption].to(device)
        loss = loss + cfg.skb_reg_weight * skb_alignment(text_z, labels, model.concepts, cfg.skb_temperature, keep)
    if image_z is not None and text_z is not None and len(idx) > 1:
        loss = loss + hardest_negative_triplet(image_z, text_z, cfg.triplet_margin, keep)
    return loss


def provisional_labels(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
                       image_z: torch.Tensor | None, text_z: torch.Tensor | None, device: str) -> torch.Tensor:
    """Provisional labels [B, d] of rows idx (see semfed.retrieval.labels): the adapter's embeddings of
    their captions text_z when the client holds both modalities, else the SKB prototypes of their concepts."""
    if image_z is not None and text_z is not None:
        return text_z
    if image_z is not None:
        return concept_prototypes(shard.image_labels[idx].to(device), model.concepts)
    return concept_prototypes(shard.caption_labels[idx, caption].to(device), model.concepts)


@torch.no_grad()
def batch_confidence(model: GraphAdapter, shard: Shard, idx: torch.Tensor, caption: torch.Tensor,
                     decoy: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence [B] of the batch's labels from its similarity matrix, and of their decoys [B]
    (semfed.retrieval.labels.rank_confidence, decoy_rank_confidence): each sample's embedding against
    the batch's provisional labels, and against the provisional labels of rows `decoy` [B] (the same
    caption choice); a text-only client's samples are its captions, so only its decoys' concepts differ."""
    model.eval()
    image_z, text_z = batch_embeddings(model, shard, idx, caption, device)
    samples = image_z if image_z is not None else text_z
    labels = provisional_labels(model, shard, idx, caption, image_z, text_z, device)
    if image_z is not None and text_z is not None:
        decoys = caption_embeddings(model, shard, decoy, caption, device)
    else:
        decoys = provisional_labels(model, shard, decoy, caption, image_z, None, device)
    similarity = samples @ labels.T
    return rank_confidence(similarity).cpu(), decoy_rank_confidence(similarity, samples @ decoys.T).cpu()


def epoch_batches(n: int, epochs: int, batch_size: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of `epochs` shuffled passes over n samples: (rows [B], caption choice [B]),
    one random caption of the five per image per epoch."""
    batches = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        captions = torch.randint(CAPTIONS_PER_IMAGE, (n,), generator=generator)
        batches += [(order[i:i + batch_size], captions[order[i:i + batch_size]]) for i in range(0, n, batch_size)]
    return batches


def train_steps(model: GraphAdapter, steps: list[Step], cfg: SemfedConfig, device: str,
                optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One optimiser step per (shard, rows, captions, keep) in order. Returns summed loss and step count."""
    model.train()
    total = 0.0
    for shard, idx, caption, keep in steps:
        loss = batch_loss(model, shard, idx, caption, cfg, device, keep)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return {"loss_sum": total, "steps": float(len(steps))}


@dataclass
class LocalRound:
    """Outcome of a client's round: mean train loss, optimiser steps, and per label the
    confidence before each epoch [E, N] and its decoy's [E, N] (NaN when labels were not scored) and
    whether it was left out of at least one epoch [N] bool."""

    train_loss: float
    steps: int
    confidence: torch.Tensor
    decoy_confidence: torch.Tensor
    excluded: torch.Tensor


def train_local(model: GraphAdapter, shard: Shard, cfg: SemfedConfig, epochs: int, seed: int, device: str,
                score_labels: bool = False, pruned: torch.Tensor | None = None,
                max_examples: int | None = None) -> LocalRound:
    """A client's round: fresh Adam over its shard for `epochs` epochs; deterministic in `seed`.
    With max_examples (a deadline's budget), training stops before the first batch that would take the
    examples trained on over all epochs past it (the batches drawn, and the labels scored, are the same).

    With score_labels, before each epoch every label gets a confidence from its mini-batch's
    similarity matrix (with the model as it stands) and labels under
    label-confidence-threshold are masked out of that epoch's loss, and its decoy, the label of
    another row (a derangement of the shard drawn from `seed`, the same in every epoch, as a noisy label
    stays with its sample), is scored beside it. Pruned labels [N] bool never take part.
    """
    n = len(shard)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    allowed = torch.ones(n, dtype=torch.bool) if pruned is None else ~pruned
    confidence = torch.full((epochs, n), float("nan"))
    decoy_confidence = torch.full((epochs, n), float("nan"))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(decoy_seed(seed)))
    decoy = torch.empty(n, dtype=torch.long)
    decoy[order] = order.roll(-1)  # each row's decoy is the next row of a random cycle: never itself when n > 1
    excluded = torch.zeros(n, dtype=torch.bool)
    loss_sum, steps = 0.0, 0
    budget = n * epochs if max_examples is None else max_examples
    for epoch in range(epochs):
        batches = epoch_batches(n, 1, cfg.batch_size, generator)
        keep = allowed
        if score_labels:  # every label is scored, also where the budget stops the training
            for idx, caption in batches:
                confidence[epoch, idx], decoy_confidence[epoch, idx] = batch_confidence(
                    model, shard, idx, caption, decoy[idx], device)
            keep = allowed & (confidence[epoch] >= cfg.label_confidence_threshold)
            excluded |= allowed & ~keep
        visited = itertools.accumulate(len(idx) for idx, _ in batches)
        batches = [batch for batch, used in zip(batches, visited) if used <= budget]
        budget -= sum(len(idx) for idx, _ in batches)
        if not batches:
            break
        stats = train_steps(model, [(shard, idx, caption, keep[idx]) for idx, caption in batches], cfg, device, optimizer)
        loss_sum, steps = loss_sum + stats["loss_sum"], steps + int(stats["steps"])
    return LocalRound(loss_sum / max(steps, 1), steps, confidence, decoy_confidence, excluded)
