"""Energy auctions of the seed paper's case study: IoT devices bid for a hybrid access point's energy (one
item, at most one winner per auction). The access point sells it with MyersonNet (Dütting et al. 2019,
"Optimal Auctions through Deep Learning", single-item section): each bidder's bid passes through a learned
strictly increasing virtual-value transform, the highest positive virtual value wins and pays the smallest
bid that would still have won (a second-price auction with reserve 0 on virtual values, mapped back to
bids). Truthful bidding is a dominant strategy and no winner pays more than its bid, whatever the weights;
training only tunes the transforms to maximise revenue. Compared with the plain second-price auction.

Bids, valuations and payments are in one (arbitrary) currency unit; tensors are [B, n]: B bid profiles
of n bidders. Torch only."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def second_price_revenue(bids: Tensor) -> Tensor:
    """[B, n] bids -> [B] revenue of a second-price auction without reserve: the highest bid wins and pays
    the second-highest bid (ties: the tied bid). Needs n >= 2."""
    return bids.topk(2, dim=-1).values[..., 1]


class MyersonNet(nn.Module):
    """Bidder i's virtual value phi_i(b) = min over `groups` k of max over `lines` j of
    (exp(alpha_ikj) * b + beta_ikj): strictly increasing in b (every slope exp(.) > 0) and onto R.
    `temperature` (currency units of virtual value) softens the training allocation's argmax. symmetric:
    one transform for every bidder (bidders drawn alike: Myerson's optimum treats them alike, and a tie
    then goes at the tied bid)."""

    def __init__(self, bidders: int, groups: int = 10, lines: int = 10, temperature: float = 0.01,
                 generator: torch.Generator | None = None, symmetric: bool = False):
        super().__init__()
        self.temperature = temperature
        transforms = 1 if symmetric else bidders
        self.log_slopes = nn.Parameter(0.5 * torch.randn(transforms, groups, lines, generator=generator))
        # intercepts <= 0: phi_i(0) <= 0, so the reserve phi_i^{-1}(0) starts at or above 0 (below it, no
        # training profile meets the reserve and it gets no gradient)
        self.intercepts = nn.Parameter(-0.1 * torch.rand(transforms, groups, lines, generator=generator))

    def virtual_values(self, bids: Tensor) -> Tensor:
        """[..., n] bids -> [..., n] virtual values phi_i(b_i)."""
        lines = bids[..., None, None] * self.log_slopes.exp() + self.intercepts
        return lines.amax(-1).amin(-1)

    def bids_for(self, virtual: Tensor) -> Tensor:
        """[..., n] virtual values -> [..., n] bids: the exact inverse phi_i^{-1}(y) = max_k min_j
        (y - beta_ikj) * exp(-alpha_ikj)."""
        return ((virtual[..., None, None] - self.intercepts) * (-self.log_slopes).exp()).amin(-1).amax(-1)

    def threshold_bids(self, virtual: Tensor) -> Tensor:
        """[..., n] virtual values -> [..., n] each bidder's threshold bid phi_i^{-1}(max(max_{j != i}
        phi_j, 0)): the smallest bid that wins against the others (and the reserve), what a winner pays; 0
        where that lies below 0 (bids are nonnegative)."""
        n = virtual.shape[-1]
        own = torch.eye(n, dtype=torch.bool, device=virtual.device)
        others = virtual.unsqueeze(-2).masked_fill(own, -torch.inf).amax(-1)
        return self.bids_for(others.clamp(min=0)).clamp(min=0)

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """[B, n] bids -> ([B, n] soft allocation: softmax over the virtual values and a dummy 0, the
        reserve that keeps the item; [B, n] payments: threshold bid times soft allocation), for training."""
        virtual = self.virtual_values(bids)
        with_reserve = torch.cat([virtual, torch.zeros_like(virtual[..., :1])], dim=-1)
        allocation = (with_reserve / self.temperature).softmax(-1)[..., :-1]
        return allocation, allocation * self.threshold_bids(virtual)

    def outcome(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """[B, n] bids -> ([B, n] winner one-hot float: the highest positive virtual value, an all-zero row
        when none is positive; [B, n] payments: the winner's threshold bid, 0 for the others), the
        mechanism itself."""
        virtual = self.virtual_values(bids)
        winner = nn.functional.one_hot(virtual.argmax(-1), virtual.shape[-1]).to(bids.dtype)
        winner = winner * (virtual.amax(-1, keepdim=True) > 0)
        return winner, winner * self.threshold_bids(virtual)


def train_myerson(valuations: Tensor | Callable[[int, torch.Generator], Tensor], steps: int = 300,
                  batch: int = 256, lr: float = 0.01, seed: int = 0, groups: int = 10, lines: int = 10,
                  temperature: float = 0.01, symmetric: bool = False) -> MyersonNet:
    """A MyersonNet trained with Adam to maximise the expected soft revenue (sum of `forward`'s payments)
    on minibatches of `batch` profiles: rows drawn (with replacement) from a [S, n] valuation tensor, or
    fresh draws sampler(batch, generator) -> [batch, n]. Deterministic for a fixed seed (its own
    torch.Generator, no global state)."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(valuations, Tensor):
        data = valuations
        bidders = data.shape[1]

        def sample(size: int, gen: torch.Generator) -> Tensor:
            return data[torch.randint(len(data), (size,), generator=gen)]
    else:
        sample = valuations
        bidders = sample(1, torch.Generator().manual_seed(seed)).shape[1]
    net = MyersonNet(bidders, groups, lines, temperature, generator, symmetric)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        _, payments = net(sample(batch, generator))
        loss = -payments.sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


@torch.no_grad()
def revenue(net: MyersonNet, valuations: Tensor) -> float:
    """Mean revenue of the mechanism (`outcome`) over [S, n] truthful bid profiles."""
    return net.outcome(valuations)[1].sum(-1).mean().item()


@torch.no_grad()
def individual_rationality_violation(net: MyersonNet, valuations: Tensor) -> float:
    """The largest amount any bidder pays beyond the value of what it wins (payment - value x allocation)
    over [S, n] truthful profiles: <= 0 (up to float error) when individual rationality holds."""
    winner, payments = net.outcome(valuations)
    return (payments - valuations * winner).max().item()


@torch.no_grad()
def regret(net: MyersonNet, valuations: Tensor, misreports: Tensor) -> float:
    """Mean over [S, n] profiles and bidders of the most a bidder gains by reporting any of the [M]
    `misreports` instead of its value while the others bid truthfully (utility = value x allocation -
    payment; gains clipped at 0): 0 for a truthful mechanism."""
    winner, payments = net.outcome(valuations)
    truthful = valuations * winner - payments
    profiles, bidders = valuations.shape
    gains = []
    for i in range(bidders):
        deviations = valuations.unsqueeze(1).repeat(1, len(misreports), 1)  # [S, M, n]
        deviations[:, :, i] = misreports
        won, paid = net.outcome(deviations.reshape(-1, bidders))
        utility = (valuations[:, i, None] * won[:, i].view(profiles, -1) - paid[:, i].view(profiles, -1))
        gains.append((utility.amax(-1) - truthful[:, i]).clamp(min=0))
    return torch.stack(gains, dim=-1).mean().item()
