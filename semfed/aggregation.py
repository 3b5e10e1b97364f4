"""Aggregation of state dicts whose key sets differ between clients: one rule per config value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from semfed.update_validation import capped_claims


@dataclass(frozen=True)
class RuleParams:
    """trim_fraction: trimmed-mean drops floor(trim_fraction x n) values at each end of every coordinate;
    byzantine: krum's f, the hostile holders it tolerates per key."""

    trim_fraction: float = 0.1
    byzantine: int = 1


def weighted_mean(arrays: list[np.ndarray], weights: list[float], params: RuleParams) -> np.ndarray:
    """FedAvg: sum_c w_c x_c / sum_c w_c, summed in the given order in float64 (the order fixes the bits)."""
    total = sum(weights)
    acc = np.zeros(arrays[0].shape, dtype=np.float64)
    for array, weight in zip(arrays, weights):
        acc += array.astype(np.float64) * (weight / total)
    return acc


def coordinate_median(arrays: list[np.ndarray], weights: list[float], params: RuleParams) -> np.ndarray:
    """Coordinate-wise median (unweighted: the weights are the clients' own claims); an even count
    averages the two middle values."""
    return np.median(np.stack(arrays).astype(np.float64), axis=0)


def trimmed_mean(arrays: list[np.ndarray], weights: list[float], params: RuleParams) -> np.ndarray:
    """Coordinate-wise mean after dropping the k = floor(trim_fraction x n) lowest and k highest values
    (unweighted; trim_fraction < 0.5 keeps at least one)."""
    trim = int(params.trim_fraction * len(arrays))
    ordered = np.sort(np.stack(arrays).astype(np.float64), axis=0)
    return ordered[trim:len(arrays) - trim].mean(axis=0)


def krum(arrays: list[np.ndarray], weights: list[float], params: RuleParams) -> np.ndarray:
    """Krum (Blanchard et al. 2017): the one update whose summed squared distance to its n - f - 2 nearest
    others is smallest (ties: the first in order). Needs n >= f + 3; with fewer holders the
    coordinate median is used instead."""
    n, f = len(arrays), params.byzantine
    if n - f - 2 < 1:
        return coordinate_median(arrays, weights, params)
    flat = np.stack([a.astype(np.float64).ravel() for a in arrays])
    distances = np.stack([((flat - row) ** 2).sum(axis=1) for row in flat])  # [n, n], n x size memory
    nearest = np.sort(distances + np.diag(np.full(n, np.inf)), axis=1)[:, :n - f - 2]
    return arrays[int(np.argmin(nearest.sum(axis=1)))].astype(np.float64)


def fair_weights(weights: list[float], losses: list[float], q: float, cap: float = 10.0) -> list[float]:
    """q-fair weights (the reweighting view of q-FFL, Li et al. 2020): w_c x F_c^q, with F_c a client's
    training loss, so users the global model serves worst weigh more (q = 0: the weights unchanged).
    A claimed loss is capped (update_validation.capped_claims: it is the client's word)."""
    if q == 0:
        return list(weights)
    fair = [w * loss ** q for w, loss in zip(weights, capped_claims(losses, cap))]
    return fair if sum(fair) > 0 else list(weights)


Rule = Callable[[list[np.ndarray], list[float], RuleParams], np.ndarray]
#: config value of `aggregation` -> per-key rule over the key's holders (arrays in a fixed order, weights
#: = capped num-examples); returns float64 in the key's shape.
AGGREGATIONS: dict[str, Rule] = {"mean": weighted_mean, "median": coordinate_median, "trimmed-mean": trimmed_mean,
                                 "krum": krum}


def keyed_aggregate(updates: list[tuple[Mapping[str, np.ndarray], float]], current: Mapping[str, np.ndarray],
                    rule: str = "mean", params: RuleParams = RuleParams()) -> dict[str, np.ndarray]:
    """AGGREGATIONS[rule] per key over the clients that sent that key.

    updates: (arrays, weight) per client, in a fixed order; current: the global arrays (a key nobody
    sent keeps its value). The result has each key's global dtype.
    Raises ValueError for a key missing from `current` or whose shape differs from it.
    """
    combine = AGGREGATIONS[rule]
    unknown = {key for arrays, _ in updates for key in arrays} - set(current)
    if unknown:
        raise ValueError(f"update holds array keys the global model does not have: {sorted(unknown)}")
    out = {}
    for key, value in current.items():
        holders = [(arrays[key], weight) for arrays, weight in updates if key in arrays]
        for array, _ in holders:
            if array.shape != value.shape:
                raise ValueError(f"array {key!r}: got shape {array.shape}, global shape is {value.shape}")
        if not holders:
            out[key] = value
            continue
        out[key] = np.asarray(combine([a for a, _ in holders], [w for _, w in holders], params)).astype(value.dtype)
    return out
