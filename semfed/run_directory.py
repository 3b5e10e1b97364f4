"""A run's directory: resolved config, metrics table, RSUM plot, checkpoint and log."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pickle
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from semfed.config import SemfedConfig  # noqa: E402
from semfed.metrics import users_mean  # noqa: E402
from semfed.tasks import TASKS  # noqa: E402

METRICS = TASKS["retrieval"].rounds_table
GROUPS = TASKS["retrieval"].final_table
CHECKPOINT = "checkpoint.pt"
USERS_PLOT = "users.png"
PLOT = "rsum.png"
LOG = "run.log"
CHECKPOINT_KEYS = ("adapter", "round", "skb_version", "config")


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt or not a semfed checkpoint."""


def create_run_dir(cfg: SemfedConfig) -> Path:
    """Make work-dir/runs/<run-name> (default <UTC time>-seed<seed>) and write config.json.
    An existing directory with a metrics table is refused unless the run resumes (cfg.resume)."""
    name = cfg.run_name or f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-seed{cfg.seed}"
    path = cfg.root / "runs" / name
    if (path / METRICS).exists() and not cfg.resume:
        raise FileExistsError(f"run directory {path} already holds a metrics table; choose another run-name "
                              "(or set resume=true to continue it)")
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg.to_run_config(), indent=2, sort_keys=True) + "\n")
    return path


def attach_log(path: Path) -> list[logging.Handler]:
    """Send every 'semfed' log record to the run's log file and to the console (the streamed run log)."""
    handlers = [logging.FileHandler(path / LOG), logging.StreamHandler()]
    logger = logging.getLogger("semfed")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return handlers


def detach_log(handlers: list[logging.Handler]) -> None:
    logger = logging.getLogger("semfed")
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def append_rows(file: Path, table: pd.DataFrame | None, rows: list[dict]) -> pd.DataFrame:
    """A run's table so far (None before the first rows) plus `rows`, written to `file` (CSV): the one
    table writer of both tasks (metrics.csv, jscc_metrics.csv)."""
    new = pd.DataFrame(rows)
    table = new if table is None else pd.concat([table, new], ignore_index=True)
    table.to_csv(file, index=False)
    return table


def append_metrics(path: Path, table: pd.DataFrame | None, row: dict) -> pd.DataFrame:
    """The metrics table so far (None before the first row) plus `row`, written to metrics.csv."""
    return append_rows(path / METRICS, table, [row])


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
    fig.tight_layout()
    fig.savefig(path / PLOT, dpi=120)
    plt.close(fig)


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
    fig.tight_layout()
    return fig


def plot_users(path: Path, table: pd.DataFrame, group_of: dict[int, str], title: str) -> None:
    """users.png: users_figure of the metrics table so far."""
    fig = users_figure(table, group_of, title)
    fig.savefig(path / USERS_PLOT, dpi=120)
    plt.close(fig)


def save_checkpoint(path: Path, state: dict[str, torch.Tensor], server_round: int, skb_version: str,
                    cfg: SemfedConfig, resume_state: dict | None = None) -> None:
    """Atomically write checkpoint.pt: adapter state, round, SKB version and config, plus what a
    resumed run needs (`resume_state`: strategy state, RNG states, metrics so far), all tensors and
    plain containers (load_checkpoint reads it with weights_only=True)."""
    write_checkpoint(path / CHECKPOINT, {"adapter": state, "round": server_round, "skb_version": skb_version,
                                         "config": cfg.to_run_config(), **(resume_state or {})})


def write_checkpoint(file: Path, payload: dict) -> None:
    """torch.save `payload` (tensors and plain containers) to `file` atomically: a temporary file in the
    same folder, fsynced, then renamed over `file`, so a crash leaves the old checkpoint or the new one.
    The one checkpoint writer of both tasks."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)


def load_checkpoint(file: Path, keys: tuple[str, ...] = CHECKPOINT_KEYS) -> dict:
    """A checkpoint written by write_checkpoint (of a retrieval run unless `keys` says what it must hold);
    CheckpointError naming the file if it is truncated, corrupt, holds anything but tensors and plain
    containers (torch.load weights_only=True: a file in the work dir is never unpickled as code) or lacks
    one of `keys` (never a half-read state)."""
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        refused = re.search(r"GLOBAL ([\w.]+)", str(error)) if isinstance(error, pickle.UnpicklingError) else None
        if refused:  # weights_only met a class or function: the file was not written by save_checkpoint
            raise CheckpointError(f"checkpoint {file} holds a pickled {refused.group(1)}, not only tensors and "
                                  "plain containers, and was refused (checkpoints are loaded with torch.load "
                                  "weights_only=True: a file in the work dir is never run as code)") from None
        raise CheckpointError(f"checkpoint {file} is truncated or corrupt and was not loaded "
                              f"({type(error).__name__}: {error})") from None
    missing = [k for k in keys if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {file} is not a semfed checkpoint: it lacks {missing}")
    return checkpoint
