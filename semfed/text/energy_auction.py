"""Seed 003's energy auction (its Figs. 5(a) and 5(c)): devices drawn at random distances from the access
point bid what the energy of one charge is worth to them, the semantic score it buys (semfed.text.energy:
bits -> the largest output dimensions that fit -> the trained codec's score there at the device's SNR);
the access point sells the charge by second-price auction or by a learned, revenue-maximising
Myerson-net auction (semfed.text.auction; one virtual-value network for all, as the devices are drawn
alike), whose individual rationality and regret are measured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from semfed.config import SemfedConfig
from semfed.seeds import auction_rng
from semfed.text import auction, energy

AUCTION_PROFILES = 4096  # valuation profiles the learned auction trains on; as many fresh ones measure both
MISREPORTS = 41  # evenly spaced misreports, 0 .. the highest value, for the learned auction's regret
REGRET_PROFILES = 1024  # of the held-out profiles, those the regret is measured on (n x MISREPORTS outcomes each)


def score_curves(table: pd.DataFrame, cfg: SemfedConfig) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Output dimension -> (SNRs ascending in dB, auction-value scores there) on text-channel, last round."""
    last = table[(table["round"] == table["round"].max()) & (table["channel"] == cfg.text_channel)]
    curves = {}
    for dim, rows in last.groupby("dim"):
        rows = rows.sort_values("snr")
        curves[int(dim)] = (rows["snr"].to_numpy(float), rows[cfg.auction_value].to_numpy(float))
    return curves


def device_value(distance_m: float, curves: dict[int, tuple[np.ndarray, np.ndarray]], cfg: SemfedConfig) -> float:
    """What one charge is worth to a device `distance_m` from the access point: the best score among the
    output dimensions whose message fits the bits its harvested energy buys, at its uplink SNR (linear in
    SNR between the evaluated SNRs, the end value beyond them); 0 when no dimension fits."""
    bandwidth = cfg.uplink_bandwidth_mhz * 1e6
    snr = energy.uplink_snr_db(energy.harvested_energy(cfg.hap_power_w, distance_m), distance_m, bandwidth)
    dims = energy.fitting_dims(energy.uplink_bits(snr, bandwidth), list(curves), cfg.text_words, cfg.text_feature_bits)
    return max((float(np.interp(snr, *curves[d])) for d in dims), default=0.0)


def draw_values(cfg: SemfedConfig, curves: dict[int, tuple[np.ndarray, np.ndarray]], bidders: int,
                profiles: int, rng: np.random.Generator) -> torch.Tensor:
    """[profiles, bidders] values (float32) of devices at distances drawn uniformly in hap-distance-m."""
    distances = rng.uniform(*cfg.hap_distances, size=(profiles, bidders))
    values = np.vectorize(lambda d: device_value(d, curves, cfg))(distances)
    return torch.as_tensor(values, dtype=torch.float32)


def compare_auctions(cfg: SemfedConfig, table: pd.DataFrame) -> pd.DataFrame:
    """One row per bidder count of auction-bidders: the held-out profiles' mean and highest value (the most
    any auction can earn), the mean revenue of the second-price and of the learned auction, their ratio,
    the learned auction's largest payment beyond a winner's value (individual rationality: <= 0), its regret
    over MISREPORTS misreports (on REGRET_PROFILES profiles) (incentive compatibility: 0) and how often it keeps the charge unsold."""
    curves = score_curves(table, cfg)
    rows = []
    for bidders in cfg.auction_bidder_counts:
        rng = auction_rng(cfg.seed, bidders)
        train, test = (draw_values(cfg, curves, bidders, AUCTION_PROFILES, rng) for _ in range(2))
        net = auction.train_myerson(train, steps=cfg.auction_train_steps, seed=cfg.seed, symmetric=True)
        winner, _ = net.outcome(test)
        second_price = auction.second_price_revenue(test).mean().item()
        learned = auction.revenue(net, test)
        misreports = torch.linspace(0, float(test.max()), MISREPORTS)
        rows.append({"bidders": bidders, "mean_value": test.mean().item(), "highest_value": test.amax(-1).mean().item(),
                     "second_price_revenue": second_price, "learned_revenue": learned,
                     "learned_over_second_price": learned / second_price if second_price else float("nan"),
                     "ir_violation": auction.individual_rationality_violation(net, test),
                     "regret": auction.regret(net, test[:REGRET_PROFILES], misreports), "unsold": (winner.sum(-1) == 0).float().mean().item()})
    return pd.DataFrame(rows)
