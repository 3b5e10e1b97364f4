"""Users joining and leaving the federation between rounds (seed 000 VI-E), drawn from the run seed:
which users are online in a round. Torch-free and Flower-free: the server's strategy samples among them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from semfed.seeds import CHURN_STREAM, round_rng


@dataclass(frozen=True)
class Churn:
    """leave: the probability that an online user goes offline before a round; join: that an offline user
    comes (back) online; start: that a user is online in round 1. seed: the run's seed."""

    leave: float
    join: float
    start: float
    seed: int

    def online(self, server_round: int, users: int) -> frozenset[int]:
        """The users (partition ids 0..users-1) online in `server_round` (rounds count from 1): each user's
        draw from round_rng(seed, round, CHURN_STREAM) against start in round 1, then against leave or join.
        Rounds already drawn are kept (_HISTORY), so a run draws each round once."""
        history = _HISTORY.setdefault((self, users), [])
        while len(history) < server_round:
            r = len(history) + 1
            draws = round_rng(self.seed, r, CHURN_STREAM).random(users)
            if r == 1:
                history.append(frozenset(pid for pid in range(users) if draws[pid] < self.start))
            else:
                history.append(frozenset(pid for pid in range(users) if (
                    draws[pid] >= self.leave if pid in history[-1] else draws[pid] < self.join)))
        return history[server_round - 1]


_HISTORY: dict[tuple[Churn, int], list[frozenset[int]]] = {}


def parse_churn(spec: str, seed: int) -> Churn | None:
    """`churn`: '' (everyone online every round) or 'leave:<p>,join:<p>[,start:<p>]', probabilities in
    [0, 1] (start defaults to 1); ValueError naming the problem otherwise."""
    if not spec.strip():
        return None
    values: dict[str, float] = {}
    for item in spec.split(","):
        name, _, value = item.strip().partition(":")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if name not in ("leave", "join", "start") or name in values or not 0 <= number <= 1:
            raise ValueError(f"churn: bad item {item.strip()!r}; expected 'leave:<p>,join:<p>[,start:<p>]' with "
                             "probabilities in [0, 1], each once")
        values[name] = number
    if "leave" not in values or "join" not in values:
        raise ValueError(f"churn: {spec!r} needs both leave:<p> and join:<p>")
    return Churn(values["leave"], values["join"], values.get("start", 1.0), seed)
