"""A D-JSCC sweep (task='jscc', e.g. experiments/sweeps/jscc_frameworks.toml) as one table:
framework x decoder x SNR x channel, PSNR and MS-SSIM, with the paper's ordering checked per cell.

    .venv/bin/python experiments/jscc_summary.py experiments/sweeps/jscc_frameworks.toml [--work-dir DIR]
    .venv/bin/python experiments/jscc_summary.py SWEEP --commands   # print the commands of unfinished points

experiments/sweep.py cannot run D-JSCC points to completion: its is_finished wants metrics.csv and
groups.csv (retrieval outputs). Run each point with the command --commands prints (one
scripts/flwr_run.sh call each, run directory <work-dir>/runs/<sweep>/<point>), then collect here.
A point is finished when its jscc_table.csv exists, its config.json holds the point's overrides and
jscc_metrics.csv reaches the last round. Cells: the last round's scores on the channel the run was
trained on (Tables III / IV; cross-channel scores stay in each run's jscc_metrics.csv), averaged over
any other axis (e.g. seeds). A cell keeps the ordering when anchor >= iterative > simultaneous.
Writes <work-dir>/sweeps/<sweep>/jscc_frameworks.csv (the table) and jscc_summary.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments.sweep_grid import Point, Sweep, load_sweep, run_config_text  # noqa: E402
from semfed.jscc.report import METRIC_NAMES, METRICS, TABLE  # noqa: E402

ORDER = ("anchor", "iterative", "simultaneous")
CELL = ["channel", "decoder", "family", "snr"]


def is_finished(run_dir: Path, point: Point) -> bool:
    """The run holds the point's config, its final jscc_table.csv and every round's metrics."""
    if not (run_dir / TABLE).is_file() or not (run_dir / METRICS).is_file():
        return False
    config = json.loads((run_dir / "config.json").read_text())
    if any(config.get(key) != value for key, value in point.overrides.items()):
        return False
    return int(pd.read_csv(run_dir / METRICS)["round"].max()) == config["num-server-rounds"]


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "work")
    parser.add_argument("--commands", action="store_true", help="print the run command of every unfinished point")
    args = parser.parse_args()
    sweep = load_sweep(args.sweep)
    work_dir = args.work_dir.resolve()
    runs = work_dir / "runs" / sweep.name
    if args.commands:
        for point in sweep.points:
            if not is_finished(runs / point.name, point):
                overrides = {**point.overrides, "work-dir": str(work_dir), "run-name": f"{sweep.name}/{point.name}"}
                print(f'bash scripts/flwr_run.sh "{run_config_text(overrides)}" "{sweep.federation}"')
        return 0
    rows = collect(sweep, runs)
    if rows.empty:
        print(f"no finished points in {runs}")
        return 1
    table = framework_table(rows)
    out = work_dir / "sweeps" / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "jscc_frameworks.csv", index=False)
    text = summary(table)
    (out / "jscc_summary.md").write_text(text)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(text)
    print(f"{out / 'jscc_frameworks.csv'}, {out / 'jscc_summary.md'}; {rows['point'].nunique()} of "
          f"{len(sweep.points)} points finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
