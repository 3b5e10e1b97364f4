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
from semfed.jscc.report import METRIC_NAMES, METRICS

ORDER = ("anchor", "iterative", "simultaneous")
CELL = ["channel", "decoder", "family", "snr"]


def collect(sweep: Sweep, runs: Path) -> pd.DataFrame:
    """Finished points' last-round rows on their training channel, with point and framework columns."""
    frames = []
    for point in sweep.points:
        run_dir = runs / point.name
        if not is_finished(run_dir, point):
            continue
        config = json.loads((run_dir / "config.json").read_text())
        metrics = pd.read_csv(run_dir / METRICS)
        last = metrics[(metrics["round"] == metrics["round"].max()) & (metrics["channel"] == config["jscc-channel"])]
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


def summary(table: pd.DataFrame) -> str:
    """How many cells keep the paper's ordering, per metric and channel, as Markdown lines."""
    lines = ["# D-JSCC frameworks: does anchor >= iterative > simultaneous hold?", ""]
    for metric, name in METRIC_NAMES.items():
        for channel, cells in table.groupby("channel"):
            known = cells[f"order_{metric}"].dropna()
            anchor_first = (cells[f"{metric}[anchor]"] >= cells[f"{metric}[iterative]"]).sum()
            lines.append(f"- {name}, {channel}: ordering holds in {int(known.sum())} of {len(known)} cells "
                         f"(anchor >= iterative in {int(anchor_first)} of {len(cells)})")
    return "\n".join(lines) + "\n"
