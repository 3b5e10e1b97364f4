"""Image reconstruction quality: PSNR and MS-SSIM per image, for images in [0, 1]."""

from __future__ import annotations

import pytorch_msssim
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

MSSSIM_MAX_WIN = 11  # the standard Gaussian window (Wang et al. 2003), used when the image allows it
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first
MSSSIM_MIN_SCALES = 3


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError("expected two image batches [B, C, H, W] of one shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, 10 log10(1 / MSE) for pixel range 1: [B, C, H, W] x 2 -> [B].

    Identical images (MSE = 0) give +inf; no cap is applied.
    """
    _check_pair(x, y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def msssim_scales(height: int, width: int) -> tuple[int, int]:
    """(Gaussian window, scales) of MS-SSIM on H x W images.

    Above 32 px on the shorter side: 5 scales with the largest odd window <= 11 such that
    min(H, W) > (win - 1) * 16 (pytorch_msssim's requirement after 4 halvings): 11 from 161 px up,
    7 at 128 px, 3 at 48 px. From 9 to 32 px (CIFAR-sized): window 3 and the most scales whose
    coarsest still exceeds the window, min(H, W) > 2 ** scales: 4 at 17-32 px, 3 at 9-16 px.
    ValueError below 9 px. Scores taken with different windows or scales are not comparable:
    compare images of one size.
    """
    side = min(height, width)
    if side > 32:
        win = min(MSSSIM_MAX_WIN, (side - 1) // 16 + 1)
        return win - (1 - win % 2), len(MSSSIM_WEIGHTS)  # window rounded down to odd
    scales = (side - 1).bit_length() - 1  # the largest s with side > 2 ** s
    if scales < MSSSIM_MIN_SCALES:
        raise ValueError(f"MS-SSIM needs at least {MSSSIM_MIN_SCALES} scales: images of 9 px or more on the "
                         f"shorter side, got {height}x{width}")
    return 3, scales


def ms_ssim_scales(x: torch.Tensor, y: torch.Tensor, win_size: int, scales: int) -> torch.Tensor:
    """MS-SSIM per image over `scales` scales (the first `scales` standard weights, renormalised to sum
    to 1), pytorch_msssim's computation otherwise: [B, C, H, W] x 2 -> [B]. With 5 scales it is
    pytorch_msssim.ms_ssim; fewer serve images too small for its 4 halvings."""
    weights = x.new_tensor(MSSSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    win = _fspecial_gauss_1d(win_size, 1.5).repeat([x.shape[1], 1, 1, 1])
    contrast_structure = []
    for scale in range(scales):
        ssim_per_channel, cs = _ssim(x, y, win=win, data_range=1.0, size_average=False, K=(0.01, 0.03))
        if scale < scales - 1:
            contrast_structure.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=padding), F.avg_pool2d(y, kernel_size=2, padding=padding)
    terms = torch.stack(contrast_structure + [torch.relu(ssim_per_channel)])  # [scales, B, C]
    return torch.prod(terms ** weights.view(-1, 1, 1), dim=0).mean(1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image (data range 1, window and scales from msssim_scales): [B, C, H, W] x 2 -> [B]
    in [0, 1]. The standard 5 scales go through pytorch_msssim.ms_ssim."""
    _check_pair(x, y)
    win_size, scales = msssim_scales(x.shape[2], x.shape[3])
    if scales == len(MSSSIM_WEIGHTS):
        return pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win_size)
    return ms_ssim_scales(x, y, win_size, scales)
