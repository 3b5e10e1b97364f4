"""Whether one client's update may be aggregated: the one place that judges a reply's arrays."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np


def update_problem(update: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], weight: float,
                   may_change: Callable[[str], bool] | None = None) -> str | None:
    """Why `update` must be rejected, or None if it is fine.

    update: the client's arrays by key; reference: the global arrays (keys and shapes allowed);
    weight: its number of examples; may_change: keys this client may send (None = any global key).
    Rejected: a non-finite or negative weight, a key the global model does not have or the client
    may not change, a shape other than the global one, NaN or Inf values.
    """
    if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
        return f"num-examples {weight!r} is not a finite number >= 0"
    for key, array in update.items():
        if key not in reference:
            return f"unknown array key {key!r}"
        if may_change is not None and not may_change(key):
            return f"array {key!r} may not be changed by this client"
        if array.shape != reference[key].shape:
            return f"array {key!r} has shape {array.shape}, the global one {reference[key].shape}"
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            return f"array {key!r} holds NaN or Inf values"
    return None
