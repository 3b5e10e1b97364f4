"""What server and clients both build from a config: dataset, SKB, shards and adapters."""

from __future__ import annotations

import functools

import numpy as np
import torch

from semfed.config import SemfedConfig
from semfed.config_values import REGION_FEATURES, encoder_entry
from semfed.data.dataset import RetrievalDataset
from semfed.data.features import feature_dir, load_dataset, split_features
from semfed.data.label_noise import corrupt_annotations
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.adapter.uniform_head import UniformHead, modality
from semfed.retrieval.shards import Shard, build_shard, client_indices, client_test_indices
from semfed.retrieval.skb import SemanticKnowledgeBase, load_skb
from semfed.seeds import label_noise_seed


@functools.lru_cache(maxsize=2)
def dataset_and_skb(cfg: SemfedConfig) -> tuple[RetrievalDataset, SemanticKnowledgeBase]:
    """The run's dataset and SKB (loaded once per process)."""
    scenes = load_dataset(cfg)
    return scenes, load_skb(feature_dir(cfg), scenes.concepts, cfg.skb_encoder, cfg.torch_device)


def read_only(array: np.ndarray) -> np.ndarray:
    """`array`, no longer writable (a per-process cache hands the same array to every caller)."""
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=2)
def client_training_images(cfg: SemfedConfig) -> tuple[np.ndarray, ...]:
    """Each client's training images (semfed.retrieval.shards.client_indices), drawn once per process (the
    partition of the whole training split: a client's shard needs it, and it costs O(images) to draw)."""
    scenes, _ = dataset_and_skb(cfg)
    return tuple(read_only(part) for part in client_indices(cfg, scenes))


@functools.lru_cache(maxsize=2)
def client_test_images(cfg: SemfedConfig) -> tuple[np.ndarray, ...]:
    """Each client's own test images (semfed.retrieval.shards.client_test_indices), drawn once per process."""
    scenes, _ = dataset_and_skb(cfg)
    return tuple(read_only(part) for part in client_test_indices(cfg, scenes))


def client_annotations(cfg: SemfedConfig, scenes: RetrievalDataset, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Client `partition_id`'s training images [N] and the image whose annotation each carries [N]
    (label noise of its group injected from the run seed)."""
    indices = client_training_images(cfg)[partition_id]
    annotations = corrupt_annotations(indices, cfg.noise_rate(partition_id), cfg.label_noise_kind,
                                      len(scenes.splits["train"].captions), seed=label_noise_seed(cfg.seed, partition_id))
    return indices, annotations


def shard_sizes(cfg: SemfedConfig) -> dict[int, int]:
    """Partition id -> images in the training shard the partitioner assigns it (what its num-examples is)."""
    return {pid: len(indices) for pid, indices in enumerate(client_training_images(cfg))}


@functools.lru_cache(maxsize=16)
def client_shard(cfg: SemfedConfig, partition_id: int) -> Shard:
    """Client `partition_id`'s training shard through its own encoders (cached per process)."""
    scenes, skb = dataset_and_skb(cfg)
    profile = cfg.client_profiles[partition_id]
    return build_shard(cfg, scenes, skb, profile, *client_annotations(cfg, scenes, partition_id))


def encoder_dims(cfg: SemfedConfig, encoders: tuple[str, ...]) -> dict[str, int]:
    """Feature width of each frozen encoder, read from its cached test features."""
    scenes, _ = dataset_and_skb(cfg)
    return {e: split_features(cfg, scenes, e, "test")["feats"].shape[-1] for e in encoders}


def build_adapter(cfg: SemfedConfig, encoders: tuple[str, ...], seed: int) -> GraphAdapter | UniformHead:
    """The run method's model for a participant holding `encoders`, initialised from `seed`: a
    GraphAdapter with their stems, or for single-modal a UniformHead with their modalities' heads
    (input width: the federation's widest encoder of each modality)."""
    _, skb = dataset_and_skb(cfg)
    method = cfg.training_method
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method.model == "uniform":
            widest = {}
            for encoder, dim in encoder_dims(cfg, federation_encoders(cfg)).items():
                widest[modality(encoder)] = max(dim, widest.get(modality(encoder), 0))
            held = {modality(e) for e in encoders}
            return UniformHead({m: widest[m] for m in sorted(held)}, skb.embeddings, cfg.adapter_width)
        return graph_adapter(cfg, encoder_dims(cfg, encoders), skb.embeddings)


def graph_adapter(cfg: SemfedConfig, dims: dict[str, int], concepts: torch.Tensor,
                  intra_top_k: int | None = None) -> GraphAdapter:
    """The config's GraphAdapter over encoders of feature widths `dims` and SKB concept embeddings [K, d]
    (concept edges only for a method that has them); intra_top_k: the config's unless given."""
    skb_k = cfg.skb_top_k if cfg.training_method.concept_edges else 0
    return GraphAdapter(dims, concepts, cfg.adapter_width, cfg.gnn_layers,
                        cfg.intra_top_k if intra_top_k is None else intra_top_k, cfg.kernel_sigma, skb_k,
                        cfg.attention_scale, shared_stems(cfg, tuple(dims)))


PREDICTIONS_STEM = "region-predictions"


def shared_stems(cfg: SemfedConfig, encoders: tuple[str, ...]) -> dict[str, str]:
    """Encoder -> the adapter stem it shares: with region-features 'predictions' every detector's regions are
    class probabilities over the same shapes, colours and sizes, so all detectors share one stem (as object
    tags are words of one vocabulary); otherwise none is shared."""
    holds = REGION_FEATURES[cfg.region_features]
    if not holds.predictions or holds.box_head:
        return {}
    return {e: PREDICTIONS_STEM for e in encoders if encoder_entry(e).is_detector}


def federation_encoders(cfg: SemfedConfig) -> tuple[str, ...]:
    """Every frozen encoder some client uses, sorted."""
    return tuple(sorted({e for p in cfg.client_profiles for e in p.encoders}))

