"""The adapter's SKB tokens sent over a simulated channel (analogue, seed 000's tokens on seed 001's air).

A sample's valid tokens [N, d] (d even) are its transmitted symbols: N*d/2 complex channel uses as
(re, im) pairs (semfed.channels' convention), scaled so their mean power per complex symbol is
exactly 1 (padding is not sent), passed through AWGN or Rayleigh (zero-forcing equalisation by
default) at snr_db, and scaled back at the receiver (the per-sample scale is one real of side
information). The receiver pools the received valid tokens into the unit embedding the retrieval
uses, as the adapter pools its own tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semfed.channels import SnrDb, apply_channel


def _symbols(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, N, d] and mask [B, N] -> flat symbols [B, N*d] (zero at padding) and the valid count
    of complex symbols per sample [B, 1]."""
    if tokens.dim() != 3 or tokens.shape[-1] % 2 or mask.shape != tokens.shape[:2]:
        raise ValueError(f"expected tokens [B, N, d] with d even and mask [B, N], got {tuple(tokens.shape)} "
                         f"and {tuple(mask.shape)}")
    x = (tokens * mask[..., None]).flatten(1)
    return x, (mask.sum(1, keepdim=True) * tokens.shape[-1] // 2).to(x.dtype)


def unit_power_scale(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample factor [B, 1] that gives the valid tokens mean power 1 per complex symbol
    (1 for a sample with no valid or all-zero tokens)."""
    x, count = _symbols(tokens, mask)
    power = x.pow(2).sum(1, keepdim=True) / count.clamp_min(1)  # mean |z|^2 over valid complex symbols
    return torch.where(power > 0, torch.rsqrt(power.clamp_min(1e-30)), torch.ones_like(power))


def send_tokens(tokens: torch.Tensor, mask: torch.Tensor, channel: str, snr_db: SnrDb,
                generator: torch.Generator | None = None, **channel_options) -> torch.Tensor:
    """Tokens [B, N, d] (mask [B, N] bool) as received after the channel: [B, N, d], zero at padding.

    snr_db: float or [B] dB; channel: a semfed.channels.CHANNELS name (channel_options go to it, e.g.
    block=False for Rayleigh's per-symbol fading). Rayleigh fades one block per sample by default.
    """
    x, _ = _symbols(tokens, mask)
    scale = unit_power_scale(tokens, mask)
    received = apply_channel(x * scale, channel, snr_db, generator, **channel_options) / scale
    return received.view_as(tokens) * mask[..., None]


def pool_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The adapter's pooling: mean of the valid tokens [B, N, d], L2-normalised -> [B, d]."""
    pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
    return F.normalize(pooled, dim=-1)


def token_receiver(channel: str, snr_db: float, generator: torch.Generator | None = None, **channel_options):
    """A function (tokens [B, N, d], mask [B, N]) -> pooled [B, d] of the tokens received over the
    channel, for semfed.retrieval.evaluation.embed's `receive`."""
    def receive(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool_tokens(send_tokens(tokens, mask, channel, snr_db, generator, **channel_options), mask)
    return receive
