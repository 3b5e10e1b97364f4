"""Summarise noisy-label runs: final RSUM per label group and pruning precision / recall / F1.

Usage: python experiments/label_summary.py RUN_DIR [RUN_DIR ...]
Runs named '<variant>-seed<k>' are also averaged over seeds. Writes label_summary.csv (one
row per run) and label_summary.png (final RSUM per group and variant, mean and spread over
seeds) beside the first run directory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

GROUP_COLUMNS = ("group_rsum[", "pruned[", "precision[", "recall[", "f1[")


def summarise(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: variant, seed, final-round group RSUM, pruned count and P/R/F1 per group."""
    rows = []
    for run in run_dirs:
        final = pd.read_csv(run / "metrics.csv").iloc[-1]
        match = re.fullmatch(r"(.+)-seed(\d+)", run.name)
        row = {"variant": match.group(1) if match else run.name, "seed": int(match.group(2)) if match else None,
               "round": int(final["round"])}
        row.update({c.replace("group_rsum", "rsum"): final[c] for c in final.index if c.startswith(GROUP_COLUMNS)})
        rows.append(row)
    return pd.DataFrame(rows)


def over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """'mean ± std' over seeds of every group RSUM and of the all-clients pruning scores, per
    variant in first-seen order."""
    columns = [c for c in table.columns if c.startswith("rsum[") or c.endswith("[all]")]
    grouped = table.groupby("variant", sort=False)
    mean, std = grouped[columns].mean(), grouped[columns].std()
    return (mean.map("{:.2f}".format) + " ± " + std.map("{:.2f}".format)).assign(seeds=grouped["seed"].count())


def plot(table: pd.DataFrame, path: Path) -> None:
    """Bars: final RSUM per group (x) and variant (colour), mean over seeds with min-max whiskers."""
    groups = [c for c in table.columns if c.startswith("rsum[")]
    variants = list(dict.fromkeys(table["variant"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        runs = table[table["variant"] == variant][groups]
        mean = runs.mean()
        err = [mean - runs.min(), runs.max() - mean]
        ax.bar([g + i * width for g in range(len(groups))], mean, width, yerr=err, capsize=2, label=variant)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [c[5:-1] for c in groups])
    ax.set(ylabel="final RSUM (%)", title=f"label noise ablations ({table['seed'].nunique()} seed(s))")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    runs = [Path(p) for p in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    missing = [str(r) for r in runs if not (r / "metrics.csv").is_file()]
    if missing:
        sys.exit(f"no metrics.csv in: {', '.join(missing)}")
    table = summarise(runs)
    table.to_csv(runs[0].parent / "label_summary.csv", index=False)
    plot(table, runs[0].parent / "label_summary.png")
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.precision", 2):
        print(table.to_string(index=False))
        if table["seed"].nunique() > 1:
            print("\nmean and std over seeds:")
            print(over_seeds(table).to_string())
            print("\nRSUM of all clients per seed (seeds differ in partition and initialisation: compare within a column):")
            print(table.pivot(index="variant", columns="seed", values="rsum[all]").loc[list(dict.fromkeys(table["variant"]))])
