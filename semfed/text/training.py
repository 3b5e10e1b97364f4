"""A device's local training of the text codec (task = text): mini-batches of its sentences, each sent
at an output dimension drawn from text-output-dims and an SNR drawn from text-snr-set, cross-entropy of
every slot's word piece (padding included: the receiver also reads where the sentence ends)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from semfed.channels import sample_snr
from semfed.config import SemfedConfig
from semfed.text.codec import TextCodec
from semfed.text.data import TextData


def draw_dims(batch: int, dims: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """[batch] output dimensions drawn uniformly from `dims` (int64, on the generator's device)."""
    table = torch.tensor(dims, device=generator.device)
    return table[torch.randint(len(dims), (batch,), generator=generator, device=generator.device)]


def codec_loss(codec: TextCodec, feats: Tensor, ids: Tensor, dims: Tensor, snr_db: Tensor, channel: str,
               generator: torch.Generator) -> Tensor:
    """Mean cross-entropy over the B x W slots of feats [B, W, F] against ids [B, W]."""
    logits = codec(feats, dims, snr_db, channel, generator)
    return F.cross_entropy(logits.flatten(0, 1), ids.flatten())


def train_codec(codec: TextCodec, feats: Tensor, ids: Tensor, cfg: SemfedConfig, steps: int,
                generator: torch.Generator, device: str) -> list[float]:
    """`steps` Adam steps on the sentences feats [n, W, F] / ids [n, W] (batches of text-batch-size drawn
    without replacement, a new permutation when they run out). Returns each step's loss."""
    optimiser = torch.optim.Adam(codec.parameters(), lr=cfg.text_learning_rate)
    codec.train()
    order, cursor, losses = torch.randperm(len(ids), generator=generator, device=generator.device), 0, []
    for _ in range(steps):
        if cursor + cfg.text_batch_size > len(order) and cursor:
            order, cursor = torch.randperm(len(ids), generator=generator, device=generator.device), 0
        batch = order[cursor:cursor + cfg.text_batch_size].cpu()
        cursor += len(batch)
        dims = draw_dims(len(batch), cfg.text_dims, generator).to(device)
        snr = sample_snr(len(batch), cfg.text_snrs, generator, device)
        loss = codec_loss(codec, feats[batch].to(device), ids[batch].to(device), dims, snr, cfg.text_channel, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def build_codec(cfg: SemfedConfig, data: TextData) -> TextCodec:
    """The run's codec, initialised from cfg.seed (the same on server and devices; global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return TextCodec(data.feature_dim, len(data.vocabulary), cfg.text_words, max(cfg.text_dims))
