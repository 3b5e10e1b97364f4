"""Test-only faults, chosen from the run seed: clients that fail a round, and poisoned updates."""

from __future__ import annotations

import time

import numpy as np
import torch

from semfed.config import POISON_KINDS
HANG_MARGIN_S = 5.0  # a hanging client sleeps this long past the round timeout, then gives up


class InjectedFailure(RuntimeError):
    """Raised by a client that the failure injection chose for this round."""


def failure_count(n_clients: int, fraction: float) -> int:
    """Clients failing each round: fraction x n rounded half up (0.3 x 4 = 1.2 -> 1, 0.3 x 3 = 0.9 -> 1)."""
    return int(np.floor(fraction * n_clients + 0.5))


def failing_clients(seed: int, server_round: int, n_clients: int, fraction: float) -> frozenset[int]:
    """Partition ids failing in `server_round`: exactly failure_count of them, drawn from (seed, round)."""
    count = failure_count(n_clients, fraction)
    rng = np.random.default_rng([seed, server_round, 6])
    return frozenset(int(i) for i in rng.choice(n_clients, size=count, replace=False))


def inject_failure(mode: str, server_round: int, partition_id: int, round_timeout_s: float) -> None:
    """Fail this client's round: raise, or hang past the round timeout and then raise."""
    if mode == "hang":
        time.sleep(round_timeout_s + HANG_MARGIN_S)
    raise InjectedFailure(f"injected failure ({mode}) of client {partition_id} in round {server_round}")


def poison_update(state: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """A copy of `state` with one fault: the first float array all NaN / Inf ('nan' / 'inf'),
    one element short ('shape'), or an extra array the global model does not have ('key')."""
    out = dict(state)
    first = next(k for k, v in state.items() if v.is_floating_point())
    if kind in ("nan", "inf"):
        out[first] = torch.full_like(state[first], float(kind))
    elif kind == "shape":
        out[first] = state[first].flatten()[:-1]
    elif kind == "key":
        out["poison.weight"] = torch.zeros(2)
    else:
        raise ValueError(f"unknown poison kind {kind!r}; expected one of {POISON_KINDS}")
    return out
