"""What the federated pipeline needs from a dataset; the synthetic scenes and Flickr30K both provide it.

A dataset has splits "train" and "test" (optionally "val") of N images with exactly five captions
each, the SKB's concept vocabulary, and a fingerprint that keys the feature cache. The frozen
image encoders read a split's `images` (uint8 [N, S, S, 3], plus `boxes` when region-source is
'boxes') or, for precomputed features, its `regions` (float [N, R, D]).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from semfed.data.scene_vocabulary import Concept

CAPTIONS_PER_IMAGE = 5  # every image of every split carries exactly this many captions


class CaptionedSplit:
    """Base of one split: `captions` holds N lists of exactly five captions."""

    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.captions)

    def flat_captions(self) -> list[str]:
        """All 5 * N captions, image-major: caption j of image i is at index 5 * i + j."""
        return [caption for captions in self.captions for caption in captions]

    def main_classes(self) -> np.ndarray:
        """[N] int class of each image, for Dirichlet non-IID partitioning."""
        raise NotImplementedError


class RetrievalDataset(Protocol):
    splits: dict[str, CaptionedSplit]
    concepts: tuple[Concept, ...]
    fingerprint: str
