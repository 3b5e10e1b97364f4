"""Seed 003's semantic text codec: a sentence of W word pieces leaves a device as a W x d matrix of real
channel symbols (d = the output dimension) and is read back as word pieces at the access point.

The transmitter maps each word piece's frozen encoder feature to `max_dim` values; a device with output
dimension d sends only the first d of them (trained with d drawn per sentence, so one codec serves every
dimension of text-output-dims), scaled to unit power per complex symbol over the W x d matrix. The
channel (semfed.channels) adds noise at the sentence's SNR; the receiver zero-fills the dimensions not
sent and classifies every slot's word piece (or padding) with a one-layer transformer over the slots.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from semfed.channels import apply_channel

HIDDEN = 128  # transmitter and receiver width
HEADS = 4  # of the receiver's attention layer


def dimension_mask(dims: Tensor, max_dim: int) -> Tensor:
    """[B] output dimensions -> [B, 1, max_dim] float: 1 on the first d values of each slot."""
    return (torch.arange(max_dim, device=dims.device) < dims[:, None]).float()[:, None, :]


def unit_power(symbols: Tensor, mask: Tensor) -> Tensor:
    """symbols [B, W, D] real, mask [B, 1, D] of the values sent -> the sent values scaled so each
    sentence's mean power per complex symbol (two values) is 1; values not sent are 0."""
    sent = symbols * mask
    values = mask.sum(dim=(1, 2), keepdim=True) * symbols.shape[1]
    power = 2.0 * sent.pow(2).sum(dim=(1, 2), keepdim=True) / values
    return sent * torch.rsqrt(power.clamp_min(1e-12))


class TextCodec(nn.Module):
    """feature_dim: the frozen encoder's feature size; vocabulary: classes per slot (PAD and UNKNOWN
    included); words: slots per sentence (W); max_dim: the largest output dimension (even)."""

    def __init__(self, feature_dim: int, vocabulary: int, words: int, max_dim: int):
        super().__init__()
        self.max_dim = max_dim
        self.transmitter = nn.Sequential(nn.Linear(feature_dim, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, max_dim))
        self.receiver_input = nn.Linear(max_dim, HIDDEN)
        self.slot_embedding = nn.Parameter(torch.zeros(words, HIDDEN))
        self.receiver = nn.TransformerEncoderLayer(HIDDEN, HEADS, dim_feedforward=2 * HIDDEN, dropout=0.0,
                                                   batch_first=True)
        self.classifier = nn.Linear(HIDDEN, vocabulary)

    def encode(self, feats: Tensor, dims: Tensor) -> Tensor:
        """feats [B, W, F] -> the sent matrix [B, W, max_dim] (zero beyond each sentence's dimension)."""
        mask = dimension_mask(dims, self.max_dim)
        return unit_power(self.transmitter(feats.float()), mask)

    def decode(self, received: Tensor, dims: Tensor) -> Tensor:
        """received [B, W, max_dim] -> word-piece logits [B, W, vocabulary] (what was not sent is ignored)."""
        hidden = self.receiver_input(received * dimension_mask(dims, self.max_dim)) + self.slot_embedding
        return self.classifier(self.receiver(hidden))

    def forward(self, feats: Tensor, dims: Tensor, snr_db: Tensor, channel: str,
                generator: torch.Generator | None = None) -> Tensor:
        """feats [B, W, F], dims [B] int, snr_db [B] (dB) -> logits [B, W, vocabulary] after `channel`."""
        sent = self.encode(feats, dims)
        received = apply_channel(sent.flatten(1), channel, snr_db, generator).view_as(sent)
        return self.decode(received, dims)
