"""The cliff effect (seed 001): D-JSCC's quality against SNR beside the separation baselines.

D-JSCC degrades gracefully as the SNR falls; a separation baseline (semfed.jscc.separation: an
image codec at the AWGN capacity, one per entry of CODECS) keeps a fixed quality step per SNR
range and fails outright below the SNR where even the codec's lowest quality no longer fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from semfed.jscc.frameworks import evaluate_decoder
from semfed.jscc.image_metrics import ms_ssim, psnr
from semfed.jscc.separation import CODECS, Ladder, channel_bit_budget


def _scores(ladders: list[Ladder], images: torch.Tensor, budget_bits: float) -> dict[str, float]:
    sent = [ladder.send(budget_bits) for ladder in ladders]
    restored = torch.stack([r for r, _ in sent])
    qualities = torch.tensor([float(q) for _, q in sent])
    return {"psnr": psnr(restored, images).mean().item(), "ms_ssim": ms_ssim(restored, images).mean().item(),
            "quality": qualities.mean().item(), "failed": qualities.eq(0).float().mean().item()}


def separation_scores(images: torch.Tensor, bandwidth_ratio: float, snr_db: float,
                      codec: str = "jpeg") -> dict[str, float]:
    """One separation codec (CODECS name) on images [N, 3, H, W] (H, W > 32) at snr_db: mean psnr (dB),
    ms_ssim and quality (0 = failed), and the fraction of images whose transmission failed."""
    budget = channel_bit_budget(tuple(images.shape[1:]), bandwidth_ratio, snr_db)
    return _scores([Ladder(image, codec) for image in images], images, budget)


def cliff_curve(encoder: nn.Module, decoders: dict[str, nn.Module], images: torch.Tensor, snrs: Sequence[float],
                bandwidth_ratio: float, channels: Sequence[str] = ("awgn",), seed: int = 0,
                codecs: Sequence[str] | None = None) -> pd.DataFrame:
    """PSNR / MS-SSIM against SNR: every named D-JSCC decoder on every channel, and every separation
    codec (`codecs`: CODECS names, default all; at the AWGN capacity, channel 'awgn', method its
    CODECS label). images: [N, 3, H, W] in [0, 1] (H, W > 32, multiples of 4). D-JSCC noise at each
    SNR comes from a generator seeded by `seed`. One row per (method, channel, snr): method, channel,
    snr, psnr, ms_ssim, quality and failed (separation only; quality on the codec's own scale)."""
    codecs = list(CODECS) if codecs is None else list(codecs)
    ladders = {name: [Ladder(image, name) for image in images] for name in codecs}
    rows = []
    for snr in snrs:
        for name, decoder in decoders.items():
            for channel in channels:
                generator = torch.Generator(device=images.device).manual_seed(seed)
                rows.append({"method": f"D-JSCC {name}", "channel": channel, "snr": snr,
                             **evaluate_decoder(encoder, decoder, images, snr, channel, generator)})
        budget = channel_bit_budget(tuple(images.shape[1:]), bandwidth_ratio, snr)
        for name in codecs:
            rows.append({"method": CODECS[name].label, "channel": "awgn", "snr": snr,
                         **_scores(ladders[name], images, budget)})
    return pd.DataFrame(rows)
