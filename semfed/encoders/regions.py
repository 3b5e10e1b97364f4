"""Frozen Faster R-CNN region encoder: images + boxes (or RPN proposals) -> region features.

A region feature is the detector's box-head output (1024-d), the bottom-up feature, followed by five geometry
values of the box: x1/W, y1/H, x2/W, y2/H, area/(W*H), with W, H the image width and height in pixels.
(region-features 'predictions' are computed from these: semfed.encoders.prediction_heads.)
"""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.transform import resize_boxes

from semfed.config_values import ENCODERS, REGION_SOURCES, encoder_names
from semfed.tasks import load

GEOMETRY_DIM = 5


def build_detector(name: str, image_size: int, seed: int) -> FasterRCNN:
    """Detector `name` (an ENCODERS entry that is_detector) with untrained weights drawn from `seed`, resizing
    images so that their longer side is `image_size` pixels."""
    if name not in ENCODERS or not ENCODERS[name].is_detector:
        raise ValueError(f"unknown image encoder {name!r}; allowed: {encoder_names(lambda e: e.is_detector)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(ENCODERS[name].load)(weights=None, weights_backbone=None, min_size=image_size, max_size=image_size)


def box_geometry(boxes: Tensor, height: int, width: int) -> Tensor:
    """[n,4] xyxy pixel boxes -> [n,5] (x1/W, y1/H, x2/W, y2/H, area/(W*H))."""
    scale = boxes.new_tensor([width, height, width, height])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return torch.cat([boxes / scale, (area / (width * height))[:, None]], dim=1)


class RegionEncoder:
    """Frozen torchvision Faster R-CNN used as a region feature extractor.

    Untrained weights are drawn under `torch.manual_seed(seed)` (the global RNG state is
    left untouched); `weights_path` optionally names a local state-dict file to load.
    Images are resized by the detector's own transform so that their longer side is
    `image_size` pixels.
    """

    def __init__(
        self,
        name: str,
        image_size: int,
        max_regions: int,
        seed: int,
        weights_path: str = "",
        device="cpu",
        source: str = "boxes",
    ):
        if source not in REGION_SOURCES:
            raise ValueError(f"unknown region source {source!r}; allowed: {list(REGION_SOURCES)}")
        self.name, self.image_size, self.max_regions = name, image_size, max_regions
        self.seed, self.weights_path, self.source = seed, weights_path, source
        self.device = torch.device(device)
        model = build_detector(name, image_size, seed)
        if weights_path:
            _load_weights(model, Path(weights_path))
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.out_dim = model.roi_heads.box_head.fc7.out_features + GEOMETRY_DIM

    @torch.no_grad()
    def encode(self, images: np.ndarray, boxes: list[np.ndarray] | None) -> tuple[Tensor, Tensor]:
        """Encode a batch of same-sized images.

        images: uint8 [B,H,W,3] RGB. boxes: per image a [n_i,4] xyxy array in pixels of
        the given images (required when source="boxes"; ignored for "proposals"); only
        the first max_regions boxes are used.
        Returns (feats float32 [B,R,out_dim], mask bool [B,R]) on `device`, R = max_regions;
        padding rows are zero with mask False.
        """
        return self.region_features(*self.pooled_regions(images, boxes))

    @torch.no_grad()
    def region_features(self, pooled: Tensor, geometry: list[Tensor]) -> tuple[Tensor, Tensor]:
        """The box head over pooled_regions' output: (feats float32 [B,R,out_dim], mask bool [B,R]) as encode."""
        region_feats = self.model.roi_heads.box_head(pooled.to(self.device)).split([len(g) for g in geometry])
        feats = torch.zeros(len(geometry), self.max_regions, self.out_dim, device=self.device)
        mask = torch.zeros(len(geometry), self.max_regions, dtype=torch.bool, device=self.device)
        for i, (f, g) in enumerate(zip(region_feats, geometry)):
            feats[i, : len(f)] = torch.cat([f, g.to(self.device)], dim=1)
            mask[i, : len(f)] = True
        return feats, mask

    @torch.no_grad()
    def pooled_regions(self, images: np.ndarray, boxes: list[np.ndarray] | None) -> tuple[Tensor, list[Tensor]]:
        """The backbone's RoI-aligned maps of each image's regions, before the box head (arguments as encode).
        Returns (pooled float32 [sum n_i, C, 7, 7] in image order, geometry: per image [n_i, 5])."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [B,H,W,3], got {images.dtype} {images.shape}")
        batch, height, width = images.shape[:3]
        x = torch.from_numpy(np.array(images)).to(self.device)  # a copy: cached scenes are read-only memory maps
        image_list, _ = self.model.transform(list(x.permute(0, 3, 1, 2).float().div(255)))
        features = self.model.backbone(image_list.tensors)
        new_h, new_w = image_list.image_sizes[0]
        if self.source == "boxes":
            if boxes is None or len(boxes) != batch:
                raise ValueError(f"source='boxes' needs one box array per image ({batch})")
            pixel_boxes = [
                torch.as_tensor(b, dtype=torch.float32, device=self.device).reshape(-1, 4)[: self.max_regions]
                for b in boxes
            ]
            geometry = [box_geometry(b, height, width) for b in pixel_boxes]
            rois = [resize_boxes(b, (height, width), (new_h, new_w)) for b in pixel_boxes]
        else:
            proposals, _ = self.model.rpn(image_list, features)
            rois = [p[: self.max_regions] for p in proposals]
            geometry = [box_geometry(r, new_h, new_w) for r in rois]
        return self.model.roi_heads.box_roi_pool(features, rois, image_list.image_sizes), geometry


def _load_weights(model: FasterRCNN, path: Path) -> None:
    """Load a state dict from a local file into `model`, naming the file on any failure."""
    if not path.is_file():
        raise FileNotFoundError(f"detector weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as err:
        raise ValueError(f"detector weights in {path} do not match the model: {err}") from err
