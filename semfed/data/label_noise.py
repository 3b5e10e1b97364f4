"""Label-noise injection: some images of a client carry another image's annotation.

An annotation is an image's five captions and the SKB concepts they name. Corrupting
image i means its shard row keeps image i's regions but gets the annotation of image
j != i, which is exactly a caption swapped for another image's (semantic drift).
"""

from __future__ import annotations

import numpy as np


def corrupt_annotations(indices: np.ndarray, rate: float, kind: str, n_train: int, seed: int) -> np.ndarray:
    """Which training image's annotation each shard row carries. [N] int; row r is corrupted iff
    out[r] != indices[r].

    Exactly round(rate * N) rows are corrupted, chosen from `seed`. kind 'swap': the
    corrupted rows exchange annotations among themselves (a random cycle, so none keeps its
    own); with a single corrupted row it takes another row's. kind 'foreign': each takes
    the annotation of a random training image outside the shard (0..n_train-1).
    """
    indices = np.asarray(indices)
    n = len(indices)
    rng = np.random.default_rng(seed)
    count = int(round(rate * n))
    out = indices.copy()
    if count == 0:
        return out
    rows = np.sort(rng.choice(n, size=count, replace=False))
    if kind == "swap":
        if n < 2:
            raise ValueError(f"cannot swap annotations in a shard of {n} image(s)")
        if count == 1:
            others = np.delete(np.arange(n), rows[0])
            out[rows[0]] = indices[rng.choice(others)]
        else:
            cycle = rng.permutation(rows)
            out[cycle] = indices[np.roll(cycle, 1)]
    elif kind == "foreign":
        outside = np.setdiff1d(np.arange(n_train), indices)
        if len(outside) == 0:
            raise ValueError("kind 'foreign' needs training images outside the shard")
        out[rows] = rng.choice(outside, size=count)
    else:
        raise ValueError(f"unknown label-noise kind {kind!r}; expected 'swap' or 'foreign'")
    return out
