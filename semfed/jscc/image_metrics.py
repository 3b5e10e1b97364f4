"""Image reconstruction quality: PSNR and MS-SSIM per image, for images in [0, 1]."""

from __future__ import annotations

import pytorch_msssim
import torch

MSSSIM_MAX_WIN = 11  # the standard Gaussian window (Wang et al. 2003), used when the image allows it


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


def msssim_win_size(height: int, width: int) -> int:
    """Gaussian window for 5-scale MS-SSIM on H x W images: the largest odd size <= 11 with
    min(H, W) > (win - 1) * 16 (pytorch_msssim's requirement after 4 halvings).

    11 from 161 px up, e.g. 7 at 128 px, 3 at 48 px; ValueError at 32 px or less. Scores taken
    with different windows are not comparable: compare images of one size.
    """
    side = min(height, width)
    win = min(MSSSIM_MAX_WIN, (side - 1) // 16 + 1)
    win -= 1 - win % 2  # round down to odd
    if win < 3:
        raise ValueError(f"MS-SSIM needs images larger than 32 px on the shorter side, got {height}x{width}")
    return win


def ms_ssim(x: torch.Tensor, y: torch.Tensor, win_size: int | None = None) -> torch.Tensor:
    """MS-SSIM per image (pytorch_msssim, data_range 1, 5 scales): [B, C, H, W] x 2 -> [B] in [0, 1].

    win_size None picks msssim_win_size(H, W).
    """
    _check_pair(x, y)
    if win_size is None:
        win_size = msssim_win_size(x.shape[2], x.shape[3])
    return pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win_size)
