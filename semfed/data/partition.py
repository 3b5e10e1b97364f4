"""Splitting a dataset across clients: IID or Dirichlet non-IID over a per-sample class."""

from __future__ import annotations

import numpy as np


def partition_indices(classes: np.ndarray, num_clients: int, scheme: str, alpha: float, seed: int,
                      min_size: int = 2, max_tries: int = 100) -> list[np.ndarray]:
    """Assign every sample to exactly one client.

    classes: [N] int class of each sample (used by 'dirichlet' only).
    'iid': a seeded shuffle cut into near-equal parts (sizes differ by at most 1).
    'dirichlet': for each class, its samples are shared out with proportions ~ Dir(alpha);
    redrawn until every client has at least min_size samples.
    Returns num_clients sorted index arrays.
    """
    rng = np.random.default_rng(seed)
    n = len(classes)
    if n < num_clients * (1 if scheme == "iid" else min_size):
        raise ValueError(f"{num_clients} clients and {n} samples: under {scheme!r} partitioning some client would get "
                         f"fewer than {1 if scheme == 'iid' else min_size}")
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), num_clients)]
    if scheme != "dirichlet":
        raise ValueError(f"unknown partitioning {scheme!r}; allowed: iid, dirichlet")
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for cls in np.unique(classes):
            members = rng.permutation(np.flatnonzero(classes == cls))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"dirichlet partitioning with alpha={alpha} left a client below {min_size} samples "
                     f"after {max_tries} draws; use a larger alpha or fewer clients")


def follow_partition(classes: np.ndarray, parts: list[np.ndarray], pool_classes: np.ndarray, seed: int) -> list[np.ndarray]:
    """Share out a second pool (the test images) so that every client's part of it is drawn from its own
    data distribution: of each class, a client gets the fraction of that class's pool samples that it holds
    of the class in `parts` (members in seeded random order, cut at floor(cumulative fraction x n + u) with
    one uniform u per class: each count within 1 of its share, no client favoured by its position).
    classes: [N] int class of each sample that `parts` (client -> indices into classes) shares out;
    pool_classes: [M] int class of each pool sample. A class no client holds goes out in equal fractions.
    Returns len(parts) sorted index arrays into the pool; a client can get none."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in parts]
    for cls in np.unique(pool_classes):
        held = np.array([np.count_nonzero(classes[part] == cls) for part in parts], dtype=float)
        shares = held / held.sum() if held.sum() else np.full(len(parts), 1 / len(parts))
        members = rng.permutation(np.flatnonzero(pool_classes == cls))
        cuts = np.floor(np.cumsum(shares)[:-1] * len(members) + rng.uniform() + 1e-9).astype(int).clip(0, len(members))
        for client, chunk in enumerate(np.split(members, cuts)):
            out[client].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in out]
