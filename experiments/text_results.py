"""A text sweep (task='text', e.g. experiments/sweeps/text_case_study.toml; run by experiments/sweep.py) as
seed 003's two figures over its finished points: Fig. 5(b), BLEU-1..4 and sentence similarity per channel,
SNR and output dimension, and Fig. 5(c), the access point's revenue under the second-price and the learned
auction per bidder count; each cell as mean and standard deviation over the points (e.g. seeds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.run_state import is_finished
from experiments.sweep_grid import Sweep
from semfed.plots import plt, save_figure
from semfed.text.report import AUCTION, SCORE_NAMES, SCORES, draw_score

REVENUES = {"second_price_revenue": "second-price", "learned_revenue": "learned (Myerson-net)"}
TIE = 0.001  # revenue ratios within 1 +- TIE count as a tie in the summary


def collect(sweep: Sweep, runs: Path, table: str) -> pd.DataFrame:
    """The finished points' `table` (text_scores.csv or auction.csv), with a point column."""
    frames = [pd.read_csv(runs / point.name / table).assign(point=point.name)
              for point in sweep.points if is_finished(runs / point.name, point)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def spread(rows: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """One row per `keys` cell: '<value>' (mean over points), '<value>_std' and the cell's point count."""
    grouped = rows.groupby(keys)
    table = grouped[values].mean()
    table = table.join(grouped[values].std(ddof=1).add_suffix("_std")).join(grouped.size().rename("points"))
    return table.reset_index()


def summary(scores: pd.DataFrame, auctions: pd.DataFrame) -> str:
    """Markdown: both figures' tables (mean ± std over points) and where the learned auction earns more."""
    lines = ["# Seed 003's case study: semantic text from wireless-powered devices", "",
             "## Fig. 5(b): scores against the output dimension", "",
             "| channel | SNR (dB) | dim | " + " | ".join(SCORE_NAMES.values()) + " | points |",
             "|---" * (len(SCORE_NAMES) + 4) + "|"]
    for _, row in scores.iterrows():
        cells = [f"{row[s]:.3f} ± {row[f'{s}_std']:.3f}" for s in SCORE_NAMES]
        lines.append(f"| {row['channel']} | {row['snr']:g} | {int(row['dim'])} | " + " | ".join(cells)
                     + f" | {int(row['points'])} |")
    lines += ["", "## Fig. 5(c): the access point's revenue per auction", "",
              "| bidders | mean value | highest value | second-price | learned | learned / second-price | "
              "IR violation (max) | regret (max) |", "|---" * 8 + "|"]
    for _, row in auctions.iterrows():
        lines.append(f"| {int(row['bidders'])} | {row['mean_value']:.3f} | {row['highest_value']:.3f} | "
                     f"{row['second_price_revenue']:.3f} ± {row['second_price_revenue_std']:.3f} | "
                     f"{row['learned_revenue']:.3f} ± {row['learned_revenue_std']:.3f} | "
                     f"{row['learned_over_second_price']:.3f} | {row['ir_violation_max']:.2g} | {row['regret_max']:.2g} |")
    ratio = auctions.set_index("bidders")["learned_over_second_price"]
    ahead, behind = (sorted(int(n) for n in ratio.index[side]) for side in (ratio > 1 + TIE, ratio < 1 - TIE))
    lines += ["", f"Of bidder counts {[int(n) for n in ratio.index]}, the learned auction earns more than the "
              f"second-price auction by over {TIE:.1%} (mean ratio over points) at {ahead or 'none'} and less "
              f"at {behind or 'none'}; elsewhere they tie."]
    return "\n".join(lines) + "\n"


def plot(scores: pd.DataFrame, auctions: pd.DataFrame, path: Path) -> None:
    """Fig. 5(b) (BLEU-4 and sentence similarity against the dimension, one line per channel and SNR) and
    Fig. 5(c) (revenue against the bidder count), with the points' standard deviation as error bars."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, score in zip(axes, ("bleu4", "similarity")):
        draw_score(ax, scores, score)
    axes[0].legend(fontsize=7)
    for column, name in REVENUES.items():
        axes[2].errorbar(auctions["bidders"], auctions[column], yerr=auctions[f"{column}_std"], marker="o",
                         capsize=3, label=name)
    axes[2].set(xlabel="bidders", ylabel="revenue per auction", title="access point's revenue")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    save_figure(fig, path)


def report(sweep: Sweep, runs: Path, out: Path) -> tuple[pd.DataFrame, str]:
    """A text sweep's Fig. 5(b) table and summary; text_case_study.png written to `out` (semfed.tasks: the text
    task's sweep report). An empty table when no point has finished."""
    scores, auctions = collect(sweep, runs, SCORES), collect(sweep, runs, AUCTION)
    if scores.empty or auctions.empty:
        return pd.DataFrame(), ""
    score_table = spread(scores, ["channel", "snr", "dim"], list(SCORE_NAMES))
    auction_table = spread(auctions, ["bidders"], ["mean_value", "highest_value", *REVENUES,
                                                   "learned_over_second_price"])
    worst = auctions.groupby("bidders")[["ir_violation", "regret"]].max().add_suffix("_max").reset_index()
    auction_table = auction_table.merge(worst, on="bidders")
    plot(score_table, auction_table, out / "text_case_study.png")
    return score_table, summary(score_table, auction_table)
