"""Result sinks: the rows a run writes to its metrics table also go, when the `tracking` config key asks,
to TensorBoard event files in the run directory and to an MLflow run in a local SQLite store under the
work dir (offline, nothing to start). The CSV stays the canonical table; a sink only mirrors it.

Both libraries are imported only when their sink is asked for (MLflow's import takes seconds)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

TENSORBOARD_DIR = "tensorboard"  # in the run directory
MLFLOW_DB = "mlflow.db"  # in the work dir: one store for every run and sweep
MLFLOW_ARTIFACTS = "mlflow-artifacts"  # in the work dir too (MLflow's default is ./mlruns of the working directory)
MLFLOW_DEFAULT_EXPERIMENT = "semfed"
MLFLOW_PARAM_CHARS = 6000  # MLflow's limit on a parameter value; the whole config is also logged as config.json


class Sink(Protocol):
    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Record `values` (already finite floats, names from metric_name) at `step` (the round)."""

    def close(self) -> None:
        """Flush and release the sink."""


def metric_name(column: str) -> str:
    """The name a metrics-table column gets in a sink: MLflow allows letters, digits and `_-. :/`, so
    'rsum[frcnn-r50+minilm]' becomes 'rsum/frcnn-r50_minilm' (TensorBoard uses the same names)."""
    return re.sub(r"[^\w.\- :/]", "_", column.replace("[", "/").replace("]", ""))


def finite_values(row: Mapping[str, Any]) -> dict[str, float]:
    """The row's numeric, finite cells by sink name (NaN marks an unscored round: it is left out)."""
    out = {}
    for column, value in row.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        out[metric_name(column)] = float(value)
    return out


class TensorBoardSink:
    """Scalars in <run dir>/tensorboard, one tag per metrics column, step = round; stored as float64
    (new-style scalar summaries), so byte counts beyond 2**24 stay exact."""

    def __init__(self, run_dir: Path, run_name: str, config: Mapping[str, Any], work_dir: Path, resume: bool):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step, new_style=True, double_precision=True)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def mlflow_location(work_dir: Path, run_name: str) -> tuple[str, str, str]:
    """(tracking URI, experiment, run name): a sweep's points ('<sweep>/<point>') share the sweep's experiment."""
    experiment, _, name = run_name.rpartition("/")
    return f"sqlite:///{work_dir / MLFLOW_DB}", experiment or MLFLOW_DEFAULT_EXPERIMENT, name


class MlflowSink:
    """One MLflow run per semfed run, its config as parameters (and as the artifact config.json)."""

    def __init__(self, run_dir: Path, run_name: str, config: Mapping[str, Any], work_dir: Path, resume: bool):
        from mlflow.tracking import MlflowClient

        uri, experiment, name = mlflow_location(work_dir, run_name or run_dir.name)
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=(work_dir / MLFLOW_ARTIFACTS).as_uri())
        earlier = self.client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{name}'")
        if earlier and resume:  # a resumed run goes on in its MLflow run
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        for key, value in config.items():
            self.client.log_param(self.run_id, key, str(value)[:MLFLOW_PARAM_CHARS])
        if (run_dir / "config.json").exists():
            self.client.log_artifact(self.run_id, str(run_dir / "config.json"))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        timestamp = 0  # rows are keyed by step; wall time is the table's own 'seconds' column
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, timestamp, step) for k, v in values.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


SINKS: dict[str, Callable[..., Sink]] = {"tensorboard": TensorBoardSink, "mlflow": MlflowSink}


def parse_tracking(text: str) -> tuple[str, ...]:
    """'tensorboard,mlflow' -> ('tensorboard', 'mlflow'); '' or 'none' -> (). ValueError naming an unknown sink."""
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise ValueError(f"unknown sink(s) {unknown}; expected a comma-separated list of {sorted(SINKS)} or 'none'")
    return names


class Tracking:
    """The sinks of one run: `log(row)` mirrors one metrics-table row (its 'round' is the step)."""

    def __init__(self, names: tuple[str, ...], run_dir: Path, run_name: str, config: Mapping[str, Any],
                 work_dir: Path, resume: bool = False):
        self.sinks = [SINKS[name](run_dir, run_name, config, work_dir, resume) for name in names]

    def log(self, row: Mapping[str, Any], step_column: str = "round") -> None:
        values = finite_values({k: v for k, v in row.items() if k != step_column})
        for sink in self.sinks:
            sink.log(int(row[step_column]), values)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
