"""Where a run's data and frozen-encoder features come from: scenes or Flickr30K on disk, features in the cache."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from semfed.config import SemfedConfig
from semfed.config_values import DETECTOR_ADAPTATIONS, REGION_FEATURES, encoder_entry
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
PRETRAINING_EPOCHS = 5  # detector-adaptation 'attributes' and 'backbone': epochs of the box head over the training regions


def detector_weights(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str) -> str:
    """The image encoder's weights file: the configured one; else the seeded detector taught the training
    scenes by detector-adaptation's steps (DETECTOR_ADAPTATIONS): its backbone trained on the objects' crops,
    then its BatchNorm statistics adapted to the training images, then its box head trained on their objects
    and attributes; '' (the seeded untrained detector) for 'none'. Each step's weights are computed once into
    work-dir/detectors, keyed by content (and by the step before)."""
    adaptation = DETECTOR_ADAPTATIONS[cfg.detector_adaptation]
    if cfg.encoder_weights(encoder) or not adaptation.batchnorm:
        return cfg.encoder_weights(encoder)
    size = cfg.encoder_input_size(encoder)
    train = scenes.splits["train"]
    path = ""
    if adaptation.backbone:
        def crop_trained() -> dict[str, torch.Tensor]:
            from semfed.encoders.backbone_pretraining import pretrain_backbone

            return pretrain_backbone(encoder, size, DETECTOR_INIT_SEED, train.images, train.boxes, train.objects,
                                     OBJECT_ATTRIBUTES, cfg.max_regions, epochs=cfg.detector_backbone_epochs,
                                     device=cfg.torch_device)

        spec = {"kind": "crop-backbone", "name": encoder, "image_size": size, "seed": DETECTOR_INIT_SEED,
                "max_regions": cfg.max_regions, "epochs": cfg.detector_backbone_epochs}
        path = _cached_weights(cfg, spec, scenes, crop_trained)

    def adapted() -> dict[str, torch.Tensor]:
        from semfed.encoders.detector_adaptation import adapt_batchnorm

        start = torch.load(path, map_location="cpu", weights_only=True) if path else None
        return adapt_batchnorm(encoder, train.images[:ADAPTATION_IMAGES], size, DETECTOR_INIT_SEED,
                               device=cfg.torch_device, weights=start)

    spec = {"kind": "adabn", "name": encoder, "image_size": size, "seed": DETECTOR_INIT_SEED, "images": ADAPTATION_IMAGES,
            **({"weights_path": path} if path else {})}
    path = _cached_weights(cfg, spec, scenes, adapted)
    if not adaptation.box_head:
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
    if computed and cfg.region_source == "boxes":  # the training split's box-head features came with the pre-training
        key = feature_key(box_head_spec(cfg, encoder, weights), scenes.fingerprint, "train")
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


def box_head_spec(cfg: SemfedConfig, encoder: str, weights_path: str, source: str | None = None) -> dict:
    """The spec (and RegionEncoder arguments) of detector `encoder`'s box-head region features with those
    weights, from `source` (the run's region-source unless given)."""
    return {"kind": "regions", "name": encoder, "image_size": cfg.encoder_input_size(encoder),
            "max_regions": cfg.max_regions, "seed": DETECTOR_INIT_SEED, "weights_path": weights_path,
            "source": source or cfg.region_source}


def region_spec(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str) -> dict:
    """The spec of detector `encoder`'s region features as region-features names them: the box head's; or,
    with predictions, the spec of those box-head features and the file of the prediction heads fitted on
    the training split's (semfed.encoders.prediction_heads)."""
    box_head = box_head_spec(cfg, encoder, detector_weights(cfg, scenes, encoder))
    holds = REGION_FEATURES[cfg.region_features]
    if not holds.predictions:
        return box_head
    return {"kind": "region-predictions", "box_head": box_head, "keep_box_head": holds.box_head,
            "heads_path": prediction_heads(cfg, scenes, encoder, box_head["weights_path"])}


def prediction_heads(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str, weights_path: str) -> str:
    """Path of work-dir/detectors/<key>.pt: the prediction heads (one per object attribute) fitted on the
    box-head features of the training split's ground-truth boxes, computed first if absent."""
    from semfed.encoders.prediction_heads import MAX_ITERATIONS

    box_head = box_head_spec(cfg, encoder, weights_path, source="boxes")
    train_key = feature_key(box_head, scenes.fingerprint, "train")

    def fitted() -> dict[str, torch.Tensor]:
        from semfed.encoders.prediction_heads import fit_prediction_heads

        x, labels = labelled_regions(cfg.replace(region_features="box-head", region_source="boxes"), scenes, encoder,
                                     "train")  # the features under train_key
        log.info("%s: fitting prediction heads on %d training regions", encoder, len(x))
        return fit_prediction_heads(x, labels, tuple(len(values) for _, values in OBJECT_ATTRIBUTES))

    spec = {"kind": "prediction-heads", "name": encoder, "features": train_key, "max_iterations": MAX_ITERATIONS}
    return _cached_weights(cfg, spec, scenes, fitted)


def labelled_regions(cfg: SemfedConfig, scenes: RetrievalDataset, encoder: str,
                     split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x float16 [n_regions, D]: detector `encoder`'s region features as cfg describes them, without the box
    geometry; labels int64 [n_regions, len(OBJECT_ATTRIBUTES)]: each region's value index per attribute) of one
    split of the scenes. Region j of image i is object j of image i (region-source 'boxes')."""
    from semfed.encoders.attribute_pretraining import region_labels
    from semfed.encoders.regions import GEOMETRY_DIM

    features = split_features(cfg, scenes, encoder, split)
    x = features["feats"][features["mask"]][:, :-GEOMETRY_DIM]
    labels = region_labels(scenes.splits[split].objects, OBJECT_ATTRIBUTES, cfg.max_regions)
    if len(labels) != len(x):
        raise ValueError(f"{encoder}: {len(x)} {split} regions but {len(labels)} labelled objects: region-source "
                         "must be 'boxes'")
    return x, labels


@dataclass(frozen=True)
class FeatureKind:
    """How one kind of encoder's features are made. spec(cfg, dataset, encoder) -> dict: everything that
    determines the features (the cache key; where an encoder model computes them, its entries but 'kind' are
    also the constructor arguments).
    compute(cfg, dataset, spec, split) -> dict(feats float16, mask bool) of that split."""

    spec: Callable[[SemfedConfig, RetrievalDataset, str], dict]
    compute: Callable[[SemfedConfig, RetrievalDataset, dict, str], dict[str, torch.Tensor]]


def _arguments(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "kind"}


def _precomputed(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    data = dataset.splits[split]
    model = PrecomputedRegions(**_arguments(spec), regions_shape=data.regions.shape)
    return encode_images(model, data.regions, None, progress_label=f"{spec['name']} {split} regions")


def _oracle_regions(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    data = dataset.splits[split]
    feats, mask = OracleRegions(cfg.max_regions, OBJECT_ATTRIBUTES).encode(data.objects, data.boxes,
                                                                          data.images.shape[1])
    return {"feats": feats.half(), "mask": mask}


def _oracle_tokens(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    vocabulary = word_list(dataset.splits["train"].flat_captions())
    feats, mask = OracleTokens(vocabulary, cfg.max_tokens).encode(dataset.splits[split].flat_captions())
    return {"feats": feats.half(), "mask": mask}


def _box_head_regions(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    from semfed.encoders.regions import RegionEncoder

    data = dataset.splits[split]
    model = RegionEncoder(**_arguments(spec), device=cfg.torch_device)
    boxes = data.boxes if spec["source"] == "boxes" else None
    return encode_images(model, data.images, boxes, progress_label=f"{spec['name']} {split} images")


def _detector_regions(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    if spec["kind"] == "regions":
        return _box_head_regions(cfg, dataset, spec, split)
    from semfed.encoders.prediction_heads import predicted_regions

    box_head = spec["box_head"]
    features = cached_features(feature_dir(cfg), feature_key(box_head, dataset.fingerprint, split),
                               lambda: _box_head_regions(cfg, dataset, box_head, split))
    heads = torch.load(spec["heads_path"], map_location="cpu", weights_only=True)
    return predicted_regions(features, heads, spec["keep_box_head"])


def _tokens(cfg: SemfedConfig, dataset: RetrievalDataset, spec: dict, split: str) -> dict[str, torch.Tensor]:
    from semfed.encoders.tokens import TokenEncoder

    model = TokenEncoder(**_arguments(spec), device=cfg.torch_device)
    captions = dataset.splits[split].flat_captions()
    return encode_texts(model, captions, progress_label=f"{spec['name']} {split} captions")


FEATURE_KINDS = {  # the keys of semfed.config_values.Encoder.features
    "precomputed": FeatureKind(lambda cfg, dataset, name: {"kind": "precomputed", "name": name,
                                                           "max_regions": cfg.max_regions}, _precomputed),
    "oracle-regions": FeatureKind(lambda cfg, dataset, name: {"kind": "oracle-regions", "name": name,
                                                              "max_regions": cfg.max_regions}, _oracle_regions),
    "oracle-tokens": FeatureKind(lambda cfg, dataset, name: {"kind": "oracle-tokens", "name": name,
                                                             "max_tokens": cfg.max_tokens}, _oracle_tokens),
    "regions": FeatureKind(region_spec, _detector_regions),
    "tokens": FeatureKind(lambda cfg, dataset, name: {"kind": "tokens", "name": name, "max_tokens": cfg.max_tokens},
                          _tokens),
}


def encoder_spec(cfg: SemfedConfig, scenes: RetrievalDataset, name: str) -> dict:
    """Everything that determines an encoder's features; also its constructor arguments."""
    return FEATURE_KINDS[encoder_entry(name).features].spec(cfg, scenes, name)


def split_features(cfg: SemfedConfig, scenes: RetrievalDataset, name: str, split: str) -> dict[str, torch.Tensor]:
    """Frozen features of one split: dict(feats float16, mask bool).

    Image encoders give [N_images, R, D] (bottom-up: the split's precomputed regions); text
    encoders [N_images * 5, T, D] in flat_captions() order. Computed once per encoder, dataset
    and split, then memory-mapped.
    """
    spec = encoder_spec(cfg, scenes, name)
    kind = FEATURE_KINDS[encoder_entry(name).features]
    return cached_features(feature_dir(cfg), feature_key(spec, scenes.fingerprint, split),
                           lambda: kind.compute(cfg, scenes, spec, split))


def prepare_features(cfg: SemfedConfig, scenes: RetrievalDataset, splits: tuple[str, ...] = ("train", "test")) -> None:
    """Fill the feature cache for every encoder any client uses (done once, before round 1)."""
    encoders = sorted({e for p in cfg.client_profiles for e in p.encoders})
    for encoder in encoders:
        for split in splits:
            split_features(cfg, scenes, encoder, split)
