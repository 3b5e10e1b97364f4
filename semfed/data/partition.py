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
