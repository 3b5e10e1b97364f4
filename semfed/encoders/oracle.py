"""Oracle encoders for the embedded scenes: features that are the ground truth the scene generator knows,
so that an adapter trained on them shows the highest RSUM this data admits (the ceiling every real
encoder is read against).

A region feature (`oracle-image`) is, per object in drawing order, the one-hot value of each attribute
(the scenes': shape, colour, size), followed by the five box-geometry values region encoders append
(semfed.encoders.regions).
A token feature (`oracle-text`) is, per lower-cased word of the caption, the one-hot identity of the word
in the training captions' word list (a word the training captions lack: all zero; its mask stays True).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor

from semfed.encoders.regions import GEOMETRY_DIM, box_geometry

WORD = re.compile(r"[a-z]+")


def caption_words(text: str) -> list[str]:
    """The lower-cased words of a caption, in order."""
    return WORD.findall(text.lower())


def word_list(captions: list[str]) -> tuple[str, ...]:
    """Every word of `captions`, sorted: the oracle text encoder's vocabulary."""
    return tuple(sorted({w for caption in captions for w in caption_words(caption)}))


class OracleRegions:
    """Ground-truth region features of scene images: encode(objects, boxes, image_side).
    attributes: (attribute, its values in order) per attribute an object dict holds, e.g. ("shape", SHAPES)."""

    def __init__(self, max_regions: int, attributes: tuple[tuple[str, tuple[str, ...]], ...]):
        self.max_regions, self.attributes = max_regions, attributes
        self.out_dim = sum(len(values) for _, values in attributes) + GEOMETRY_DIM

    def encode(self, objects: list[list[dict[str, str]]], boxes: list[np.ndarray], image_side: int) -> tuple[Tensor, Tensor]:
        """objects: per image its objects' {attribute: value}; boxes: per image [n_i, 4] xyxy pixels
        of an image_side x image_side image. Returns (feats float32 [B, R, out_dim], mask bool [B, R]),
        R = max_regions; objects past R are dropped, padding rows are zero with mask False."""
        feats = torch.zeros(len(objects), self.max_regions, self.out_dim)
        mask = torch.zeros(len(objects), self.max_regions, dtype=torch.bool)
        for i, (image_objects, image_boxes) in enumerate(zip(objects, boxes)):
            n = min(len(image_objects), self.max_regions)
            offset = 0
            for attribute, values in self.attributes:
                for j, obj in enumerate(image_objects[:n]):
                    feats[i, j, offset + values.index(obj[attribute])] = 1.0
                offset += len(values)
            pixel_boxes = torch.as_tensor(np.asarray(image_boxes, dtype=np.float32).reshape(-1, 4)[:n])
            feats[i, :n, offset:] = box_geometry(pixel_boxes, image_side, image_side)
            mask[i, :n] = True
        return feats, mask


class OracleTokens:
    """Ground-truth token features: each word's one-hot identity in `vocabulary`."""

    def __init__(self, vocabulary: tuple[str, ...], max_tokens: int):
        self.index = {word: i for i, word in enumerate(vocabulary)}
        self.max_tokens, self.out_dim = max_tokens, len(vocabulary)

    def encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Returns (feats float32 [B, T, |vocabulary|], mask bool [B, T]), T = max_tokens; words past T are
        dropped."""
        feats = torch.zeros(len(texts), self.max_tokens, self.out_dim)
        mask = torch.zeros(len(texts), self.max_tokens, dtype=torch.bool)
        for i, text in enumerate(texts):
            words = caption_words(text)[: self.max_tokens]
            for t, word in enumerate(words):
                if word in self.index:
                    feats[i, t, self.index[word]] = 1.0
            mask[i, : len(words)] = True
        return feats, mask
