"""The base station's attention-based D-JSCC encoder and the latent format it defines.

Bandwidth ratio k/n: n = 3*H*W real source values per RGB image, k complex channel uses,
sent as 2k real values (semfed.channels' (re, im) pair convention). The encoder downsamples
by DOWNSAMPLE = 4 in each spatial dim, so its latent map [B, C, H/4, W/4] holds
C*H*W/16 = 2k reals and C = 2 * ratio * 3 * 16 = 96 * ratio must be a whole number
(ratio 1/6 -> C = 16, 1/12 -> 8, 1/24 -> 4). Then k = semfed.channels.bandwidth_symbols.
The flat symbol vector is the latent map flattened in (C, h, w) order.
"""

from __future__ import annotations

import torch
from torch import nn

from semfed.channels import normalize_power
from semfed.jscc.blocks import ConvGDNPReLU, SnrDb, SNRAttention, SNRConditioned, snr_column

IMAGE_CHANNELS = 3
DOWNSAMPLE = 4


def latent_channels(bandwidth_ratio: float) -> int:
    """Latent channels C = 96 * ratio for an RGB image; ValueError unless a positive integer."""
    exact = 2 * bandwidth_ratio * IMAGE_CHANNELS * DOWNSAMPLE**2
    channels = round(exact)
    if channels < 1 or abs(exact - channels) > 1e-6:
        raise ValueError(f"bandwidth ratio {bandwidth_ratio} gives {exact:g} latent channels; "
                         f"use ratio = C / {2 * IMAGE_CHANNELS * DOWNSAMPLE**2} for a whole C >= 1 "
                         "(e.g. 1/6, 1/12, 1/24)")
    return channels


def check_image_size(height: int, width: int) -> None:
    """ValueError unless H and W are positive multiples of DOWNSAMPLE."""
    if height <= 0 or width <= 0 or height % DOWNSAMPLE or width % DOWNSAMPLE:
        raise ValueError(f"image height and width must be positive multiples of {DOWNSAMPLE}, got {height}x{width}")


def symbols_to_latent(y: torch.Tensor, channels: int, image_size: tuple[int, int]) -> torch.Tensor:
    """Received real pairs [B, 2k] -> latent map [B, C, H/4, W/4] for images of image_size (H, W)."""
    height, width = image_size
    check_image_size(height, width)
    shape = (channels, height // DOWNSAMPLE, width // DOWNSAMPLE)
    if y.dim() != 2 or y.shape[1] != shape[0] * shape[1] * shape[2]:
        raise ValueError(f"expected symbols of shape [B, {shape[0] * shape[1] * shape[2]}] for "
                         f"{height}x{width} images and {channels} latent channels, got {tuple(y.shape)}")
    return y.reshape(y.shape[0], *shape)


class AttentionEncoder(nn.Module):
    """BS encoder: image [B, 3, H, W] in [0, 1] + SNR (dB) -> unit-power symbols [B, 2k].

    num_blocks (>= 2) blocks of conv(kernel_size) + GDN + PReLU + SNR attention, `width`
    channels each (the first two with stride 2), then a conv projection to C latent channels
    and power normalisation: every image's k complex symbols have mean power exactly 1.
    """

    def __init__(self, bandwidth_ratio: float, width: int = 64, num_blocks: int = 4, kernel_size: int = 5):
        super().__init__()
        if num_blocks < 2:
            raise ValueError(f"num_blocks must be >= 2 (two downsampling blocks), got {num_blocks}")
        self.bandwidth_ratio = bandwidth_ratio
        self.latent_channels = latent_channels(bandwidth_ratio)
        self.blocks = nn.ModuleList(
            SNRConditioned(ConvGDNPReLU(IMAGE_CHANNELS if i == 0 else width, width, kernel_size, 2 if i < 2 else 1),
                           SNRAttention(width))
            for i in range(num_blocks)
        )
        self.project = nn.Conv2d(width, self.latent_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, snr_db: SnrDb) -> torch.Tensor:
        """x [B, 3, H, W] (H, W multiples of 4); snr_db float or [B] -> symbols [B, 2k] real pairs."""
        if x.dim() != 4 or x.shape[1] != IMAGE_CHANNELS:
            raise ValueError(f"expected images [B, {IMAGE_CHANNELS}, H, W], got {tuple(x.shape)}")
        check_image_size(x.shape[2], x.shape[3])
        snr = snr_column(snr_db, x.shape[0], x)
        h = x
        for block in self.blocks:
            h = block(h, snr)
        return normalize_power(self.project(h).flatten(1))
