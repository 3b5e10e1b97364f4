"""Summarise noisy-label runs: final RSUM per label group and pruning precision / recall / F1.

Usage: python experiments/label_summary.py RUN_DIR [RUN_DIR ...]  (writes label_summary.csv beside them)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def summarise(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: final-round group RSUM, pruned count and P/R/F1 per group."""
    rows = []
    for run in run_dirs:
        final = pd.read_csv(run / "metrics.csv").iloc[-1]
        row = {"run": run.name, "round": int(final["round"])}
        for column in final.index:
            if column.startswith(("group_rsum[", "pruned[", "precision[", "recall[", "f1[")):
                row[column.replace("group_rsum", "rsum")] = final[column]
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    runs = [Path(p) for p in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    missing = [str(r) for r in runs if not (r / "metrics.csv").is_file()]
    if missing:
        sys.exit(f"no metrics.csv in: {', '.join(missing)}")
    table = summarise(runs)
    table.to_csv(runs[0].parent / "label_summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.precision", 2):
        print(table.to_string(index=False))
