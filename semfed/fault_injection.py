"""Test-only faults, chosen from the run seed: clients that fail a round, and poisoned updates."""

from __future__ import annotations

import time

import numpy as np
import torch

from semfed.config_values import POISON_KINDS
from semfed.seeds import FAULT_STREAM, round_rng

HANG_MARGIN_S = 5.0  # a hanging client sleeps this long past the round timeout, then gives up


class InjectedFailure(RuntimeError):
    """Raised by a client that the failure injection chose for this round."""


def failure_count(n_clients: int, fraction: float) -> int:
    """Clients failing each round: fraction x n rounded half up (0.3 x 4 = 1.2 -> 1, 0.3 x 3 = 0.9 -> 1)."""
    return int(np.floor(fraction * n_clients + 0.5))


def failing_clients(seed: int, server_round: int, n_clients: int, fraction: float) -> frozenset[int]:
    """Partition ids failing in `server_round`: exactly failure_count of them, drawn from (seed, round)."""
    count = failure_count(n_clients, fraction)
    rng = round_rng(seed, server_round, FAULT_STREAM)
    return frozenset(int(i) for i in rng.choice(n_clients, size=count, replace=False))


def inject_failure(mode: str, server_round: int, partition_id: int, round_timeout_s: float) -> None:
    """Fail this client's round: raise, or hang past the round timeout and then raise."""
    if mode == "hang":
        time.sleep(round_timeout_s + HANG_MARGIN_S)
    raise InjectedFailure(f"injected failure ({mode}) of client {partition_id} in round {server_round}")


HUGE = 3e38  # finite in float32 (max 3.4e38): passes the finite check, only the norm bound catches it


def poison_update(state: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """A copy of `state` with one fault in its arrays: the first float array all NaN / Inf ('nan' / 'inf'),
    all HUGE ('huge'), cast to int8 ('dtype') or one element short ('shape'), or an extra array the global
    model does not have ('key'). Kinds that poison the metrics, statistics or bytes return it unchanged."""
    out = dict(state)
    first = next(k for k, v in state.items() if v.is_floating_point())
    if kind in ("nan", "inf"):
        out[first] = torch.full_like(state[first], float(kind))
    elif kind == "huge":
        out[first] = torch.full_like(state[first], HUGE)
    elif kind == "dtype":
        out[first] = state[first].to(torch.int8)
    elif kind == "shape":
        out[first] = state[first].flatten()[:-1]
    elif kind == "key":
        out["poison.weight"] = torch.zeros(2)
    elif kind not in POISON_KINDS:
        raise ValueError(f"unknown poison kind {kind!r}; expected one of {POISON_KINDS}")
    return out


def poison_metrics(metrics: dict, kind: str, n_clients: int) -> dict:
    """A copy of a reply's metrics with num-examples x 1e9 ('inflate') or the next client's partition-id
    ('forge-id'); unchanged for the other kinds."""
    out = dict(metrics)
    if kind == "inflate":
        out["num-examples"] = out["num-examples"] * 1e9
    elif kind == "forge-id":
        out["partition-id"] = (out["partition-id"] + 1) % n_clients
    return out


def poison_statistics(statistics: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """A copy of the label statistics with every histogram count 1e12 ('histogram'); unchanged otherwise."""
    if kind != "histogram":
        return dict(statistics)
    return {key: np.full_like(value, 1e12) for key, value in statistics.items()}

