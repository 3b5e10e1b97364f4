"""A client's local data: its share of the training images, seen through its own frozen encoders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semfed.config import ClientProfile, SemfedConfig
from semfed.data.dataset import CAPTIONS_PER_IMAGE, RetrievalDataset
from semfed.data.features import split_features
from semfed.data.partition import follow_partition, partition_indices
from semfed.retrieval.skb import SemanticKnowledgeBase


@dataclass
class Modality:
    """Frozen features of one modality: feats [N, ..., L, D] float16, mask [N, ..., L] bool."""

    encoder: str
    feats: torch.Tensor
    mask: torch.Tensor


@dataclass
class Shard:
    """N paired samples of one client.

    indices: the training images [N]; annotations: the image whose annotation (five captions
    and their concepts) each row carries [N], different from `indices` where the label is
    corrupted. image: regions [N, R, D] (None for a text-only client); text: tokens of all five
    captions [N, 5, T, D] (None for an image-only client); caption_labels [N, 5, K]
    multi-hot SKB concepts each caption names; image_labels [N, K] their union.
    A text-only client's captions are its inputs, so only their concepts follow the annotation.
    """

    indices: np.ndarray
    annotations: np.ndarray
    image: Modality | None
    text: Modality | None
    caption_labels: torch.Tensor
    image_labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def noisy(self) -> torch.Tensor:
        """[N] bool: rows whose annotation belongs to another image (injected label noise)."""
        return torch.as_tensor(self.annotations != self.indices)


def client_indices(cfg: SemfedConfig, scenes: RetrievalDataset) -> list[np.ndarray]:
    """Training-image indices of every client, from the run seed."""
    return partition_indices(scenes.splits["train"].main_classes(), len(cfg.client_profiles), cfg.partitioning,
                             cfg.dirichlet_alpha, cfg.seed)


def client_test_indices(cfg: SemfedConfig, scenes: RetrievalDataset) -> list[np.ndarray]:
    """Test-image indices of every client, each drawn from the client's own data distribution: under 'iid'
    (every client's is the whole split's) near-equal random parts of the test split; under 'dirichlet' the
    test split shared out as the clients hold each class of training images (follow_partition). A client
    can get none when there are fewer test images than clients."""
    n_test = len(scenes.splits["test"].captions)
    if cfg.partitioning == "iid":
        order = np.random.default_rng(cfg.seed).permutation(n_test)
        return [np.sort(part) for part in np.array_split(order, len(cfg.client_profiles))]
    return follow_partition(scenes.splits["train"].main_classes(), client_indices(cfg, scenes),
                            scenes.splits["test"].main_classes(), cfg.seed)


def build_shard(cfg: SemfedConfig, scenes: RetrievalDataset, skb: SemanticKnowledgeBase, profile: ClientProfile,
                indices: np.ndarray, annotations: np.ndarray | None = None, split: str = "train") -> Shard:
    """Gather one client's features and concept labels for the given image indices, each row
    annotated by image `annotations[r]` (default: its own)."""
    annotations = np.asarray(indices if annotations is None else annotations)
    captions = scenes.splits[split].captions
    caption_labels = torch.stack([skb.labels(captions[i]) for i in annotations.tolist()])  # [N, 5, K]
    image = text = None
    if profile.image_encoder:
        f = split_features(cfg, scenes, profile.image_encoder, split)
        idx = torch.tensor(indices, dtype=torch.long)  # a copy: indices may be a read-only cached array
        image = Modality(profile.image_encoder, f["feats"][idx], f["mask"][idx])
    if profile.text_encoder:
        f = split_features(cfg, scenes, profile.text_encoder, split)
        idx = torch.tensor(annotations if profile.image_encoder else indices, dtype=torch.long)
        rows = (idx[:, None] * CAPTIONS_PER_IMAGE + torch.arange(CAPTIONS_PER_IMAGE)).reshape(-1)
        text = Modality(profile.text_encoder,
                        f["feats"][rows].view(len(idx), CAPTIONS_PER_IMAGE, *f["feats"].shape[1:]),
                        f["mask"][rows].view(len(idx), CAPTIONS_PER_IMAGE, -1))
    return Shard(np.asarray(indices), annotations, image, text, caption_labels, caption_labels.amax(dim=1))
