"""A D-JSCC sweep (task='jscc', e.g. experiments/sweeps/jscc_frameworks.toml; run by experiments/sweep.py)
as one table: framework x decoder x SNR x channel, PSNR and MS-SSIM, with the paper's ordering checked per cell.
Cells: the last round's scores on the channel the run was trained on (Tables III / IV; cross-channel scores
stay in each run's jscc_metrics.csv), averaged over any other axis (e.g. seeds). A cell keeps the ordering
when anchor >= iterative > simultaneous."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.run_state import is_finished
from experiments.sweep_grid import Sweep
from semfed.jscc.plateau import last_window
from semfed.jscc.report import METRIC_NAMES, METRICS
from semfed.plots import plt, save_figure

ORDER = ("anchor", "iterative", "simultaneous")
CELL = ["channel", "decoder", "family", "snr"]


def collect(sweep: Sweep, runs: Path, window: bool = False) -> pd.DataFrame:
    """Finished points' last-round rows on their training channel, with point and framework columns. With
    window: each cell's mean over the rounds of the run's plateau window (semfed.jscc.plateau.last_window;
    runs without one are left out), where a last round alone swings with training noise and, under
    iterative, with whose turn the last round was."""
    frames = []
    for point in sweep.points:
        run_dir = runs / point.name
        if not is_finished(run_dir, point):
            continue
        config = json.loads((run_dir / "config.json").read_text())
        metrics = pd.read_csv(run_dir / METRICS)
        metrics = metrics[metrics["channel"] == config["jscc-channel"]]
        if window:
            if (rounds := last_window(run_dir)) is None:
                continue
            inside = metrics[metrics["round"].between(*rounds)]
            last = inside.groupby(CELL, as_index=False)[list(METRIC_NAMES)].mean()
        else:
            last = metrics[metrics["round"] == metrics["round"].max()]
        frames.append(last.assign(point=point.name, framework=config["jscc-framework"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def framework_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (channel, decoder, family, snr); columns '<metric>[<framework>]' (mean over
    points) and 'order_<metric>': True when anchor >= iterative > simultaneous (NaN if one is missing)."""
    wide = rows.pivot_table(index=CELL, columns="framework", values=list(METRIC_NAMES), aggfunc="mean")
    table = pd.DataFrame(index=wide.index)
    for metric in METRIC_NAMES:
        for framework in ORDER:
            table[f"{metric}[{framework}]"] = wide[(metric, framework)] if (metric, framework) in wide else float("nan")
        anchor, iterative, simultaneous = (table[f"{metric}[{f}]"] for f in ORDER)
        holds = (anchor >= iterative) & (iterative > simultaneous)
        table[f"order_{metric}"] = holds.where(table[[f"{metric}[{f}]" for f in ORDER]].notna().all(axis=1))
    return table.reset_index()


def summary(table: pd.DataFrame, title: str = "# D-JSCC frameworks: does anchor >= iterative > simultaneous hold?") -> str:
    """Markdown: how many cells keep the paper's ordering, per metric and channel, then every cell
    (PSNR in dB and MS-SSIM for anchor / iterative / simultaneous; a check mark where the ordering holds)."""
    lines = [title, ""]
    for metric, name in METRIC_NAMES.items():
        for channel, cells in table.groupby("channel"):
            known = cells[f"order_{metric}"].dropna()
            anchor_first = (cells[f"{metric}[anchor]"] >= cells[f"{metric}[iterative]"]).sum()
            lines.append(f"- {name}, {channel}: ordering holds in {int(known.sum())} of {len(known)} cells "
                         f"(anchor >= iterative in {int(anchor_first)} of {len(cells)})")
    header = [f"{name} {framework}" for name in METRIC_NAMES.values() for framework in ORDER]
    lines += ["", "| channel | decoder | SNR (dB) | " + " | ".join(header) + " |", "|---" * (len(header) + 3) + "|"]
    for _, row in table.iterrows():
        cells = [f"{row[f'{metric}[{framework}]']:{'.2f' if metric == 'psnr' else '.3f'}}"
                 + (" ✓" if framework == ORDER[0] and pd.notna(row[f"order_{metric}"]) and row[f"order_{metric}"] else "")
                 for metric in METRIC_NAMES for framework in ORDER]
        lines.append(f"| {row['channel']} | {row['decoder']}: {row['family']} | {row['snr']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_frameworks(table: pd.DataFrame, path: Path) -> None:
    """PSNR against SNR, one panel per (channel, decoder), one line per framework."""
    keys = table[["channel", "decoder", "family"]].drop_duplicates().values.tolist()
    channels = list(dict.fromkeys(k[0] for k in keys))
    decoders = list(dict.fromkeys((k[1], k[2]) for k in keys))
    fig, axes = plt.subplots(len(channels), len(decoders), figsize=(3.2 * len(decoders), 2.9 * len(channels)),
                             squeeze=False, sharey=True)
    for (channel, decoder, family), cells in table.groupby(["channel", "decoder", "family"]):
        ax = axes[channels.index(channel), decoders.index((decoder, family))]
        for framework in ORDER:
            ax.plot(cells["snr"], cells[f"psnr[{framework}]"], marker="o", label=framework)
        ax.set(title=f"{channel}, {decoder}: {family}", xlabel="SNR (dB)", ylabel="PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def report(sweep: Sweep, runs: Path, out: Path) -> tuple[pd.DataFrame, str]:
    """A D-JSCC sweep's framework table and summary; the PSNR-by-framework plot written to `out`
    (semfed.tasks: the jscc task's sweep report). An empty table when no point has finished."""
    rows = collect(sweep, runs)
    if rows.empty:
        return rows, ""
    table = framework_table(rows)
    plot_frameworks(table, out / "psnr_by_framework.png")
    text = summary(table)
    windowed = collect(sweep, runs, window=True)
    if not windowed.empty:
        text += "\n" + summary(framework_table(windowed), "# The same over each run's plateau window (mean of its rounds)")
    return table, text
