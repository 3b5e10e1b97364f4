"""Where a run's data and frozen-encoder features come from: scenes or Flickr30K on disk, features in the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from semfed.config import SemfedConfig
from semfed.config_values import IMAGE_ENCODERS, ORACLE_IMAGE, ORACLE_TEXT, PRECOMPUTED_ENCODER
from semfed.data.dataset import RetrievalDataset
from semfed.data.flickr30k import load_flickr30k
from semfed.data.scenes import OBJECT_ATTRIBUTES, SceneSpec, load_scenes
from semfed.encoders.feature_cache import cached_features, encode_images, encode_texts, feature_key
from semfed.encoders.oracle import OracleRegions, OracleTokens, word_list
from semfed.encoders.precomputed import PrecomputedRegions

log = logging.getLogger("semfed.data")

DETECTOR_INIT_SEED = 0  # untrained detectors are built from this seed: one frozen encoder for every run


def scene_spec(cfg: SemfedConfig) -> SceneSpec:
    return SceneSpec(seed=cfg.scenes_seed, n_train=cfg.scenes_train, n_val=cfg.scenes_val,
                     n_test=cfg.scenes_test, image_size=cfg.scenes_image_size)


def load_dataset(cfg: SemfedConfig) -> RetrievalDataset:
    """The run's dataset: the embedded scenes (generated once into work-dir/data) or a local Flickr30K copy."""
    if cfg.dataset == "flickr30k":
        return load_flickr30k(cfg.flickr30k_path, cfg.flickr30k_layout, cfg.flickr30k_concepts, cfg.flickr30k_images)
    return load_scenes(cfg.root / "data", scene_spec(cfg))


def feature_dir(cfg: SemfedConfig) -> Path:
    return cfg.root / "features"


ADAPTATION_IMAGES = 256  # training images used to re-estimate an untrained detector's BatchNorm statistics
PRETRAINING_EPOCHS = 5  # detector-adaptation 'attributes': epochs of the box head over the training regions


def detector_weights(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str) -> str:
    """The image encoder's weights file: the configured one; else, by detector-adaptation, the seeded detector
    with BatchNorm statistics adapted to the training images ('batchnorm'), that detector with its box head
    then trained on the training scenes' objects and attributes ('attributes'), or '' (the seeded untrained
    detector, 'none'). Computed once into work-dir/detectors, keyed by content."""
    if cfg.encoder_weights(encoder) or cfg.detector_adaptation == "none":
        return cfg.encoder_weights(encoder)
    size = cfg.encoder_input_size(encoder)
    train = scenes.splits["train"]

    def adapted() -> dict[str, torch.Tensor]:
        from semfed.encoders.detector_adaptation import adapt_batchnorm

        return adapt_batchnorm(encoder, train.images[:ADAPTATION_IMAGES], size, DETECTOR_INIT_SEED,
                               device=cfg.torch_device)

    spec = {"kind": "adabn", "name": encoder, "image_size": size, "seed": DETECTOR_INIT_SEED, "images": ADAPTATION_IMAGES}
    path = _cached_weights(cfg, spec, scenes, adapted)
    if cfg.detector_adaptation == "batchnorm":
        return path
    spec = {"kind": "attribute-heads", "name": encoder, "image_size": size, "seed": DETECTOR_INIT_SEED,
            "max_regions": cfg.max_regions, "epochs": PRETRAINING_EPOCHS, "weights_path": path}
    computed = {}

    def pretrained() -> dict[str, torch.Tensor]:
        from semfed.encoders.attribute_pretraining import pretrain_box_head
        from semfed.encoders.regions import RegionEncoder

        model = RegionEncoder(encoder, size, cfg.max_regions, DETECTOR_INIT_SEED, path, device=cfg.torch_device)
        state, computed["train"] = pretrain_box_head(model, train.images, train.boxes, train.objects,
                                                     OBJECT_ATTRIBUTES, DETECTOR_INIT_SEED, epochs=PRETRAINING_EPOCHS)
        return state

    weights = _cached_weights(cfg, spec, scenes, pretrained)
    if computed and cfg.region_source == "boxes":  # the training split's features came with the pre-training
        key = feature_key(region_spec(cfg, encoder, weights), scenes.fingerprint, "train")
        cached_features(feature_dir(cfg), key, lambda: computed["train"])
    return weights


def _cached_weights(cfg: SemfedConfig, spec: dict, scenes: RetrievalDataset, compute) -> str:
    """Path of work-dir/detectors/<key>.pt for the detector weights `spec` names, computed first if absent."""
    folder = cfg.root / "detectors"
    key = feature_key(spec, scenes.fingerprint, "train")
    path = folder / f"{key}.pt"
    if not path.exists():
        cached_features(folder, key, compute)
    return str(path)


def region_spec(cfg: SemfedConfig, encoder: str, weights_path: str) -> dict:
    """The spec (and RegionEncoder arguments) of detector `encoder`'s region features with those weights."""
    return {"kind": "regions", "name": encoder, "image_size": cfg.encoder_input_size(encoder),
            "max_regions": cfg.max_regions, "seed": DETECTOR_INIT_SEED, "weights_path": weights_path,
            "source": cfg.region_source}


def encoder_spec(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str) -> dict:
    """Everything that determines an encoder's features; also its constructor arguments."""
    if encoder == PRECOMPUTED_ENCODER:
        return {"kind": "precomputed", "name": encoder, "max_regions": cfg.max_regions}
    if encoder == ORACLE_IMAGE:
        return {"kind": "oracle-regions", "name": encoder, "max_regions": cfg.max_regions}
    if encoder == ORACLE_TEXT:
        return {"kind": "oracle-tokens", "name": encoder, "max_tokens": cfg.max_tokens}
    if encoder in IMAGE_ENCODERS:
        return region_spec(cfg, encoder, detector_weights(cfg, scenes, encoder))
    return {"kind": "tokens", "name": encoder, "max_tokens": cfg.max_tokens}


def split_features(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str, split: str) -> dict[str, torch.Tensor]:
    """Frozen features of one split: dict(feats float16, mask bool).

    Image encoders give [N_images, R, D] (bottom-up: the split's precomputed regions); text
    encoders [N_images * 5, T, D] in flat_captions() order. Computed once per encoder, dataset
    and split, then memory-mapped.
    """
    spec = encoder_spec(cfg, scenes, encoder)
    data = scenes.splits[split]

    def compute() -> dict[str, torch.Tensor]:
        args = {k: v for k, v in spec.items() if k != "kind"}
        if spec["kind"] == "precomputed":
            model = PrecomputedRegions(**args, regions_shape=data.regions.shape)
            return encode_images(model, data.regions, None, progress_label=f"{encoder} {split} regions")
        if spec["kind"] == "oracle-regions":
            feats, mask = OracleRegions(cfg.max_regions, OBJECT_ATTRIBUTES).encode(data.objects, data.boxes,
                                                                                  data.images.shape[1])
            return {"feats": feats.half(), "mask": mask}
        if spec["kind"] == "oracle-tokens":
            vocabulary = word_list(scenes.splits["train"].flat_captions())
            feats, mask = OracleTokens(vocabulary, cfg.max_tokens).encode(data.flat_captions())
            return {"feats": feats.half(), "mask": mask}
        if spec["kind"] == "regions":
            from semfed.encoders.regions import RegionEncoder

            model = RegionEncoder(**args, device=cfg.torch_device)
            boxes = data.boxes if cfg.region_source == "boxes" else None
            return encode_images(model, data.images, boxes, progress_label=f"{encoder} {split} images")
        from semfed.encoders.tokens import TokenEncoder

        model = TokenEncoder(**args, device=cfg.torch_device)
        return encode_texts(model, data.flat_captions(), progress_label=f"{encoder} {split} captions")

    return cached_features(feature_dir(cfg), feature_key(spec, scenes.fingerprint, split), compute)


def prepare_features(cfg: SemfedConfig, scenes: RetrievalDataset, splits: tuple[str, ...] = ("train", "test")) -> None:
    """Fill the feature cache for every encoder any client uses (done once, before round 1)."""
    encoders = sorted({e for p in cfg.client_profiles for e in p.encoders})
    for encoder in encoders:
        for split in splits:
            split_features(cfg, scenes, encoder, split)
