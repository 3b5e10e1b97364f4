"""Which clients train in a round: drawn from the run seed by partition id, never from node ids."""

from __future__ import annotations

from collections.abc import Sequence

from semfed.seeds import SAMPLING_STREAM, round_rng


def slots(users: int, fraction: float, minimum: int = 1) -> int:
    """How many of `users` train in a round: max(floor(fraction x users), minimum), at most all."""
    return min(users, max(int(users * fraction), minimum))


def sample_partitions(seed: int, server_round: int, partitions: Sequence[int], fraction: float,
                      minimum: int = 1) -> list[int]:
    """Sorted partition ids training in `server_round`: max(floor(fraction x n), minimum) of the n
    partitions (all of them when that is n), drawn with semfed.seeds.round_rng(seed, round, SAMPLING_STREAM)."""
    ordered = sorted(int(p) for p in partitions)
    count = slots(len(ordered), fraction, minimum)
    if count == len(ordered):
        return ordered
    rng = round_rng(seed, server_round, SAMPLING_STREAM)
    return sorted(int(p) for p in rng.choice(ordered, size=count, replace=False))
