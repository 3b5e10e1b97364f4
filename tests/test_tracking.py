"""Result sinks: what goes to TensorBoard and MLflow is exactly the metrics table's numbers."""

import math

import pandas as pd
import pytest

from semfed.tracking import Tracking, finite_values, metric_name, mlflow_location, parse_tracking

ROWS = [{"round": 0, "rsum": 215.00000320374966, "rsum[frcnn-r50+minilm]": 3.5, "train_loss": float("nan"), "bytes_sent": 0},
        {"round": 1, "rsum": float("nan"), "rsum[frcnn-r50+minilm]": float("nan"), "train_loss": 4.25,
         "bytes_sent": 123456789},
        {"round": 2, "rsum": 41.125, "rsum[frcnn-r50+minilm]": 60.0625, "train_loss": 3.875, "bytes_sent": 246913578}]


def test_sink_names_keep_the_column_readable_and_drop_only_what_mlflow_refuses():
    assert metric_name("rsum[frcnn-r50+minilm]") == "rsum/frcnn-r50_minilm"
    assert metric_name("group_rsum[severe]") == "group_rsum/severe"
    assert metric_name("i2t_r1") == "i2t_r1"


def test_unscored_cells_and_flags_are_left_out():
    values = finite_values({"rsum": float("nan"), "skipped": True, "seconds": 1.5, "name": "x", "bytes": 7})
    assert values == {"seconds": 1.5, "bytes": 7.0}


def test_tracking_list_parses_and_names_an_unknown_sink():
    assert parse_tracking("") == () and parse_tracking("none") == ()
    assert parse_tracking("tensorboard, mlflow") == ("tensorboard", "mlflow")
    with pytest.raises(ValueError, match="'wandb'"):
        parse_tracking("tensorboard,wandb")


def test_a_sweep_point_logs_into_its_sweeps_experiment(tmp_path):
    assert mlflow_location(tmp_path, "case-study/seed=0_method=proposed") == (
        f"sqlite:///{tmp_path}/mlflow.db", "case-study", "seed=0_method=proposed")
    assert mlflow_location(tmp_path, "run1")[1:] == ("semfed", "run1")


def read_tensorboard(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, make_ndarray(e.tensor_proto).item()) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def read_mlflow(work_dir, run_name):
    from mlflow.tracking import MlflowClient

    uri, experiment, name = mlflow_location(work_dir, run_name)
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                             filter_string=f"attributes.run_name = '{name}'")
    assert len(run) == 1
    run = run[0]
    return run, {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                 for key in run.data.metrics}


def expected_series(table: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Per column, (round, value) for every finite cell of the table as written to metrics.csv."""
    out = {}
    for column in table.columns.drop("round"):
        cells = [(int(r), float(v)) for r, v in zip(table["round"], table[column]) if math.isfinite(v)]
        if cells:
            out[metric_name(column)] = cells
    return out


def test_tensorboard_and_mlflow_hold_exactly_the_csv_values(tmp_path):
    run_dir = tmp_path / "runs" / "sweep-a" / "point-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"seed": 3}\n')
    tracking = Tracking(("tensorboard", "mlflow"), run_dir, "sweep-a/point-1", {"seed": 3, "clients": "minilm:2"},
                        tmp_path)
    for row in ROWS:
        tracking.log(row)
    tracking.close()
    pd.DataFrame(ROWS).to_csv(run_dir / "metrics.csv", index=False)
    expected = expected_series(pd.read_csv(run_dir / "metrics.csv", float_precision="round_trip"))
    assert expected["rsum"] == [(0, 215.00000320374966), (2, 41.125)]  # the unscored round 1 is not a zero
    assert read_tensorboard(run_dir / "tensorboard") == expected
    run, series = read_mlflow(tmp_path, "sweep-a/point-1")
    assert series == expected and series["bytes_sent"][-1] == (2, 246913578.0)
    assert run.data.params == {"seed": "3", "clients": "minilm:2"} and run.info.status == "FINISHED"


def test_a_resumed_run_goes_on_in_its_mlflow_run(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    first = Tracking(("mlflow",), run_dir, "r", {"seed": 0}, tmp_path)
    first.log(ROWS[0])
    first.close()
    again = Tracking(("mlflow",), run_dir, "r", {"seed": 0}, tmp_path, resume=True)
    again.log(ROWS[2])
    again.close()
    _, series = read_mlflow(tmp_path, "r")  # asserts there is exactly one run named 'r'
    assert series["rsum"] == [(0, 215.00000320374966), (2, 41.125)]


def test_mlflow_artifacts_stay_in_the_work_dir_not_the_working_directory(tmp_path, monkeypatch):
    """MLflow's default artifact root is ./mlruns of the process's working directory (the repository for a
    `flwr run`); the run's config.json must land under work-dir instead."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    work = tmp_path / "work"
    run_dir = work / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"seed": 3}\n')
    Tracking(("mlflow",), run_dir, "r", {"seed": 3}, work).close()
    assert not (tmp_path / "elsewhere" / "mlruns").exists()
    assert [p.name for p in (work / "mlflow-artifacts").rglob("config.json")] == ["config.json"]
