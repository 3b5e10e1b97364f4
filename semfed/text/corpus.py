"""The sentences seed 003's devices send (task = text): the embedded scenes' captions or a local text
file, split into training and test sentences, their word pieces as ids of the corpus vocabulary, and
the frozen text encoder's features of those word pieces (cached in work-dir/features)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger("semfed.text")

PAD, UNKNOWN = 0, 1  # vocabulary ids of padding and of a word piece the training sentences never use
TEST_FRACTION = 0.2  # of a text file's lines (seeded split); the scenes have their own test split
FEATURE_BATCH = 64  # sentences the frozen encoder encodes at once


@dataclass(frozen=True)
class Sentences:
    """train, test: the sentences (str). Their order is fixed by the corpus and the seed."""

    train: tuple[str, ...]
    test: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex chars) of both lists: the feature cache's key."""
        digest = hashlib.sha256("\n".join(self.train).encode() + b"\0" + "\n".join(self.test).encode())
        return digest.hexdigest()[:16]


def read_sentences(path: str, seed: int) -> tuple[list[str], list[str]]:
    """A UTF-8 text file, one sentence per line (blank lines skipped) -> (train, test): a seeded
    TEST_FRACTION of the lines, at least one, is the test set. ValueError naming the file if it holds
    fewer than 2 sentences."""
    lines = [line.strip() for line in Path(path).expanduser().read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise ValueError(f"text-corpus: {path!r} holds {len(lines)} sentence(s); it needs at least 2 "
                         "(one per line: some to train on, some to test)")
    order = np.random.default_rng(seed).permutation(len(lines))
    n_test = max(1, int(round(TEST_FRACTION * len(lines))))
    return [lines[i] for i in sorted(order[n_test:])], [lines[i] for i in sorted(order[:n_test])]


class Vocabulary:
    """Word-piece ids of the text encoder's tokenizer -> compact ids: PAD, UNKNOWN, then every word piece
    the training sentences use, ascending. The receiver classifies over these (size = len(self))."""

    def __init__(self, tokenizer_ids: Tensor):
        known = torch.unique(tokenizer_ids[tokenizer_ids >= 0])
        self.tokenizer_ids = known  # [V - 2] ascending
        self.lookup = {int(t): i + 2 for i, t in enumerate(known)}

    def __len__(self) -> int:
        return len(self.tokenizer_ids) + 2

    def encode(self, tokenizer_ids: Tensor) -> Tensor:
        """[N, W] tokenizer ids (-1 = padding) -> [N, W] int64 vocabulary ids."""
        out = torch.full_like(tokenizer_ids, PAD)
        for (row, col), token in zip(torch.nonzero(tokenizer_ids >= 0).tolist(), tokenizer_ids[tokenizer_ids >= 0].tolist()):
            out[row, col] = self.lookup.get(token, UNKNOWN)
        return out

    def decode(self, ids: Tensor) -> Tensor:
        """[N, W] vocabulary ids -> [N, W] tokenizer ids; PAD and UNKNOWN -> -1 (dropped from the text)."""
        table = torch.cat([torch.tensor([-1, -1]), self.tokenizer_ids])
        return table[ids.clamp(0, len(self) - 1)]


def word_pieces(tokenizer, texts: list[str] | tuple[str, ...], words: int) -> Tensor:
    """Each sentence's first `words` word pieces (no [CLS] / [SEP]) as tokenizer ids [N, words], -1 after
    the sentence ends: the same slots as semfed.encoders.tokens.TokenEncoder.encode's features."""
    ids = torch.full((len(texts), words), -1, dtype=torch.int64)
    for row, pieces in enumerate(tokenizer(list(texts), add_special_tokens=False)["input_ids"]):
        ids[row, :min(words, len(pieces))] = torch.tensor(pieces[:words], dtype=torch.int64)
    return ids


def to_text(tokenizer, tokenizer_ids: Tensor) -> list[str]:
    """[N, W] tokenizer ids (-1 = none) -> the N sentences the word pieces spell."""
    return [tokenizer.decode([t for t in row if t >= 0]) for row in tokenizer_ids.tolist()]
