"""Separation baseline (seed 001's cliff effect): JPEG source coding at the channel's capacity.

The channel carries k = semfed.channels.bandwidth_symbols(image shape, ratio) complex symbols,
each worth the Shannon capacity log2(1 + SNR) bits (semfed.channels.channel_capacity_bits).
That idealises the channel code: any JPEG file within the budget arrives error-free, any file
over it cannot be sent. So quality falls in steps with the SNR and collapses below the SNR
where even quality 1 does not fit, instead of degrading gracefully like D-JSCC.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from semfed.channels import bandwidth_symbols, channel_capacity_bits

MAX_JPEG_QUALITY = 95
FAILURE_GREY = 0.5  # what the receiver shows when no file gets through: constant mid-grey


def channel_bit_budget(image_shape: tuple[int, int, int], bandwidth_ratio: float, snr_db: float) -> float:
    """Bits the channel delivers for one image of shape (C, H, W): k * log2(1 + 10^(SNR/10))."""
    return bandwidth_symbols(image_shape, bandwidth_ratio) * channel_capacity_bits(float(snr_db))


def _pixels(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> uint8 [H, W, 3] (rounded)."""
    return image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] -> JPEG file bytes at `quality` (Pillow's defaults otherwise)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def separation_baseline(image: torch.Tensor, bandwidth_ratio: float, snr_db: float) -> tuple[torch.Tensor, int]:
    """JPEG at the largest quality whose file fits the channel's bit budget, decoded at the receiver.

    image: [3, H, W] in [0, 1] (rounded to 8 bits). Scans quality 95 down to 1: deterministic, and
    exact where file size is not monotonic in quality (Pillow's sizes dip by a few bytes at times).
    Returns (reconstruction [3, H, W] with image's dtype and device, quality used). If no quality
    fits (not even 1) the transmission fails: quality 0 and a constant FAILURE_GREY image, so the
    PSNR is that of a constant image.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one RGB image [3, H, W], got shape {tuple(image.shape)}")
    budget = channel_bit_budget(tuple(image.shape), bandwidth_ratio, snr_db)
    pixels = _pixels(image)
    for quality in range(MAX_JPEG_QUALITY, 0, -1):
        data = _jpeg_bytes(pixels, quality)
        if 8 * len(data) <= budget:
            with Image.open(io.BytesIO(data)) as received:
                decoded = np.array(received.convert("RGB"))
            restored = torch.from_numpy(decoded).permute(2, 0, 1)
            return restored.to(device=image.device, dtype=image.dtype) / 255.0, quality
    return torch.full_like(image, FAILURE_GREY), 0
