"""Teaching a frozen detector the data, as real bottom-up features are taught it (Faster R-CNN pre-trained
on Visual Genome with object and attribute heads): a box head trained with object and attribute classifiers.

Starting from a detector (here: the BatchNorm-adapted one), the RoI box head (fc6, fc7: the layers whose
output is the region feature) is trained on the ground-truth regions of the training images with the
detector's own object classifier (`box_predictor.cls_score`, cross-entropy over torchvision's class indices:
0 = background, class k+1 = the k-th value of the first attribute, e.g. the shape) plus one linear head per
further attribute (e.g. colour, size); the losses are summed. The backbone is not trained: on 2 CPU cores a
torchvision detection training step costs about 0.44 s an image (ResNet-50 FPN, 128 px), about 15 min an epoch
of 2000 images, while the backbone's RoI maps are computed once (about 2 min, the cost of extracting the
training split's features, which they then also give) and an epoch of the heads takes about 17 s. The
attribute heads are dropped afterwards: the returned state dict loads into the torchvision detector of that
name, whose box head then gives features that know the attributes.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from semfed.encoders.feature_cache import IMAGE_BATCH, encode_in_batches
from semfed.encoders.regions import RegionEncoder

log = logging.getLogger("semfed.encoders")


def region_labels(objects: list[list[dict[str, str]]], attributes: tuple[tuple[str, tuple[str, ...]], ...],
                  max_regions: int) -> torch.Tensor:
    """int64 [n_regions, len(attributes)]: per region (images in order, each image's first max_regions
    objects) the index of its value of each attribute."""
    rows = [[values.index(obj[name]) for name, values in attributes]
            for image_objects in objects for obj in image_objects[:max_regions]]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, len(attributes))


def pretrain_box_head(encoder: RegionEncoder, images: np.ndarray, boxes: list[np.ndarray],
                      objects: list[list[dict[str, str]]], attributes: tuple[tuple[str, tuple[str, ...]], ...],
                      seed: int, epochs: int = 5, batch_size: int = 64, lr: float = 1e-4,
                      image_batch: int = IMAGE_BATCH) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train `encoder`'s box head and object classifier (with attribute heads) on the ground-truth regions.

    images: uint8 [N, H, W, 3]; boxes: per image [n_i, 4] xyxy pixels; objects: per image its objects'
    {attribute: value}, in box order (each image's first encoder.max_regions are used); attributes:
    (name, values) pairs, the first is the object class. Seeded: the attribute heads' initial weights and
    the batch order come from `seed`. Returns (the detector's state dict, CPU; the images' region features
    under the trained box head, dict(feats float16 [N, R, D], mask bool [N, R]) as encode_images gives
    them with batch_size=image_batch, computed from the backbone maps already at hand). The encoder's
    model is left in eval mode, frozen again.
    """
    if len(attributes) < 1:
        raise ValueError("attribute pre-training needs at least the object-class attribute")
    model = encoder.model
    start = time.perf_counter()
    maps, geometry = [], []  # per image batch: RoI maps [n_regions, C, 7, 7] (CPU), box geometry per image
    for lo in range(0, len(images), image_batch):
        batch_maps, batch_geometry = encoder.pooled_regions(images[lo:lo + image_batch], boxes[lo:lo + image_batch])
        maps.append(batch_maps.cpu())
        geometry.append([g.cpu() for g in batch_geometry])
    pooled = torch.cat(maps)
    del maps
    labels = region_labels(objects, attributes, encoder.max_regions)
    if len(labels) != len(pooled):
        raise ValueError(f"{len(pooled)} boxes but {len(labels)} labelled objects: boxes and objects must match")
    log.info("attribute pre-training of %s: RoI maps of %d regions in %d images computed in %.1f s", encoder.name,
             len(pooled), len(images), time.perf_counter() - start)
    box_head, classifier = model.roi_heads.box_head, model.roi_heads.box_predictor.cls_score
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attribute_heads = nn.ModuleList(nn.Linear(classifier.in_features, len(values)) for _, values in attributes[1:])
    attribute_heads.to(encoder.device)
    trained = [box_head, classifier, attribute_heads]
    for module in trained:
        module.requires_grad_(True).train()
    optimiser = torch.optim.Adam([p for m in trained for p in m.parameters()], lr=lr)
    for epoch in range(epochs):
        order = torch.randperm(len(pooled), generator=generator)
        total, correct = 0.0, torch.zeros(len(attributes))
        for lo in range(0, len(order), batch_size):
            index = order[lo:lo + batch_size]
            x, y = pooled[index].to(encoder.device), labels[index].to(encoder.device)
            hidden = box_head(x)
            class_logits = classifier(hidden)  # [b, num_classes]: 0 = background, k + 1 = object class k
            logits = [class_logits[:, 1:1 + len(attributes[0][1])]] + [head(hidden) for head in attribute_heads]
            loss = nn.functional.cross_entropy(class_logits, y[:, 0] + 1) + sum(
                nn.functional.cross_entropy(z, y[:, k]) for k, z in enumerate(logits) if k > 0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(index)
            correct += torch.stack([(z.argmax(1) == y[:, k]).sum() for k, z in enumerate(logits)]).float().cpu()
        accuracy = ", ".join(f"{name} {c / len(pooled):.0%}" for (name, _), c in zip(attributes, correct))
        log.info("attribute pre-training of %s: epoch %d/%d, loss %.3f, training accuracy %s (%.0f s)", encoder.name,
                 epoch + 1, epochs, total / len(pooled), accuracy, time.perf_counter() - start)
    for module in trained:
        module.requires_grad_(False).eval()
    batch_maps = pooled.split([sum(len(g) for g in batch_geometry) for batch_geometry in geometry])
    features = encode_in_batches(len(images), encoder.max_regions, encoder.out_dim,
                                 lambda lo, hi: encoder.region_features(batch_maps[lo // image_batch],
                                                                        geometry[lo // image_batch]),
                                 image_batch, f"{encoder.name} training regions (pre-trained head)")
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, features
