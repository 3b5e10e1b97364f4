"""How the server judges one client's reply: its arrays, its claimed number of examples, its statistics,
and its distance from the global model against the round's other replies."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: largest believable num-examples: beyond 2**53 float64 no longer counts whole numbers, and a sum of
#: even millions of such weights stays finite.
MAX_EXAMPLES = 2.0 ** 53
#: fewest holders of a key before its distances are compared with their median.
NORM_MIN_HOLDERS = 3


@dataclass(frozen=True)
class Judging:
    """example_caps: partition id -> the examples the server assigned it (its shard size);
    max_examples: cap of a partition without one (0 = the median of the round's claims);
    norm_multiple: reject an update farther from the global model, on some key, than this multiple
    of that key's median distance over the round's holders (0 = off)."""

    example_caps: Mapping[int, float] = field(default_factory=dict)
    max_examples: float = 0.0
    norm_multiple: float = 10.0


def is_number(value) -> bool:
    """A real, finite int or float (not a bool, list or string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def update_problem(update: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], weight,
                   may_change: Callable[[str], bool] | None = None) -> str | None:
    """Why `update` must be rejected, or None if it is fine.

    update: the client's arrays by key; reference: the global arrays (keys, shapes and dtypes allowed);
    weight: its claimed number of examples; may_change: keys this client may send (None = any global key).
    Rejected: num-examples not a finite number in [1, MAX_EXAMPLES], a key the global model does not
    have or the client may not change, a dtype or shape other than the global one, NaN or Inf values.
    """
    if not (is_number(weight) and 1 <= weight <= MAX_EXAMPLES):
        return f"num-examples {weight!r} is not a finite number in [1, 2**53]"
    for key, array in update.items():
        if key not in reference:
            return f"unknown array key {key!r}"
        if may_change is not None and not may_change(key):
            return f"array {key!r} may not be changed by this client"
        if array.dtype != reference[key].dtype:
            return f"array {key!r} has dtype {array.dtype}, the global one {reference[key].dtype}"
        if array.shape != reference[key].shape:
            return f"array {key!r} has shape {array.shape}, the global one {reference[key].shape}"
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            return f"array {key!r} holds NaN or Inf values"
    return None


def capped_claims(claims: list[float], multiple: float = 10.0) -> list[float]:
    """Clients' numeric claims (e.g. training losses) clipped to [0, multiple x the median of the clipped
    claims]: one client's word cannot outweigh the round by more than `multiple`."""
    clipped = [max(claim, 0.0) for claim in claims]
    bound = multiple * float(np.median(clipped)) if clipped else 0.0
    return [min(claim, bound) for claim in clipped]


def example_cap(partition: int, claims: Mapping[int, float], judging: Judging) -> float:
    """Most examples partition `partition` may weigh: its assigned shard size, else max_examples,
    else the median of the round's claims (partition id -> claimed num-examples)."""
    if partition in judging.example_caps:
        return float(judging.example_caps[partition])
    if judging.max_examples > 0:
        return judging.max_examples
    return float(np.median(list(claims.values())))


def histogram_problem(histogram: np.ndarray, bins: int, max_total: float) -> str | None:
    """Why a client's label confidence histogram [bins] must be rejected, or None: wrong dtype or
    length, a non-finite or negative count, or more labels in total than the client's examples."""
    if histogram.dtype != np.float64 or histogram.shape != (bins,):
        return f"label histogram has dtype {histogram.dtype} and shape {histogram.shape}, expected float64 ({bins},)"
    if not (np.isfinite(histogram).all() and (histogram >= 0).all()):
        return "label histogram holds a negative, NaN or Inf count"
    if histogram.sum() > max_total:
        return f"label histogram counts {histogram.sum():g} labels, more than the client's {max_total:g} examples"
    return None


def norm_outliers(updates: Mapping[int, Mapping[str, np.ndarray]], reference: Mapping[str, np.ndarray],
                  multiple: float) -> dict[int, str]:
    """partition id -> why its update is too far from the global model (0 = off).

    Per key held by at least NORM_MIN_HOLDERS updates: each holder's L2 distance ||x - global|| (float64)
    against `multiple` x the median distance of that key's holders (skipped when the median is 0).
    Judging key by key lets clients with different stems compare only where they are comparable."""
    if multiple <= 0:
        return {}
    problems: dict[int, str] = {}
    for key, value in reference.items():
        distances = {pid: float(np.linalg.norm((arrays[key].astype(np.float64) - value.astype(np.float64)).ravel()))
                     for pid, arrays in updates.items() if key in arrays}
        if len(distances) < NORM_MIN_HOLDERS:
            continue
        median = float(np.median(list(distances.values())))
        for pid, distance in distances.items():
            if median > 0 and distance > multiple * median and pid not in problems:
                problems[pid] = (f"array {key!r} moved {distance:.3g} from the global model, more than "
                                 f"{multiple:g} x the round's median {median:.3g}")
    return problems
