"""Retrieval runs compared on the bytes their users sent: RSUM against cumulative uplink bytes.

    .venv/bin/python -m experiments.rsum_vs_bytes RUN_DIR [RUN_DIR ...] [--target 100] [--out DIR]

Each RUN_DIR is a retrieval run's directory (its metrics.csv's bytes_received: what the server really
received each round, compressed or not). Writes rsum_vs_bytes.csv (one row per run: its
update-compression and error-feedback, final and best RSUM, total uplink MB, MB until RSUM first
reached --target) and rsum_vs_bytes.png (RSUM against cumulative MB, log scale) into --out (default:
the current folder), and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from semfed.plots import plt, save_figure
from semfed.retrieval import report

MB = 1e6


def curve(run_dir: Path) -> pd.DataFrame:
    """Scored rounds of a run: round, rsum, cumulative uplink MB after that round."""
    table = pd.read_csv(run_dir / report.METRICS)
    table["uplink_mb"] = table["bytes_received"].cumsum() / MB
    return table.dropna(subset=["rsum"])[["round", "rsum", "uplink_mb"]]


def summary(run_dirs: list[Path], target: float) -> pd.DataFrame:
    """One row per run: its compression, final and best RSUM, total MB, MB to first reach `target` RSUM."""
    rows = []
    for run_dir in run_dirs:
        config = json.loads((run_dir / "config.json").read_text())
        points = curve(run_dir)
        reached = points[points["rsum"] >= target]
        rows.append({"run": run_dir.name, "update-compression": config.get("update-compression", "none"),
                     "error-feedback": config.get("error-feedback", True), "rounds": int(points["round"].max()),
                     "final_rsum": round(points["rsum"].iloc[-1], 1), "best_rsum": round(points["rsum"].max(), 1),
                     "uplink_mb": round(points["uplink_mb"].iloc[-1], 2),
                     f"mb_to_rsum_{target:g}": round(reached["uplink_mb"].iloc[0], 2) if len(reached) else float("nan")})
    return pd.DataFrame(rows)


def plot(run_dirs: list[Path], table: pd.DataFrame, file: Path) -> None:
    """RSUM against cumulative uplink MB (log scale), a line per run, from round 1."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for run_dir, (_, row) in zip(run_dirs, table.iterrows()):
        points = curve(run_dir)
        points = points[points["round"] > 0]  # round 0 (untrained, nothing sent) has no place on a log axis
        label = f"{row['update-compression']}{'' if row['error-feedback'] else ', no error feedback'}"
        ax.plot(points["uplink_mb"], points["rsum"], marker="o", ms=3, label=label)
    ax.set(xscale="log", xlabel="cumulative uplink (MB, log scale)", ylabel="RSUM (%)",
           title="RSUM against the bytes the users sent")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--target", type=float, default=100.0, help="RSUM whose first crossing is reported in MB")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = summary(args.run_dirs, args.target)
    table.to_csv(args.out / "rsum_vs_bytes.csv", index=False)
    plot(args.run_dirs, table, args.out / "rsum_vs_bytes.png")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
