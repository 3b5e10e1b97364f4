"""A D-JSCC run's results in its run directory: the long metrics table, the paper-shaped
table (seed 001's Tables III / IV), the PSNR-vs-SNR plot and the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from semfed import run_directory as rd
from semfed.plots import plt, save_figure
from semfed.tasks import TASKS

METRICS = TASKS["jscc"].rounds_table
TABLE = TASKS["jscc"].final_table
PLOT = "jscc_psnr.png"
CHECKPOINT = "jscc_checkpoint.pt"
CHECKPOINT_KEYS = ("encoder", "decoders", "families", "round", "config")
METRIC_NAMES = {"psnr": "PSNR", "ms_ssim": "MS-SSIM"}


def append_rows(path: Path, table: pd.DataFrame | None, rows: list[dict]) -> pd.DataFrame:
    """The long table so far (None before the first rows) plus rows, written to jscc_metrics.csv."""
    return rd.append_rows(path / METRICS, table, rows)


def paper_table(table: pd.DataFrame, framework: str) -> pd.DataFrame:
    """The last round of the long table shaped like seed 001's Tables III / IV: one row per
    (channel, decoder), columns 'PSNR@<snr>dB' and 'MS-SSIM@<snr>dB' per SNR in ascending order."""
    last = table[table["round"] == table["round"].max()]
    wide = last.pivot_table(index=["channel", "decoder", "family"], columns="snr", values=list(METRIC_NAMES))
    snrs = sorted(last["snr"].unique())
    columns = {f"{METRIC_NAMES[m]}@{snr:g}dB": wide[(m, snr)] for snr in snrs for m in METRIC_NAMES}
    out = pd.DataFrame(columns).reset_index()
    out.insert(0, "framework", framework)
    out.insert(1, "round", int(last["round"].iloc[0]))
    return out


def plot_psnr(path: Path, table: pd.DataFrame, title: str) -> None:
    """jscc_psnr.png: PSNR (top) and MS-SSIM (bottom) against SNR per decoder, one column per channel,
    at the last round."""
    last = table[table["round"] == table["round"].max()]
    channels = sorted(last["channel"].unique())
    fig, axes = plt.subplots(2, len(channels), figsize=(4.5 * len(channels), 6.5), squeeze=False)
    for col, channel in enumerate(channels):
        for (pid, family), rows in last[last["channel"] == channel].groupby(["decoder", "family"]):
            rows = rows.sort_values("snr")
            for row, metric in enumerate(METRIC_NAMES):
                axes[row, col].plot(rows["snr"], rows[metric], marker="o", label=f"{pid}: {family}")
        for row, metric in enumerate(METRIC_NAMES):
            axes[row, col].set(xlabel="SNR (dB)", ylabel=METRIC_NAMES[metric] + (" (dB)" if metric == "psnr" else ""),
                                title=channel)
            axes[row, col].grid(alpha=0.3)
        axes[0, col].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path / PLOT)


def save_checkpoint(path: Path, encoder: dict[str, torch.Tensor], decoders: dict[int, dict[str, torch.Tensor]],
                    families: list[str], server_round: int, config: dict) -> None:
    """Atomically write jscc_checkpoint.pt: encoder and per-client decoder states, families, round, config."""
    rd.write_checkpoint(path / CHECKPOINT, {"encoder": encoder, "decoders": decoders, "families": families,
                                            "round": server_round, "config": config})


def load_checkpoint(run_dir: Path) -> dict:
    """jscc_checkpoint.pt of `run_dir` (semfed.run_directory.load_checkpoint: tensors and plain containers only)."""
    return rd.load_checkpoint(run_dir / CHECKPOINT, CHECKPOINT_KEYS)
