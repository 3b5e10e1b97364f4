"""Weighted averaging of state dicts whose key sets differ between clients."""

from __future__ import annotations

import numpy as np


def keyed_weighted_average(updates: list[tuple[dict[str, np.ndarray], float]],
                           current: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FedAvg per key over the clients that sent that key.

    updates: (arrays, weight) per client, in a fixed order (the sum order fixes the bits).
    current: the global arrays; a key nobody sent keeps its current value.
    out[key] = sum_c w_c x_c[key] / sum_c w_c over clients c holding key.
    Raises ValueError for a key missing from `current` or whose shape differs from it.
    """
    out = {}
    for key, value in current.items():
        holders = [(arrays[key], weight) for arrays, weight in updates if key in arrays]
        for array, _ in holders:
            if array.shape != value.shape:
                raise ValueError(f"array {key!r}: got shape {array.shape}, global shape is {value.shape}")
        total = sum(weight for _, weight in holders)
        if not holders or total <= 0:
            out[key] = value
            continue
        acc = np.zeros(value.shape, dtype=np.float64)
        for array, weight in holders:
            acc += array.astype(np.float64) * (weight / total)
        out[key] = acc.astype(value.dtype)
    unknown = {key for arrays, _ in updates for key in arrays} - set(current)
    if unknown:
        raise ValueError(f"update holds array keys the global model does not have: {sorted(unknown)}")
    return out
