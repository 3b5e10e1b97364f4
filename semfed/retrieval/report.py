"""A retrieval run's results in its run directory: the metrics table, groups.csv, the RSUM and per-user
plots, personalisation and network tables and the checkpoint (semfed.run_directory writes them)."""

from __future__ import annotations

import warnings
from pathlib import Path

from matplotlib.lines import Line2D
import numpy as np
import pandas as pd
import torch

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.config_values import format_client_list
from semfed.network import INCLUDED, NETWORK_FIELDS, Network
from semfed.plots import plt, save_figure
from semfed.retrieval.metrics import users_mean
from semfed.tasks import TASKS

METRICS = TASKS["retrieval"].rounds_table
GROUPS = TASKS["retrieval"].final_table
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("adapter", "round", "skb_version", "config")
PLOT = "rsum.png"
USERS_PLOT = "users.png"
PERSONAL = "personal.csv"  # personalisation: each user's own-test RSUM, global adapter against its personal copy
PERSONAL_PLOT = "personal.png"
NETWORK = "network.csv"  # the simulated network: each sampled user's round (semfed.network.ClientRound)
NETWORK_USERS = "network_users.csv"  # the simulated network: per user over the run
NETWORK_PLOT = "network.png"


def append_metrics(path: Path, table: pd.DataFrame | None, row: dict) -> pd.DataFrame:
    """The metrics table so far (None before the first row) plus `row`, written to metrics.csv."""
    return rd.append_rows(path / METRICS, table, [row])


def write_groups(path: Path, cfg: SemfedConfig, client_rsum: dict[int, float]) -> pd.DataFrame:
    """groups.csv: final RSUM per client group (clients sharing the same encoders, listed like '0-4,7'), the
    mean of its users' RSUMs on their own test images."""
    groups: dict[str, list[int]] = {}
    for pid, profile in enumerate(cfg.client_profiles):
        groups.setdefault(profile.group, []).append(pid)
    table = pd.DataFrame([{"group": g, "clients": format_client_list(pids),
                           "rsum": users_mean(client_rsum, pids)} for g, pids in groups.items()])
    table.to_csv(path / GROUPS, index=False)
    return table


def write_personal(path: Path, cfg: SemfedConfig, personal: dict[int, tuple[float, float]],
                   group_of: dict[int, str]) -> pd.DataFrame:
    """personal.csv and personal.png: per user that replied (strategies.personal_evaluation), its group
    (group_of: partition id -> group), its own-test RSUM with the global adapter and with its personal copy,
    and the gain; the plot shows the two as bars per user."""
    table = pd.DataFrame([{"partition-id": pid, "group": group_of[pid], "rsum_global": personal[pid][0],
                           "rsum_personal": personal[pid][1], "gain": personal[pid][1] - personal[pid][0]}
                          for pid in sorted(personal)],
                         columns=["partition-id", "group", "rsum_global", "rsum_personal", "gain"])
    table.to_csv(path / PERSONAL, index=False)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(table)), 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["rsum_global"], 0.4, label="global adapter")
    ax.bar(x + 0.2, table["rsum_personal"], 0.4, label=f"personal copy ({cfg.personal_finetune_epochs} epochs)")
    ax.set_xticks(x, [f"{p}\n{g}" for p, g in zip(table["partition-id"], table["group"])], fontsize=6)
    ax.set(ylabel="own-test RSUM (%)", title=f"semfed {cfg.method}: personalisation, seed {cfg.seed}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path / PERSONAL_PLOT)
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


LINES_PER_GROUP = 20  # users.png: a group of more users is drawn as its median and 10-90th percentile band


def users_figure(table: pd.DataFrame, group_of: dict[int, str], title: str) -> plt.Figure:
    """Each user's RSUM on its own test images (user_rsum[k]) against the scored rounds, coloured by its group
    (group_of: partition id -> group name; one legend entry per group): one line per user, or for a group of
    more than LINES_PER_GROUP users its median and the band from its 10th to its 90th percentile user (users
    without test images left out)."""
    names = sorted(set(group_of.values()))
    colour = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    columns = [f"user_rsum[{pid}]" for pid in sorted(group_of)]
    scored = table[table[columns].notna().any(axis=1)]
    fig, ax = plt.subplots(figsize=(6, 4))
    handles = []
    for name in names:
        values = scored[[f"user_rsum[{pid}]" for pid in sorted(group_of) if group_of[pid] == name]].to_numpy(float)
        if values.shape[1] <= LINES_PER_GROUP:
            ax.plot(scored["round"], values, lw=1, alpha=0.7, color=colour[name])
            handles.append(Line2D([], [], color=colour[name], label=name))
            continue
        with warnings.catch_warnings():  # a round in which none of the group's users could be scored
            warnings.simplefilter("ignore", RuntimeWarning)
            low, median, high = np.nanpercentile(values, [10, 50, 90], axis=1)
        ax.fill_between(scored["round"], low, high, color=colour[name], alpha=0.25, lw=0)
        ax.plot(scored["round"], median, lw=1.5, color=colour[name])
        handles.append(Line2D([], [], color=colour[name], label=f"{name}: median, 10-90% of {values.shape[1]} users"))
    ax.legend(handles=handles, fontsize=7)
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


def network_table(network_log: dict[int, list[dict]]) -> pd.DataFrame:
    """One row per round and sampled user (ClientRound's fields), rounds in order."""
    rows = [{"round": r, **row} for r in sorted(network_log) for row in network_log[r]]
    return pd.DataFrame(rows, columns=["round", *NETWORK_FIELDS])


def write_network(path: Path, network_log: dict[int, list[dict]]) -> None:
    """network.csv: network_table, rewritten after every round."""
    network_table(network_log).to_csv(path / NETWORK, index=False)


def write_network_users(path: Path, network: Network, network_log: dict[int, list[dict]],
                        client_rsum: dict[int, float]) -> pd.DataFrame:
    """network_users.csv: per user its device, mean SNR (dB), rounds sampled, included (in time, partial or
    stale), partial, late, stale and without budget, examples trained, energy (J) over the run, and its final RSUM on its
    own test images."""
    log = network_table(network_log)  # network.csv itself is written every round
    rows = []
    for pid, device in network.devices.items():
        own = log[log["partition"] == pid]
        rows.append({"partition-id": pid, "device": device, "mean_snr_db": round(network.mean_snr_db[pid], 2),
                     "sampled": len(own), "included": int(own["status"].isin(INCLUDED).sum()),
                     **{status.replace(" ", "_"): int((own["status"] == status).sum())
                        for status in ("partial", "late", "stale", "no budget")},
                     "examples": int(own["examples"].sum()), "energy_j": float(own["energy_j"].sum()),
                     "user_rsum": client_rsum.get(pid, float("nan"))})
    users = pd.DataFrame(rows)
    users.to_csv(path / NETWORK_USERS, index=False)
    return users


def plot_network(path: Path, table: pd.DataFrame, users: pd.DataFrame, title: str) -> None:
    """network.png: RSUM against simulated time (left), each round's simulated seconds and energy (middle),
    and per user the rounds it was included in, coloured by device (right)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    scored = table.dropna(subset=["rsum"])
    axes[0].plot(scored["sim_clock_s"], scored["rsum"], marker="o")
    axes[0].set(xlabel="simulated time (s)", ylabel="RSUM (%)", title="RSUM against simulated time")
    rounds = table[table["round"] > 0]
    axes[1].bar(rounds["round"], rounds["sim_round_s"], color="tab:blue", label="round time (s)")
    energy = axes[1].twinx()
    energy.plot(rounds["round"], rounds["energy_j"], color="tab:red", marker=".", label="energy (J)")
    axes[1].set(xlabel="round", ylabel="simulated seconds", title="each round")
    energy.set_ylabel("energy of the sampled users (J)", color="tab:red")
    devices = sorted(users["device"].unique())
    colour = {d: plt.get_cmap("tab10")(i) for i, d in enumerate(devices)}
    axes[2].bar(users["partition-id"], users["included"], color=[colour[d] for d in users["device"]])
    axes[2].bar(users["partition-id"], users["sampled"] - users["included"], bottom=users["included"], color="lightgrey")
    axes[2].legend(handles=[Line2D([], [], color=colour[d], lw=6, label=d) for d in devices]
                   + [Line2D([], [], color="lightgrey", lw=6, label="sampled, not included")], fontsize=7,
                   loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[2].set(xlabel="user (partition id)", ylabel="rounds", title="rounds each user's update counted")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path / NETWORK_PLOT)
