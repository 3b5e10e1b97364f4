"""Sweep files, resumable sweep execution and the collected table (no Flower: run_point is faked)."""

import json

import pandas as pd
import pytest

from experiments.run_state import is_finished
from experiments.sweep import record_time, run_sweep
from experiments.sweep_grid import load_sweep, run_config_text
from experiments.sweep_results import (collect, final_users, plot_curves, plot_final, plot_final_users, summary,
                                      time_summary)
from semfed.config import default_run_config, load_config
from tests.checks import assert_plot

SWEEP = """
name = "demo"
compare = "method"
[base]
num-server-rounds = 2
[grid]
seed = [0, 1]
[grid.method.plain]
method = "proposed"
[grid.method.uniform]
method = "single-modal"
label-handling = "none"
[grid.labels.noisy]
label-noise = "mild:0.2:0-4;severe:0.5:5-9"
"""


def write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_grid_expands_every_combination_in_file_order(tmp_path):
    sweep = load_sweep(write(tmp_path, SWEEP))
    assert sweep.axes == ("seed", "method", "labels") and sweep.compare == "method"
    assert [p.name for p in sweep.points] == ["seed=0_method=plain_labels=noisy", "seed=0_method=uniform_labels=noisy",
                                              "seed=1_method=plain_labels=noisy", "seed=1_method=uniform_labels=noisy"]
    assert sweep.points[3].overrides == {"num-server-rounds": 2, "seed": 1, "method": "single-modal",
                                         "label-handling": "none", "label-noise": "mild:0.2:0-4;severe:0.5:5-9"}
    renamed = load_sweep(write(tmp_path, SWEEP), {"learning-rate": 0.01, "seed": 5}, "other")
    assert renamed.name == "other" and renamed.points[0].overrides["learning-rate"] == 0.01
    assert renamed.points[0].overrides["seed"] == 0  # the grid's own axes win over added base keys
    assert run_config_text({"seed": 1, "label-noise": "", "lr": 0.5, "x": True}) == "seed=1 label-noise='' lr=0.5 x=true"


@pytest.mark.parametrize("text, message", [
    ("extra = 1\n" + SWEEP, "unknown top-level key(s) ['extra']"),
    ("reach = 'high'\n" + SWEEP, "'reach' must be a positive RSUM, got 'high'"),
    (SWEEP.replace('method = "single-modal"', 'method = "nope"'), "point seed=0_method=uniform_labels=noisy: method: 'nope' is not one of"),
    (SWEEP.replace("seed = [0, 1]", "seed = []"), "grid axis 'seed' must be a non-empty list"),
    (SWEEP.replace("[base]", "[base]\nwork-dir = '/tmp'"), "'work-dir' is set by the sweep runner"),
    (SWEEP.replace('compare = "method"', 'compare = "lr"'), "compare = 'lr' is not a grid axis"),
    ("name = 'a b'", "'name' must be letters"),
])
def test_bad_sweep_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError) as error:
        load_sweep(write(tmp_path, text))
    assert message in str(error.value)


def fake_run(sweep, point, work_dir, rsum_at_end, rounds=None):
    """Write the run directory a finished Flower run of `point` leaves (or one cut short at `rounds`)."""
    run = work_dir / "runs" / sweep.name / point.name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**default_run_config(), **point.overrides}))
    last = point.overrides["num-server-rounds"] if rounds is None else rounds
    rows = [{"round": r, "rsum": rsum_at_end * r / 2, "group_rsum[all]": 0.0, "group_rsum[mild]": rsum_at_end + r,
             "group_rsum[severe]": 1.0, "pruned[mild]": 3 * r, "pruned[all]": 3 * r, "train_loss": 1.0,
             **{f"user_rsum[{k}]": rsum_at_end * r + k for k in range(10)}} for r in range(last + 1)]
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    if rounds is None:
        pd.DataFrame({"group": ["g"], "rsum": [rsum_at_end]}).to_csv(run / "groups.csv", index=False)


def test_a_killed_sweep_re_run_finishes_only_the_missing_points(tmp_path):
    sweep = load_sweep(write(tmp_path, SWEEP))
    ran = []

    def killed_at_third(sweep, point, work_dir, log, on_line):
        ran.append(point.name)
        if len(ran) == 3:  # killed half-way through the third point
            fake_run(sweep, point, work_dir, 10.0, rounds=1)
            raise KeyboardInterrupt
        fake_run(sweep, point, work_dir, 10.0)
        on_line("INFO semfed.server: round 2/2  RSUM 10.0 (best 10.0)\n")
        return True

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path, killed_at_third)
    assert ran == [p.name for p in sweep.points[:3]]
    ran.clear()

    def finishing(sweep, point, work_dir, log, on_line):
        ran.append(point.name)
        fake_run(sweep, point, work_dir, 20.0)
        return True

    assert run_sweep(sweep, tmp_path, finishing) == []
    assert ran == [p.name for p in sweep.points[2:]]
    runs = tmp_path / "runs" / "demo"
    assert (runs / f"{sweep.points[2].name}.interrupted-1" / "metrics.csv").exists()  # kept, not deleted
    assert all(is_finished(runs / p.name, p) for p in sweep.points)
    changed = load_sweep(write(tmp_path, SWEEP.replace("num-server-rounds = 2", "num-server-rounds = 3")))
    assert not is_finished(runs / changed.points[0].name, changed.points[0])  # a changed config is not finished


def test_a_failed_point_is_reported_and_the_sweep_goes_on(tmp_path):
    sweep = load_sweep(write(tmp_path, SWEEP))
    failed = run_sweep(sweep, tmp_path, lambda s, p, w, log, on_line: p.name.startswith("seed=1")
                       and fake_run(s, p, w, 1.0) is None)
    assert failed == [p.name for p in sweep.points[:2]]
    times = pd.read_csv(tmp_path / "sweeps" / "demo" / "times.csv")  # every point run, failed ones too
    assert times["point"].tolist() == [p.name for p in sweep.points] and times["finished"].tolist() == [False] * 2 + [True] * 2


def test_collected_table_has_a_row_per_point_round_and_group_and_the_summary_averages_seeds(tmp_path):
    sweep = load_sweep(write(tmp_path, SWEEP))
    for point, rsum in zip(sweep.points, [10.0, 30.0, 20.0, 60.0]):
        fake_run(sweep, point, tmp_path, rsum)
    table = collect(sweep, tmp_path / "runs" / "demo", is_finished)
    assert len(table) == 4 * 3 * 3  # points x rounds 0..2 x groups all, mild, severe
    assert list(table.columns[:7]) == ["sweep", "point", "seed", "method", "labels", "round", "group"]
    mild = table[(table["point"] == sweep.points[0].name) & (table["group"] == "mild")]
    assert mild["rsum"].tolist() == [10.0, 11.0, 12.0] and mild["pruned"].tolist() == [0, 3, 6]
    text = summary(table, sweep)
    # plain: final 'all' RSUM 10 and 20 over seeds 0, 1 -> mean 15, sample std 7.07
    assert "| plain | 15.0 ± 7.1 (2) | 17.0 ± 7.1 (2) | 1.0 ± 0.0 (2) |" in text
    assert "| uniform | 45.0 ± 21.2 (2) |" in text
    assert "| plain noisy | 6.00 ± 0.00 |" in text  # pruned labels (all clients) at the last round
    # rsum over rounds 0..2 is 0, end/2, end: plain ends at 10 / 20, uniform at 30 / 60 (seeds 0 / 1)
    assert "| plain noisy | 15.0 ± 7.1 | 2.0 ± 0.0 |" in text  # no reach set: best RSUM and its round only
    reaching = summary(table, load_sweep(write(tmp_path, "reach = 25\n" + SWEEP)))
    assert "| plain noisy | 15.0 ± 7.1 | 2.0 ± 0.0 | never (0 of 2) |" in reaching
    assert "| uniform noisy | 45.0 ± 21.2 | 2.0 ± 0.0 | 1.5 ± 0.7 (2 of 2) |" in reaching  # rounds 2 (30) and 1 (30)
    users = final_users(sweep, tmp_path / "runs" / "demo")
    assert len(users) == 4 * 10 and set(users["group"]) == {"mild", "severe"}
    first = users[users["point"] == sweep.points[0].name].set_index("user")
    assert first.loc[3, "rsum"] == 10.0 * 2 + 3 and first.loc[3, "group"] == "mild" and first.loc[7, "group"] == "severe"
    assert first.loc[0, "profile"] == load_config().client_profiles[0].group  # from the point's config
    plot_final_users(users, sweep, tmp_path / "users.png")
    assert_plot(tmp_path / "users.png")
    plot_curves(table, sweep, tmp_path / "curves.png")
    plot_final(table, sweep, tmp_path / "bars.png")
    assert_plot(tmp_path / "curves.png")
    assert_plot(tmp_path / "bars.png")


def test_the_times_table_keeps_every_point_run_and_the_summary_counts_each_points_last(tmp_path):
    path = tmp_path / "times.csv"
    record_time(path, "a", "flwr", 10.0, 3600.0, False)  # failed, then run again
    record_time(path, "a", "flwr", 20.0, 7200.0, True)
    record_time(path, "b", "in-process", 40.0, 1800.0, True)
    times = pd.read_csv(path)
    assert times["cpu_seconds"].tolist() == [3600.0, 7200.0, 1800.0] and times["finished"].tolist() == [False, True, True]
    assert time_summary(times) == ("\nTime: 2 point runs (flwr, in-process), 2.50 CPU hours, "
                                   "0.02 hours wall.\n")
