"""Building blocks of the D-JSCC models (seed 001, section IV-B2).

Feature blocks (conv or transposed conv + GDN + PReLU, GDN from CompressAI) and the two
ways the channel SNR enters a network: the SNR-attention module (pooled features + SNR)
and SNR fusion (SNR alone). SNR-conditioned modules take ``snr`` as a [B, 1] column in dB
(see ``snr_column``).
"""

from __future__ import annotations

import torch
from torch import nn

SnrDb = float | torch.Tensor


def snr_column(snr_db: SnrDb, batch: int, like: torch.Tensor) -> torch.Tensor:
    """SNR in dB as a [batch, 1] tensor with like's dtype and device.

    snr_db: float or one-element tensor (one SNR for the whole batch), or tensor [batch].
    """
    snr = torch.as_tensor(snr_db, dtype=like.dtype, device=like.device)
    if snr.numel() == 1:
        return snr.reshape(1, 1).expand(batch, 1)
    if snr.dim() != 1 or snr.shape[0] != batch:
        raise ValueError(f"snr_db must be a float or a tensor of shape [B] = [{batch}], got shape {tuple(snr.shape)}")
    return snr.reshape(batch, 1)


def gdn(channels: int, inverse: bool = False) -> nn.Module:
    """CompressAI's GDN (IGDN if inverse) over `channels`. Imported here, when a model is built: importing
    compressai imports its point-cloud datasets and PyG with them (about 10 s), which the config check
    of a D-JSCC run (it reads the decoder families) has no use for."""
    from compressai.layers import GDN

    return GDN(channels, inverse=inverse)


def tconv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.ConvTranspose2d:
    """Transposed conv that maps [B, C_in, H, W] -> [B, C_out, H*stride, W*stride] (odd kernel_size)."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride,
                              padding=kernel_size // 2, output_padding=stride - 1)


class ConvGDNPReLU(nn.Sequential):
    """Conv2d -> GDN -> PReLU: [B, C_in, H, W] -> [B, C_out, H/stride, W/stride] (odd kernel_size)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2),
            gdn(out_channels),
            nn.PReLU(out_channels),
        )


class TConvGDNPReLU(nn.Sequential):
    """ConvTranspose2d -> GDN (IGDN if inverse) -> PReLU: [B, C_in, H, W] -> [B, C_out, H*stride, W*stride]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 inverse: bool = True):
        super().__init__(
            tconv(in_channels, out_channels, kernel_size, stride),
            gdn(out_channels, inverse=inverse),
            nn.PReLU(out_channels),
        )


class SNRAttention(nn.Module):
    """SNR attention (paper eqs. 12-14): per-channel weights from pooled features and the SNR.

    w = sigmoid(FC(ReLU(FC([avgpool(x), snr_db])))) in (0, 1)^C scales x channel-wise.
    forward(x [B, C, H, W], snr [B, 1] dB) -> [B, C, H, W].
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(channels // 4, 4)
        self.fc = nn.Sequential(nn.Linear(channels + 1, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        context = torch.cat([x.mean(dim=(2, 3)), snr], dim=1)
        return x * self.fc(context)[:, :, None, None]


class SNRFusion(nn.Module):
    """SNR fused by a small FC (paper eqs. 15-17): x scaled channel-wise by sigmoid(FC(snr_db)).

    forward(x [B, C, H, W], snr [B, 1] dB) -> [B, C, H, W].
    """

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        return x * self.fc(snr)[:, :, None, None]


class SNRConditioned(nn.Module):
    """A feature block followed by an SNR module: forward(x, snr [B, 1]) = condition(block(x), snr)."""

    def __init__(self, block: nn.Module, condition: nn.Module):
        super().__init__()
        self.block = block
        self.condition = condition

    def forward(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        return self.condition(self.block(x), snr)
