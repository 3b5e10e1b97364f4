"""Who takes part in a retrieval round, and on what terms: the users online (semfed.churn), who of them
trains (seeded uniform sampling or the semantic-aware auction, semfed.scheduling) and how many examples
each may train before the simulated deadline (semfed.network). Flower-free: the strategy sends the plan."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from semfed.churn import Churn
from semfed.network import STRAGGLER_POLICIES, Network
from semfed.sampling import sample_partitions, slots
from semfed.scheduling import SCHEDULERS, Scheduler, second_price, semantic_bids


@dataclass(frozen=True)
class RoundPlan:
    """partitions: who was chosen (ascending); bands: partition -> its uplink band in Hz (empty without the
    network; Network.bands); budgets: partition -> examples it may train (empty unless the network's
    straggler policy budgets or its allocation leaves users out; 0 = not asked: the upload alone misses the
    deadline, or no band was left for it); stats: the round's churn
    and auction figures for round_stats; no_budget: network.csv rows of those not asked."""

    partitions: list[int]
    bands: dict[int, float] = field(default_factory=dict)
    budgets: dict[int, int] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    no_budget: list[dict] = field(default_factory=list)

    @property
    def asked(self) -> list[int]:
        return [pid for pid in self.partitions if self.budgets.get(pid, 1) > 0]


def example_values(losses: dict[int, float], users: list[int]) -> dict[int, float]:
    """What an example of each user is worth to the band split under the auction: its bid per example (its
    capped last loss, semantic_bids); a user not heard from yet is worth the most any user is (1 if none is
    known)."""
    bids = semantic_bids(losses, {pid: 1 for pid in users})
    known = [bid for bid in bids.values() if math.isfinite(bid)]
    return {pid: bid if math.isfinite(bid) else max(known, default=1.0) for pid, bid in bids.items()}


@dataclass(frozen=True)
class Participation:
    """users: every partition id; examples: partition -> its assigned shard (the auction's bids);
    upload_bytes: partition -> the bytes of its update (the network's budgets and energy)."""

    users: tuple[int, ...]
    seed: int
    fraction: float
    minimum: int
    examples: dict[int, int] = field(default_factory=dict)
    churn: Churn | None = None
    scheduler: Scheduler = SCHEDULERS["uniform"]
    network: Network | None = None
    upload_bytes: dict[int, int] = field(default_factory=dict)

    def plan(self, server_round: int, losses: dict[int, float]) -> RoundPlan:
        """The round's plan; `losses`: each user's latest reported training loss (the auction's bids)."""
        stats: dict[str, float] = {}
        online = list(self.users)
        if self.churn is not None:
            now = self.churn.online(server_round, len(self.users))
            before = self.churn.online(server_round - 1, len(self.users)) if server_round > 1 else frozenset()
            stats.update(users_online=len(now), users_joined=len(now - before), users_left=len(before - now))
            online = sorted(now)
        if self.scheduler.auction:
            energy = None if self.network is None else {
                pid: self.network.client_round(server_round, pid, self.network.examples[pid],
                                               self.upload_bytes[pid]).energy_j for pid in online}
            auction = second_price(semantic_bids(losses, {pid: self.examples.get(pid, 1) for pid in online}, energy),
                                   slots(len(online), self.fraction, self.minimum))
            stats.update(auction_price=auction.price if math.isfinite(auction.price) else math.nan,
                         auction_value=auction.value if math.isfinite(auction.value) else math.nan)
            chosen = auction.winners
        else:
            chosen = sample_partitions(self.seed, server_round, online, self.fraction, self.minimum)
        if self.network is None:
            return RoundPlan(chosen, stats=stats)
        bands = self.network.bands(server_round, chosen, self.upload_bytes,
                                   example_values(losses, chosen) if self.scheduler.auction else None)
        if STRAGGLER_POLICIES[self.network.policy].budgets:
            budgets = {pid: self.network.budget(server_round, pid, self.upload_bytes[pid], bands.get(pid))
                       for pid in chosen}
        else:
            budgets = {pid: 0 for pid in chosen if pid not in bands}  # uplink-allocation 'deadline' left them out
        if not budgets:
            return RoundPlan(chosen, bands, stats=stats)
        no_budget = [replace(self.network.client_round(server_round, pid, 0, 0, bands.get(pid, 0.0)),
                             status="no budget").row() for pid in chosen if budgets.get(pid) == 0]
        return RoundPlan(chosen, bands, budgets, stats, no_budget)
