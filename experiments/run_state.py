"""Whether a sweep point's run directory holds a finished run, for either task, and setting unfinished ones aside."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.sweep_grid import Point
from semfed.config import default_run_config
from semfed.jscc.plateau import stopped_round
from semfed.tasks import TASKS

TIMES = "times.csv"  # <work-dir>/sweeps/<sweep>/: one row per point run (runner, wall and CPU seconds, finished)


def is_finished(run_dir: Path, point: Point) -> bool:
    """The run holds the point's config, every round of it (up to where it stopped at a plateau) and its final table."""
    if not (run_dir / "config.json").is_file():
        return False
    config = json.loads((run_dir / "config.json").read_text())
    if any(config.get(key) != value for key, value in point.overrides.items()):
        return False
    task = TASKS[config["task"] if "task" in config else default_run_config()["task"]]
    if not (run_dir / task.final_table).is_file() or not (run_dir / task.rounds_table).is_file():
        return False
    last_round = int(pd.read_csv(run_dir / task.rounds_table)["round"].max())
    return last_round in (config["num-server-rounds"], stopped_round(run_dir))


def set_aside(run_dir: Path) -> Path:
    """Rename an unfinished run directory to <name>.interrupted-<k> (kept, never deleted)."""
    k = 1
    while (target := run_dir.with_name(f"{run_dir.name}.interrupted-{k}")).exists():
        k += 1
    run_dir.rename(target)
    return target
