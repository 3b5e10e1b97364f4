"""Compressed client updates (seed 003 IV-B): a user sends the change of each float array since the global
model it received, top-k sparsified (the k largest magnitudes: positions and values) and/or quantised to
8 bits (one float32 scale per array), keeping what it did not send as error feedback for its next round.
The server rebuilds dense arrays from the payload, which it judges as untrusted input. NumPy only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SEPARATOR = "::"  # payload keys: '<array key>::idx', '<array key>::val', '<array key>::scale'
INT8_LEVELS = 127  # int8 values in [-127, 127]; the scale maps 127 to the largest magnitude


@dataclass(frozen=True)
class Compression:
    """fraction: the share of each float array's entries sent (1.0: every entry, no positions); bits: 32
    (float32 values) or 8 (int8 values and a float32 scale)."""

    fraction: float = 1.0
    bits: int = 32

    @property
    def active(self) -> bool:
        return self.fraction < 1.0 or self.bits < 32

    def kept(self, size: int) -> int:
        """Entries sent of an array of `size` entries: ceil(fraction x size), at least 1 (at most `size`)."""
        return size if self.fraction >= 1.0 else min(size, max(1, math.ceil(self.fraction * size)))


def parse_compression(spec: str) -> Compression:
    """`update-compression`: 'none', 'topk:<fraction in (0, 1)>', 'int8', or 'topk:<fraction>+int8'."""
    if spec.strip() == "none":
        return Compression()
    fraction, bits = 1.0, 32
    for part in spec.split("+"):
        name, _, value = part.strip().partition(":")
        if name == "int8" and not value and bits == 32:
            bits = 8
            continue
        if name == "topk" and fraction == 1.0:
            try:
                fraction = float(value)
            except ValueError:
                fraction = 0.0
            if 0 < fraction < 1:
                continue
            raise ValueError(f"update-compression: the top-k fraction must be in (0, 1), got {value!r}")
        raise ValueError(f"update-compression: {spec!r} is not 'none', 'topk:<fraction>', 'int8' or "
                         "'topk:<fraction>+int8'")
    return Compression(fraction, bits)


def encode(change: np.ndarray, compression: Compression) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One float array's change -> (payload parts, the change as the server will decode it). Parts: 'idx'
    (int32 flat positions, ascending; only when sparsified), 'val' (float32, or int8 with 'scale' float32
    [1]). Ties in magnitude go to the lower position (a stable sort: same change, same payload)."""
    flat = change.astype(np.float32).ravel()
    k = compression.kept(flat.size)
    parts: dict[str, np.ndarray] = {}
    if k < flat.size:
        idx = np.sort(np.argsort(-np.abs(flat), kind="stable")[:k]).astype(np.int32)
        parts["idx"] = idx
        values = flat[idx]
    else:
        idx, values = None, flat
    if compression.bits == 8:
        peak = float(np.abs(values).max()) if values.size else 0.0
        scale = np.float32(peak / INT8_LEVELS if peak > 0 else 1.0)
        parts["val"] = np.clip(np.rint(values / scale), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
        parts["scale"] = np.array([scale], np.float32)
    else:
        parts["val"] = values.astype(np.float32)
    return parts, decode(parts, change.shape, compression)


def decode(parts: dict[str, np.ndarray], shape: tuple[int, ...], compression: Compression) -> np.ndarray:
    """The float32 change of shape `shape` a payload's parts carry; ValueError naming the problem when they
    are not what `compression` sends for that shape (dtypes, counts, positions, non-finite numbers)."""
    size = int(np.prod(shape, dtype=np.int64))
    k = compression.kept(size)
    expected = ({"idx"} if k < size else set()) | {"val"} | ({"scale"} if compression.bits == 8 else set())
    if set(parts) != expected:
        raise ValueError(f"payload parts {sorted(parts)}, expected {sorted(expected)}")
    values = parts["val"]
    if values.dtype != (np.int8 if compression.bits == 8 else np.float32) or values.shape != (k,):
        raise ValueError(f"values {values.dtype} {values.shape}, expected {k} of "
                         f"{'int8' if compression.bits == 8 else 'float32'}")
    if compression.bits == 8:
        scale = parts["scale"]
        if scale.dtype != np.float32 or scale.shape != (1,) or not (np.isfinite(scale[0]) and scale[0] > 0):
            raise ValueError("scale must be one finite positive float32")
        values = values.astype(np.float32) * scale[0]
    elif not np.isfinite(values).all():
        raise ValueError("values are not all finite")
    flat = np.zeros(size, np.float32)
    if k < size:
        idx = parts["idx"]
        if idx.dtype != np.int32 or idx.shape != (k,) or (k and (idx[0] < 0 or idx[-1] >= size)) \
                or (np.diff(idx) <= 0).any():
            raise ValueError(f"positions must be {k} ascending distinct int32 in [0, {size})")
        flat[idx] = values
    else:
        flat[:] = values
    return flat.reshape(shape)


def compress_update(state: dict[str, np.ndarray], received: dict[str, np.ndarray],
                    residual: dict[str, np.ndarray], compression: Compression,
                    error_feedback: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A client's trained `state` against the global arrays it `received` -> (payload, next residual).
    Float arrays are sent as their change (plus the residual carried from earlier rounds with error
    feedback) through encode; other arrays (counters) as they are. The next residual is what was meant
    but not sent (empty without error feedback)."""
    payload, carried = {}, {}
    for key, value in state.items():
        if not np.issubdtype(value.dtype, np.floating):
            payload[key] = value
            continue
        change = value.astype(np.float32) - received[key].astype(np.float32)
        if error_feedback and key in residual:
            change = change + residual[key]
        parts, sent = encode(change, compression)
        payload.update({f"{key}{SEPARATOR}{part}": array for part, array in parts.items()})
        if error_feedback:
            carried[key] = change - sent
    return payload, carried


def decompress_update(payload: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                      compression: Compression) -> dict[str, np.ndarray]:
    """Dense arrays (the global `reference` plus the decoded change, in the reference's dtype) from a
    payload; ValueError naming the problem for an unknown key or a malformed part."""
    grouped: dict[str, dict[str, np.ndarray]] = {}
    dense = {}
    for name, array in payload.items():
        key, separator, part = name.rpartition(SEPARATOR)
        if not separator:
            dense[name] = array  # a counter, judged as sent
            continue
        if key not in reference or not np.issubdtype(reference[key].dtype, np.floating):
            raise ValueError(f"payload part {name!r} names no float array of the global model")
        grouped.setdefault(key, {})[part] = array
    for key, parts in grouped.items():
        try:
            change = decode(parts, reference[key].shape, compression)
        except ValueError as error:
            raise ValueError(f"array {key!r}: {error}") from None
        dense[key] = (reference[key].astype(np.float32) + change).astype(reference[key].dtype)
    return dense
