"""Precomputed region features (e.g. SCAN's bottom-up attention features) as a frozen image encoder.

Nothing runs: the features are read from a float array [N, R, D] (usually a memory-mapped .npy)
and the first `max_regions` regions of every image are kept, all of them real (mask True).
"""

import numpy as np
import torch
from torch import Tensor


class PrecomputedRegions:
    """An image "encoder" over precomputed regions of shape `regions_shape` = (N, R, D);
    it keeps min(max_regions, R) regions of D values each (`out_dim` = D)."""

    def __init__(self, name: str, max_regions: int, regions_shape: tuple[int, ...]):
        self.name = name
        self.max_regions = min(max_regions, regions_shape[1])
        self.out_dim = regions_shape[2]

    def encode(self, regions: np.ndarray, boxes: None = None) -> tuple[Tensor, Tensor]:
        """regions float [B, R, D] -> (feats float32 [B, max_regions, D], mask bool [B, max_regions] all True)."""
        feats = torch.from_numpy(np.array(regions[:, : self.max_regions], dtype=np.float32))  # a copy of the memory map
        return feats, torch.ones(feats.shape[:2], dtype=torch.bool)
