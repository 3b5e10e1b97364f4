"""A retrieval run's results in its run directory: the metrics table, groups.csv, the RSUM and per-user
plots and the checkpoint (semfed.run_directory writes them)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D
import pandas as pd
import torch

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.plots import plt, save_figure
from semfed.retrieval.metrics import users_mean
from semfed.tasks import TASKS

METRICS = TASKS["retrieval"].rounds_table
GROUPS = TASKS["retrieval"].final_table
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("adapter", "round", "skb_version", "config")
PLOT = "rsum.png"
USERS_PLOT = "users.png"


def append_metrics(path: Path, table: pd.DataFrame | None, row: dict) -> pd.DataFrame:
    """The metrics table so far (None before the first row) plus `row`, written to metrics.csv."""
    return rd.append_rows(path / METRICS, table, [row])


def write_groups(path: Path, cfg: SemfedConfig, client_rsum: dict[int, float]) -> pd.DataFrame:
    """groups.csv: final RSUM per client group (clients sharing the same encoders), the mean of its users'
    RSUMs on their own test images."""
    groups: dict[str, list[int]] = {}
    for pid, profile in enumerate(cfg.client_profiles):
        groups.setdefault(profile.group, []).append(pid)
    table = pd.DataFrame([{"group": g, "clients": " ".join(map(str, pids)),
                           "rsum": users_mean(client_rsum, pids)} for g, pids in groups.items()])
    table.to_csv(path / GROUPS, index=False)
    return table


def plot_rsum(path: Path, table: pd.DataFrame, title: str) -> None:
    """rsum.png: RSUM (mean over encoder pairs, and each pair) against rounds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for column in [c for c in table.columns if c.startswith("rsum[")]:
        ax.plot(table["round"], table[column], lw=1, alpha=0.6, label=column[5:-1])
    ax.plot(table["round"], table["rsum"], lw=2.5, color="black", label="mean")
    ax.set(xlabel="round", ylabel="RSUM (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path / PLOT)


def users_figure(table: pd.DataFrame, group_of: dict[int, str], title: str) -> plt.Figure:
    """Each user's RSUM on its own test images (user_rsum[k]) against the scored rounds: one line per user,
    coloured by its group (group_of: partition id -> group name; one legend entry per group)."""
    names = sorted(set(group_of.values()))
    colour = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(6, 4))
    for pid in sorted(group_of):
        scored = table[["round", f"user_rsum[{pid}]"]].dropna()
        ax.plot(scored["round"], scored[f"user_rsum[{pid}]"], lw=1, alpha=0.7, color=colour[group_of[pid]])
    ax.legend(handles=[Line2D([], [], color=colour[name], label=name) for name in names], fontsize=7)
    ax.set(xlabel="round", ylabel="RSUM on the user's own test images (%)", title=title)
    ax.grid(alpha=0.3)
    return fig


def plot_users(path: Path, table: pd.DataFrame, group_of: dict[int, str], title: str) -> None:
    """users.png: users_figure of the metrics table so far."""
    fig = users_figure(table, group_of, title)
    save_figure(fig, path / USERS_PLOT)


def save_checkpoint(path: Path, state: dict[str, torch.Tensor], server_round: int, skb_version: str,
                    cfg: SemfedConfig, resume_state: dict | None = None) -> None:
    """Atomically write checkpoint.pt: adapter state, round, SKB version and config, plus what a
    resumed run needs (`resume_state`: strategy state, RNG states, metrics so far), all tensors and
    plain containers (load_checkpoint reads it with weights_only=True)."""
    rd.write_checkpoint(path / CHECKPOINT, {"adapter": state, "round": server_round, "skb_version": skb_version,
                                            "config": cfg.to_run_config(), **(resume_state or {})})


def load_checkpoint(run_dir: Path) -> dict:
    """checkpoint.pt of `run_dir` (semfed.run_directory.load_checkpoint: tensors and plain containers only)."""
    return rd.load_checkpoint(run_dir / CHECKPOINT, CHECKPOINT_KEYS)
