"""Retrieval runs compared on what they cost: RSUM against cumulative uplink bytes or simulated time.

    .venv/bin/python -m experiments.rsum_curves RUN_DIR [RUN_DIR ...] [--against bytes|time] [--target 100]
        [--out DIR]

Each RUN_DIR is a retrieval run's directory. --against bytes (default) reads metrics.csv's
bytes_received (what the server really received each round, compressed or not); --against time its
sim_clock_s (the simulated network's clock: runs with client-devices set). Writes
rsum_vs_<bytes|time>.csv (one row per run: its update-compression, error-feedback, round-deadline-s and
straggler-policy, final and best RSUM, the total cost and the cost until RSUM first reached --target)
and rsum_vs_<bytes|time>.png (a line per run, labelled by its run name) into --out (default: the
current folder), and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from semfed.plots import plt, save_figure
from semfed.retrieval import report

COSTS = {  # --against -> (metrics column, cumulative?, scale, unit, log axis)
    "bytes": ("bytes_received", True, 1e6, "MB uplink", True),
    "time": ("sim_clock_s", False, 1.0, "simulated s", False),
}
SETTINGS = ("update-compression", "error-feedback", "round-deadline-s", "straggler-policy")


def curve(run_dir: Path, against: str) -> pd.DataFrame:
    """Scored rounds of a run: round, rsum, and the cost (in COSTS' unit) spent up to that round."""
    column, cumulative, scale, _, _ = COSTS[against]
    table = pd.read_csv(run_dir / report.METRICS)
    cost = table[column].cumsum() if cumulative else table[column]
    return table.assign(cost=cost / scale).dropna(subset=["rsum"])[["round", "rsum", "cost"]]


def summary(run_dirs: list[Path], against: str, target: float) -> pd.DataFrame:
    """One row per run: its settings, final and best RSUM, total cost, cost to first reach `target` RSUM."""
    unit = COSTS[against][3]
    rows = []
    for run_dir in run_dirs:
        config = json.loads((run_dir / "config.json").read_text())
        points = curve(run_dir, against)
        reached = points[points["rsum"] >= target]
        rows.append({"run": run_dir.name, **{key: config.get(key) for key in SETTINGS},
                     "rounds": int(points["round"].max()), "final_rsum": round(points["rsum"].iloc[-1], 1),
                     "best_rsum": round(points["rsum"].max(), 1), unit: round(points["cost"].iloc[-1], 2),
                     f"{unit} to RSUM {target:g}": round(reached["cost"].iloc[0], 2) if len(reached) else float("nan")})
    return pd.DataFrame(rows)


def plot(run_dirs: list[Path], against: str, file: Path) -> None:
    """RSUM against the cost, a line per run from round 1 (round 0 costs nothing)."""
    _, _, _, unit, log_axis = COSTS[against]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for run_dir in run_dirs:
        points = curve(run_dir, against)
        points = points[points["round"] > 0]
        ax.plot(points["cost"], points["rsum"], marker="o", ms=3, label=run_dir.name)
    ax.set(xscale="log" if log_axis else "linear", xlabel=f"cumulative {unit}", ylabel="RSUM (%)",
           title=f"RSUM against {unit}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--against", choices=sorted(COSTS), default="bytes")
    parser.add_argument("--target", type=float, default=100.0, help="RSUM whose first crossing is reported")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = summary(args.run_dirs, args.against, args.target)
    table.to_csv(args.out / f"rsum_vs_{args.against}.csv", index=False)
    plot(args.run_dirs, args.against, args.out / f"rsum_vs_{args.against}.png")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
