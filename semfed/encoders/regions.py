"""Frozen Faster R-CNN region encoder: images + boxes (or RPN proposals) -> region features.

A region feature is what `features` names (REGION_FEATURES), followed by five geometry values of the
box: x1/W, y1/H, x2/W, y2/H, area/(W*H), with W, H the image width and height in pixels.
- 'box-head': the detector's box-head output (1024-d), the bottom-up feature.
- 'predictions': the detector's own predictions for the region, as bottom-up detectors also give them
  (object and attribute classes; OSCAR's and VinVL's object tags): the object classifier's softmax over
  its first `object_classes` classes (background left out), then each attribute head's softmax. The
  attribute heads are the ones pre-training on the scenes keeps in the weights file
  (semfed.encoders.attribute_pretraining).
- 'box-head+predictions': the box-head output scaled to unit length, then the predictions. Unscaled, its
  norm (about 130) would drown the predictions' (about 1.5) in the adapter's linear stem.
"""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.transform import resize_boxes

from semfed.config_values import ENCODERS, REGION_FEATURES, encoder_names
from semfed.tasks import load

GEOMETRY_DIM = 5
REGION_SOURCES = ("boxes", "proposals")
ATTRIBUTE_HEADS = "roi_heads.attribute_heads."  # state-dict prefix of the attribute heads a weights file may hold


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
    `image_size` pixels. features: one of REGION_FEATURES (see the module); 'predictions' needs weights
    with attribute heads and object_classes >= 1, the object classes the detector was trained on.
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
        features: str = "box-head",
        object_classes: int = 0,
    ):
        if source not in REGION_SOURCES:
            raise ValueError(f"unknown region source {source!r}; allowed: {list(REGION_SOURCES)}")
        if features not in REGION_FEATURES:
            raise ValueError(f"unknown region features {features!r}; allowed: {list(REGION_FEATURES)}")
        self.name, self.image_size, self.max_regions = name, image_size, max_regions
        self.seed, self.weights_path, self.source = seed, weights_path, source
        self.features, self.object_classes = features, object_classes
        self.holds = REGION_FEATURES[features]
        self.device = torch.device(device)
        model = build_detector(name, image_size, seed)
        if weights_path:
            _load_weights(model, Path(weights_path))
        self.model = model.eval().requires_grad_(False).to(self.device)
        width = model.roi_heads.box_head.fc7.out_features if self.holds.box_head else 0
        if self.holds.predictions:
            heads = getattr(model.roi_heads, "attribute_heads", None)
            if heads is None:
                raise ValueError(f"region features {features!r} need a detector with attribute heads; the weights "
                                 f"{weights_path or '(untrained)'} have none (detector-adaptation 'attributes' or "
                                 "'backbone' keeps them)")
            if not 1 <= object_classes < model.roi_heads.box_predictor.cls_score.out_features:
                raise ValueError(f"object_classes must be between 1 and the classifier's classes less background, "
                                 f"got {object_classes}")
            width += object_classes + sum(head.out_features for head in heads)
        self.out_dim = width + GEOMETRY_DIM

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
        region_feats = self.described(self.model.roi_heads.box_head(pooled.to(self.device)))
        region_feats = region_feats.split([len(g) for g in geometry])
        feats = torch.zeros(len(geometry), self.max_regions, self.out_dim, device=self.device)
        mask = torch.zeros(len(geometry), self.max_regions, dtype=torch.bool, device=self.device)
        for i, (f, g) in enumerate(zip(region_feats, geometry)):
            feats[i, : len(f)] = torch.cat([f, g.to(self.device)], dim=1)
            mask[i, : len(f)] = True
        return feats, mask

    def described(self, hidden: Tensor) -> Tensor:
        """Box-head outputs [n, 1024] -> the regions' features without geometry [n, out_dim - GEOMETRY_DIM]."""
        if not self.holds.predictions:
            return hidden
        heads = self.model.roi_heads
        objects = heads.box_predictor.cls_score(hidden)[:, 1:1 + self.object_classes]
        parts = [objects.softmax(-1), *(head(hidden).softmax(-1) for head in heads.attribute_heads)]
        if self.holds.box_head:
            parts.insert(0, torch.nn.functional.normalize(hidden, dim=-1))
        return torch.cat(parts, dim=1)

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


def attach_attribute_heads(model: FasterRCNN, heads: torch.nn.ModuleList) -> None:
    """Give `model` attribute heads (linear layers on the box head's output), so that its state dict holds
    them under ATTRIBUTE_HEADS; torchvision's detection forward does not use them."""
    model.roi_heads.attribute_heads = heads


def _load_weights(model: FasterRCNN, path: Path) -> None:
    """Load a state dict from a local file into `model` (with the attribute heads it holds, if any), naming
    the file on any failure."""
    if not path.is_file():
        raise FileNotFoundError(f"detector weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        heads = len({k[len(ATTRIBUTE_HEADS):].split(".")[0] for k in state if k.startswith(ATTRIBUTE_HEADS)})
        if heads:  # heads 0..heads-1 (a missing index is a KeyError, named below)
            shapes = [state[f"{ATTRIBUTE_HEADS}{k}.weight"].shape for k in range(heads)]
            attach_attribute_heads(model, torch.nn.ModuleList(torch.nn.Linear(n_in, n_out) for n_out, n_in in shapes))
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as err:
        raise ValueError(f"detector weights in {path} do not match the model: {err}") from err
