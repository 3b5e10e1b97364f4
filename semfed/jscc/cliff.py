"""The cliff effect (seed 001): D-JSCC's quality against SNR beside the JPEG separation baseline.

D-JSCC degrades gracefully as the SNR falls; the separation baseline (semfed.jscc.separation,
JPEG at the AWGN capacity) keeps a fixed quality step per SNR range and fails outright below the
SNR where even JPEG quality 1 no longer fits the channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from semfed.jscc.frameworks import evaluate_decoder
from semfed.jscc.image_metrics import ms_ssim, psnr
from semfed.jscc.separation import separation_baseline

SEPARATION = "JPEG separation"


def separation_scores(images: torch.Tensor, bandwidth_ratio: float, snr_db: float) -> dict[str, float]:
    """The separation baseline on images [N, 3, H, W] (H, W > 32) at snr_db: mean psnr (dB), ms_ssim and
    JPEG quality (0 = failed), and the fraction of images whose transmission failed."""
    sent = [separation_baseline(image, bandwidth_ratio, snr_db) for image in images]
    restored = torch.stack([r for r, _ in sent])
    qualities = torch.tensor([float(q) for _, q in sent])
    return {"psnr": psnr(restored, images).mean().item(), "ms_ssim": ms_ssim(restored, images).mean().item(),
            "jpeg_quality": qualities.mean().item(), "failed": qualities.eq(0).float().mean().item()}


def cliff_curve(encoder: nn.Module, decoders: dict[str, nn.Module], images: torch.Tensor, snrs: Sequence[float],
                bandwidth_ratio: float, channels: Sequence[str] = ("awgn",), seed: int = 0) -> pd.DataFrame:
    """PSNR / MS-SSIM against SNR: every named D-JSCC decoder on every channel, and the separation
    baseline (AWGN capacity, channel 'awgn'). images: [N, 3, H, W] in [0, 1] (H, W > 32, multiples
    of 4). D-JSCC noise at each SNR comes from a generator seeded by `seed`. One row per (method,
    channel, snr): method, channel, snr, psnr, ms_ssim, jpeg_quality and failed (separation only)."""
    rows = []
    for snr in snrs:
        for name, decoder in decoders.items():
            for channel in channels:
                generator = torch.Generator(device=images.device).manual_seed(seed)
                rows.append({"method": f"D-JSCC {name}", "channel": channel, "snr": snr,
                             **evaluate_decoder(encoder, decoder, images, snr, channel, generator)})
        rows.append({"method": SEPARATION, "channel": "awgn", "snr": snr,
                     **separation_scores(images, bandwidth_ratio, snr)})
    return pd.DataFrame(rows)
