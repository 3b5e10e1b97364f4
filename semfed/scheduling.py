"""Who trains in a round when the uplink has room for only some users (seed 003 V): uniform sampling
(semfed.sampling) or a semantic-aware auction, in which each user bids the semantic gain it expects
from training (its last training loss times its examples, per joule when the network is simulated)
and the round's slots go to the highest bids at the first losing bid's price (a uniform-price
second-price auction: bidding one's true value is a dominant strategy). Torch- and Flower-free."""

from __future__ import annotations

import math
from dataclasses import dataclass

from semfed.update_validation import capped_claims



@dataclass(frozen=True)
class Scheduler:
    """auction: the round's slots go to the highest semantic bids (second_price); without, uniformly."""

    auction: bool


SCHEDULERS = {"uniform": Scheduler(auction=False), "auction": Scheduler(auction=True)}  # `scheduling`


@dataclass(frozen=True)
class Auction:
    """A round's outcome: winners (ascending partition ids), the clearing price (the highest losing bid;
    0 when every bidder wins), and the winners' total bid (the value the allocation serves)."""

    winners: list[int]
    price: float
    value: float


def second_price(bids: dict[int, float], slots: int) -> Auction:
    """The `slots` highest bids win (ties: the lower partition id) and each pays the highest losing bid."""
    ranked = sorted(bids, key=lambda pid: (-bids[pid], pid))
    winners, losers = ranked[:slots], ranked[slots:]
    price = bids[losers[0]] if losers else 0.0
    return Auction(sorted(winners), price, sum(bids[pid] for pid in winners))


def semantic_bids(losses: dict[int, float], examples: dict[int, int], energy_j: dict[int, float] | None = None,
                  cap: float = 10.0) -> dict[int, float]:
    """Each user's bid: its last reported training loss (capped at `cap` x the median report: it is the
    user's word) times its examples, divided by its expected energy (J) when given. A user not heard from
    yet (no loss) bids infinity, so every user trains once before the bids decide."""
    known = {pid: loss for pid, loss in losses.items() if math.isfinite(loss)}
    capped = dict(zip(known, capped_claims(list(known.values()), cap)))
    bids = {}
    for pid, n in examples.items():
        if pid not in capped:
            bids[pid] = math.inf
            continue
        value = capped[pid] * n
        bids[pid] = value / energy_j[pid] if energy_j else value
    return bids
