"""End-to-end (the Flower apps in this process, tiny config): client failures and poisoned updates cost only
those updates, and a run stopped mid-way (after an unscored round, with label ledgers that have pruned labels)
and resumed ends with exactly the metrics of an uninterrupted one."""

import numpy as np
import pandas as pd
import pytest

from semfed import run_directory as rd
from semfed.fault_injection import failing_clients
from semfed.retrieval import report
from semfed.retrieval.ledger_files import ledger_folder, ledger_rounds
from server.resume import StoppedAfterRound
from tests.flower_runs import TINY, in_process

# 3 clients, fail-fraction 0.3: round(0.9) = 1 client fails each round; client 1 sends a wrongly shaped update.
# RSUM every 3 rounds (rounds 1, 2 unscored); labels scored from round 1 on in each client's ledger, which
# prunes from round 2 on, on each label's mean confidence over the last two rounds.
FAULTS = ("fail-fraction=0.3 poison-clients='1' poison-kind='shape' resume=true eval-every=3 label-handling='local' "
          "label-noise='mild:0.3:0-2' label-warmup-rounds=0 label-prune-rounds=2")


def config(name: str, rounds: int, extra: str = "") -> str:
    return f"run-name='{name}' num-server-rounds={rounds} {TINY} {extra}"


def run_ledgers(run):
    return run.parent.parent / "ledgers" / run.name  # <work-dir>/ledgers/<run-name>


def scored_before(run, partition_id: int, server_round: int) -> int:
    """Rounds of confidences in client `partition_id`'s newest ledger file before `server_round` (0 without one)."""
    folder = ledger_folder(run_ledgers(run), partition_id)
    rounds = [r for r in ledger_rounds(folder) if r < server_round]
    return len(np.load(folder / f"round-{rounds[-1]}.npz")["history"]) if rounds else 0


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One work dir for the module: the data and feature cache are built once."""
    return tmp_path_factory.mktemp("robust")


@pytest.fixture(scope="module")
def faulty_run(work):
    """Three rounds with injected failures and a poisoned client, uninterrupted."""
    return pd.read_csv(in_process(work, config("full", 3, FAULTS)) / report.METRICS)


def test_failing_clients_and_a_poisoned_update_cost_only_their_updates(faulty_run):
    table = faulty_run
    assert table["round"].tolist() == [0, 1, 2, 3] and (table.loc[1:, "skipped"] == 0).all()
    assert (table.loc[1:, "clients_failed"] == 1).all() and (table.loc[1:, "clients_replied"] == 2).all()
    expected_rejections = [int(1 not in failing_clients(0, r, 3, 0.3)) for r in (1, 2, 3)]
    assert table.loc[1:, "updates_rejected"].tolist() == expected_rejections
    assert table["rsum"].notna().tolist() == [True, False, False, True] and table.loc[1:, "train_loss"].notna().all()
    assert table.loc[1, "pruned[all]"] == 0 and (table.loc[2:, "pruned[all]"] > 0).all()


def test_a_run_stopped_after_round_one_and_resumed_ends_with_the_uninterrupted_metrics(work, faulty_run):
    with pytest.raises(StoppedAfterRound, match="stop-after-round: stopped after round 1"):
        in_process(work, config("resumed", 3, f"{FAULTS} stop-after-round=1"))
    run = work / "runs" / "resumed"
    assert report.load_checkpoint(run)["round"] == 1
    # the ledger matters after the stop: round 2's verdicts average round 1's confidences, which a client
    # training round 2 recorded before it
    trains_round_2 = [p for p in range(3) if p not in failing_clients(0, 2, 3, 0.3)]
    assert max(scored_before(run, p, 2) for p in trains_round_2) == 1
    in_process(work, config("resumed", 3, FAULTS))
    assert f"resuming {run} after round 1 of 3" in (run / rd.LOG).read_text()
    resumed = pd.read_csv(run / report.METRICS)
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), faulty_run.drop(columns="seconds"), check_exact=True)
    assert all(len(ledger_rounds(ledger_folder(run_ledgers(run), p))) <= 2 for p in range(3))  # the round's and the one before

    (run / report.GROUPS).unlink()  # a resume of the finished run only writes its final tables again
    in_process(work, config("resumed", 3, FAULTS))
    assert pd.read_csv(run / report.GROUPS).equals(pd.read_csv(work / "runs" / "full" / report.GROUPS))
    pd.testing.assert_frame_equal(pd.read_csv(run / report.METRICS), resumed, check_exact=True)


def test_an_undeserialisable_update_is_rejected_and_the_global_model_stays_finite(work):
    """Client 0's first array carries bytes that are no .npy file: reading it raises inside the server's
    judgement, which must cost that reply only."""
    run = in_process(work, config("bytes", 1, "poison-clients='0' poison-kind='bytes'"))
    table = pd.read_csv(run / report.METRICS)
    assert table.loc[1, ["clients_replied", "updates_rejected", "clients_failed", "skipped"]].tolist() == [3, 1, 0, 0]
    log_text = (run / rd.LOG).read_text()
    assert "rejected the update of node" in log_text and "(partition 0): unreadable reply (ValueError" in log_text
    adapter = report.load_checkpoint(run)["adapter"]
    assert all(np.isfinite(v.float().cpu().numpy()).all() for v in adapter.values())
    assert np.isfinite(table["rsum"]).all()
