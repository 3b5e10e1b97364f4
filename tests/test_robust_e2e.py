"""End-to-end (real `flwr run`, tiny config): client failures and poisoned updates cost only those
updates, and a run stopped mid-way and resumed ends with the metrics of an uninterrupted one."""

import numpy as np
import pandas as pd
import pytest

from semfed import run_directory as rd
from semfed.fault_injection import failing_clients
from tests.flower_runs import TINY, run_flower

# 3 clients, fail-fraction 0.3: round(0.9) = 1 client fails each round; client 1 sends a wrongly shaped update
FAULTS = "fail-fraction=0.3 poison-clients='1' poison-kind='shape' resume=true"


def config(name: str, rounds: int, extra: str = "") -> str:
    return f"run-name='{name}' num-server-rounds={rounds} {TINY} {extra}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One work dir for the module: the data and feature cache are built once."""
    return tmp_path_factory.mktemp("robust")


@pytest.fixture(scope="module")
def faulty_run(work):
    """Three rounds with injected failures and a poisoned client, uninterrupted."""
    result = run_flower(work, config("full", 3, FAULTS), 3, 39611)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return pd.read_csv(work / "runs" / "full" / rd.METRICS)


@pytest.mark.slow
def test_failing_clients_and_a_poisoned_update_cost_only_their_updates(faulty_run):
    table = faulty_run
    assert table["round"].tolist() == [0, 1, 2, 3] and (table.loc[1:, "skipped"] == 0).all()
    assert (table.loc[1:, "clients_failed"] == 1).all() and (table.loc[1:, "clients_replied"] == 2).all()
    expected_rejections = [int(1 not in failing_clients(0, r, 3, 0.3)) for r in (1, 2, 3)]
    assert table.loc[1:, "updates_rejected"].tolist() == expected_rejections
    assert table["rsum"].notna().all() and table.loc[1:, "train_loss"].notna().all()


@pytest.mark.slow
def test_a_run_stopped_after_round_one_and_resumed_ends_with_the_uninterrupted_metrics(work, faulty_run):
    stopped = run_flower(work, config("resumed", 3, f"{FAULTS} stop-after-round=1"), 3, 39621)
    assert stopped.returncode != 0 and "stop-after-round: stopped after round 1" in stopped.stdout + stopped.stderr
    assert rd.load_checkpoint(work / "runs" / "resumed" / rd.CHECKPOINT)["round"] == 1
    result = run_flower(work, config("resumed", 3, FAULTS), 3, 39631)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"resuming {work / 'runs' / 'resumed'} after round 1 of 3" in result.stdout + result.stderr
    resumed = pd.read_csv(work / "runs" / "resumed" / rd.METRICS)
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), faulty_run.drop(columns="seconds"))


@pytest.mark.slow
def test_an_undeserialisable_update_is_rejected_and_the_global_model_stays_finite(work):
    """Client 0's first array carries bytes that are no .npy file: reading it raises inside the server's
    judgement, which must cost that reply only."""
    result = run_flower(work, config("bytes", 1, "poison-clients='0' poison-kind='bytes'"), 3, 39641)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = work / "runs" / "bytes"
    table = pd.read_csv(run / rd.METRICS)
    assert table.loc[1, ["clients_replied", "updates_rejected", "clients_failed", "skipped"]].tolist() == [3, 1, 0, 0]
    log_text = (run / rd.LOG).read_text()
    assert "rejected the update of node" in log_text and "(partition 0): unreadable reply (ValueError" in log_text
    adapter = rd.load_checkpoint(run / rd.CHECKPOINT)["adapter"]
    assert all(np.isfinite(v.float().cpu().numpy()).all() for v in adapter.values())
    assert np.isfinite(table["rsum"]).all()
