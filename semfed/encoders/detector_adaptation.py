"""Adapting an untrained Faster R-CNN to the scenes without labels: BatchNorm statistics (AdaBN).

No COCO weights can be downloaded here. A seeded, untrained detector evaluated with its
initial BatchNorm statistics (mean 0, variance 1) passes activations through unnormalised:
in MobileNetV3 they shrink to ~1e-8 and every region gets the same box-head output.
Re-estimating each BatchNorm layer's statistics on training images (a label-free forward
pass, no gradient step) gives a frozen detector whose region features follow the image
content. The adapted weights are saved as a state dict and used as the encoder's weights.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from semfed.encoders.regions import build_detector

log = logging.getLogger("semfed.encoders")


@torch.no_grad()
def adapt_batchnorm(name: str, images: np.ndarray, image_size: int, seed: int, batch_size: int = 32,
                    device: str = "cpu", weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Detector `name` built from `seed` (as RegionEncoder builds it; then given `weights`, a state dict, if
    any) with every BatchNorm layer's running mean/variance set to the exact average over `images` (uint8
    [N, S, S, 3]). Returns its state dict; all other weights are untouched."""
    model = build_detector(name, image_size, seed)
    if weights is not None:
        model.load_state_dict(weights)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    model.to(device).eval()
    for norm in norms:
        norm.train()
    start = time.perf_counter()
    for lo in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[lo:lo + batch_size])).to(device).permute(0, 3, 1, 2).float().div(255)
        batch, _ = model.transform(list(x))
        model.backbone(batch.tensors)
    log.info("adapted %d BatchNorm layers of %s on %d images in %.1f s", len(norms), name, len(images),
             time.perf_counter() - start)
    for norm in norms:
        norm.momentum = 0.1
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
