"""Write an uplink SNR trace from a simple mobility model, for `uplink-snr-trace` (docs/network.md).

    .venv/bin/python -m experiments.snr_trace OUT.csv [--users 10] [--rounds 12] [--seed 0] [--speed-mps 1.5]
        [--round-s 60] [--radius-m 500] [--min-m 20] [--snr-at-m 20,100] [--exponent 3.0]

Each user starts at a uniform point of the disk of --radius-m around the base station (at least --min-m
away) and walks at --speed-mps in a direction drawn afresh every round (a random walk), for --round-s
seconds a round, its distance kept within [--min-m, --radius-m]. Its SNR in a round is the log-distance
path loss at its distance there: snr_db = SNR_REF - 10 x exponent x log10(d / D_REF) for --snr-at-m
'SNR_REF,D_REF' (default 20 dB at 100 m). Fading, if wanted, is added by the run (`uplink-fading`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from semfed.network import TRACE_COLUMNS


def path_loss_snr_db(distance_m: np.ndarray, snr_ref_db: float, ref_m: float, exponent: float) -> np.ndarray:
    """Log-distance path loss: the SNR (dB) at `distance_m` given `snr_ref_db` at `ref_m`."""
    return snr_ref_db - 10.0 * exponent * np.log10(distance_m / ref_m)


def walk_distances(users: int, rounds: int, seed: int, speed_mps: float, round_s: float, radius_m: float,
                   min_m: float) -> np.ndarray:
    """Each user's distance from the base station in rounds 1..rounds [rounds, users] (m)."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform((min_m / radius_m) ** 2, 1.0, users)) * radius_m  # uniform over the annulus' area
    angle = rng.uniform(0, 2 * np.pi, users)
    position = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    out = []
    for _ in range(rounds):
        out.append(np.linalg.norm(position, axis=1))
        heading = rng.uniform(0, 2 * np.pi, users)
        position = position + speed_mps * round_s * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        distance = np.linalg.norm(position, axis=1)
        position *= (np.clip(distance, min_m, radius_m) / np.maximum(distance, 1e-9))[:, None]
    return np.stack(out)


def trace_table(distances: np.ndarray, snr_ref_db: float, ref_m: float, exponent: float) -> pd.DataFrame:
    """The trace CSV's rows (TRACE_COLUMNS) for distances [rounds, users]."""
    rounds, users = distances.shape
    snr = path_loss_snr_db(distances, snr_ref_db, ref_m, exponent)
    return pd.DataFrame({"round": np.repeat(np.arange(1, rounds + 1), users), "partition-id": np.tile(np.arange(users), rounds),
                         "snr_db": snr.reshape(-1).round(3)})[list(TRACE_COLUMNS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-mps", type=float, default=1.5)
    parser.add_argument("--round-s", type=float, default=60.0)
    parser.add_argument("--radius-m", type=float, default=500.0)
    parser.add_argument("--min-m", type=float, default=20.0)
    parser.add_argument("--snr-at-m", default="20,100", help="'SNR_REF,D_REF': the SNR (dB) at D_REF metres")
    parser.add_argument("--exponent", type=float, default=3.0)
    args = parser.parse_args()
    snr_ref_db, ref_m = (float(v) for v in args.snr_at_m.split(","))
    if not 0 < args.min_m < args.radius_m or ref_m <= 0 or args.users < 1 or args.rounds < 1:
        parser.error("need 0 < --min-m < --radius-m, D_REF > 0, --users and --rounds >= 1")
    distances = walk_distances(args.users, args.rounds, args.seed, args.speed_mps, args.round_s, args.radius_m, args.min_m)
    table = trace_table(distances, snr_ref_db, ref_m, args.exponent)
    table.to_csv(args.out, index=False)
    print(f"{args.out}: {args.users} users x {args.rounds} rounds, SNR {table['snr_db'].min():.1f} to "
          f"{table['snr_db'].max():.1f} dB (median {table['snr_db'].median():.1f})")


if __name__ == "__main__":
    main()
