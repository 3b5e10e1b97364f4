"""A text run's results in its run directory (task = text): the long score table, seed 003's Fig. 5(b)
as a table and a plot (BLEU-1..4 and sentence similarity against the output dimension, one line per SNR),
Fig. 5(c) (the access point's revenue under each auction against the bidder count) and the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from semfed import run_directory as rd
from semfed.config_values import BLEU_ORDERS
from semfed.plots import plt, save_figure
from semfed.tasks import TASKS

METRICS = TASKS["text"].rounds_table
AUCTION = TASKS["text"].final_table
SCORES = "text_scores.csv"
SCORES_PLOT = "text_scores.png"
AUCTION_PLOT = "auction.png"
CHECKPOINT = "text_checkpoint.pt"
CHECKPOINT_KEYS = ("codec", "round", "config")
SCORE_NAMES = {**{f"bleu{n}": f"BLEU-{n}" for n in BLEU_ORDERS}, "similarity": "sentence similarity"}


def append_rows(path: Path, table: pd.DataFrame | None, rows: list[dict]) -> pd.DataFrame:
    """The long table so far (None before the first rows) plus rows, written to text_metrics.csv."""
    return rd.append_rows(path / METRICS, table, rows)


def last_round(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the table's last round."""
    return table[table["round"] == table["round"].max()]


def write_scores(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """text_scores.csv: the last round, one row per (channel, snr, dim), the scores and word accuracy."""
    columns = ["round", "channel", "snr", "dim", *SCORE_NAMES, "word_accuracy"]
    scores = last_round(table)[columns].sort_values(["channel", "snr", "dim"])
    scores.to_csv(path / SCORES, index=False)
    return scores


def draw_score(ax, table: pd.DataFrame, score: str) -> None:
    """One Fig. 5(b) panel: `score` against the output dimension (log axis), one line per (channel, SNR) of
    `table` (one row per channel, snr, dim); error bars from a '<score>_std' column when it has one."""
    for (channel, snr), rows in table.groupby(["channel", "snr"]):
        rows = rows.sort_values("dim")
        spread = rows[f"{score}_std"] if f"{score}_std" in rows else None
        ax.errorbar(rows["dim"], rows[score], yerr=spread, marker="o", capsize=3, label=f"{channel} {snr:g} dB")
    dims = sorted(table["dim"].unique())
    ax.set(xscale="log", xlabel="output dimension", title=SCORE_NAMES[score], ylim=(0, 1.02))
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xticks([], minor=True)  # log axis: no minor labels between the dimensions
    ax.grid(alpha=0.3)


def plot_scores(path: Path, table: pd.DataFrame, title: str) -> None:
    """text_scores.png (Fig. 5(b)): each score against the output dimension, one line per SNR, last round."""
    fig, axes = plt.subplots(1, len(SCORE_NAMES), figsize=(3.2 * len(SCORE_NAMES), 3.4), sharex=True)
    for ax, score in zip(axes, SCORE_NAMES):
        draw_score(ax, last_round(table), score)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path / SCORES_PLOT)


def plot_auction(path: Path, auctions: pd.DataFrame, title: str) -> None:
    """auction.png (Fig. 5(c)): the access point's mean revenue per auction against the bidder count."""
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.plot(auctions["bidders"], auctions["second_price_revenue"], marker="s", label="second-price auction")
    ax.plot(auctions["bidders"], auctions["learned_revenue"], marker="o", label="learned auction (Myerson-net)")
    ax.plot(auctions["bidders"], auctions["highest_value"], linestyle=":", color="grey", label="highest value (bound)")
    ax.set(xlabel="bidders (devices)", ylabel="revenue per auction", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path / AUCTION_PLOT)


def save_checkpoint(path: Path, codec: dict[str, torch.Tensor], server_round: int, config: dict) -> None:
    """text_checkpoint.pt: the codec's state after `server_round` and the run config (weights only)."""
    rd.write_checkpoint(path / CHECKPOINT, {"codec": codec, "round": server_round, "config": config})


def load_checkpoint(path: Path) -> dict:
    """text_checkpoint.pt's payload (CHECKPOINT_KEYS), loaded without unpickling code."""
    return rd.load_checkpoint(path / CHECKPOINT, CHECKPOINT_KEYS)
