"""Failures, bad updates and resume without Flower running: update validation, the seeded choice
of failing clients, poisoned updates, rejection in the strategy, checkpoints, and config errors."""

import time

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from semfed import run_directory as rd
from semfed.config import ConfigError, SemfedConfig, default_run_config, load_config
from semfed.fault_injection import InjectedFailure, failing_clients, failure_count, inject_failure, poison_update
from semfed.retrieval import report
from semfed.retrieval.resume import check_same_run
from semfed.update_validation import update_problem
from server.resume import RoundOffset, resumable
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (an autouse fixture)

GLOBAL = {"a.w": np.zeros((2, 3), np.float32), "b.w": np.ones(4, np.float32)}


@pytest.mark.parametrize("update, weight, reason", [
    ({"a.w": np.full((2, 3), np.nan, np.float32)}, 5, "array 'a.w' holds NaN or Inf values"),
    ({"b.w": np.array([1, np.inf, 0, 0], np.float32)}, 5, "array 'b.w' holds NaN or Inf values"),
    ({"a.w": np.zeros((3, 2), np.float32)}, 5, "array 'a.w' has shape (3, 2), the global one (2, 3)"),
    ({"c.w": np.zeros(1, np.float32)}, 5, "unknown array key 'c.w'"),
    ({"a.w": np.zeros((2, 3), np.float64)}, 5, "array 'a.w' has dtype float64, the global one float32"),
    ({"a.w": np.zeros((2, 3), np.int8)}, 5, "array 'a.w' has dtype int8, the global one float32"),
    ({"b.w": np.ones(4, np.float32)}, float("nan"), "num-examples nan is not a finite number in [1, 2**53]"),
    ({"b.w": np.ones(4, np.float32)}, 0, "num-examples 0 is not a finite number in [1, 2**53]"),
    ({"b.w": np.ones(4, np.float32)}, 2.0 ** 53 + 2, "num-examples 9007199254740994.0 is not a finite number in [1, 2**53]"),
])
def test_a_bad_update_gets_its_reason(update, weight, reason):
    assert update_problem(update, GLOBAL, weight) == reason


def test_a_good_update_passes_and_a_role_limits_its_keys():
    good = {"a.w": np.ones((2, 3), np.float32), "b.w": np.zeros(4, np.float32)}
    assert update_problem(good, GLOBAL, 3) is None
    assert update_problem({"b.w": np.zeros(4, np.float32)}, GLOBAL, 2.0 ** 53) is None
    assert update_problem(good, GLOBAL, 3, may_change=lambda k: k == "b.w") == "array 'a.w' may not be changed by this client"


def test_failure_selection_is_exact_seeded_and_changes_with_the_round():
    assert [failure_count(n, f) for n, f in [(4, 0.3), (3, 0.3), (10, 0.3), (10, 0.25), (4, 0.0)]] == [1, 1, 3, 3, 0]
    rounds = [failing_clients(0, r, 10, 0.3) for r in range(1, 21)]
    assert all(len(s) == 3 and s <= set(range(10)) for s in rounds)
    assert rounds == [failing_clients(0, r, 10, 0.3) for r in range(1, 21)]  # reproducible
    assert len(set(rounds)) > 5 and rounds != [failing_clients(1, r, 10, 0.3) for r in range(1, 21)]
    assert failing_clients(0, 1, 4, 0.0) == frozenset()


def test_an_injected_failure_raises_naming_client_and_round_and_a_hang_outlasts_the_timeout(monkeypatch):
    with pytest.raises(InjectedFailure, match=r"injected failure \(raise\) of client 2 in round 5"):
        inject_failure("raise", 5, 2, round_timeout_s=1.0)
    monkeypatch.setattr("semfed.fault_injection.HANG_MARGIN_S", 0.1)
    start = time.monotonic()
    with pytest.raises(InjectedFailure, match=r"\(hang\)"):
        inject_failure("hang", 1, 0, round_timeout_s=0.2)
    assert time.monotonic() - start >= 0.3


def test_each_poison_kind_is_caught_by_validation():
    state = {"a.w": torch.zeros(2, 3), "b.w": torch.ones(4)}
    reference = {k: v.numpy() for k, v in state.items()}
    reasons = {kind: update_problem({k: v.numpy() for k, v in poison_update(state, kind).items()}, reference, 1)
               for kind in ("nan", "inf", "shape", "key", "dtype", "huge")}
    assert reasons == {"nan": "array 'a.w' holds NaN or Inf values", "inf": "array 'a.w' holds NaN or Inf values",
                       "shape": "array 'a.w' has shape (5,), the global one (2, 3)",
                       "key": "unknown array key 'poison.weight'",
                       "dtype": "array 'a.w' has dtype int8, the global one float32",
                       "huge": None}  # finite, right dtype: only the round's norm bound rejects it
    assert torch.equal(state["a.w"], torch.zeros(2, 3))  # the original is untouched


NODES = {0: 100, 1: 101, 2: 102}


def _reply(partition: int, value, examples: int = 2):
    arrays = {"a.w": np.full((2, 3), value, np.float32)}
    return reply_from(NODES[partition], RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                                                    "metrics": MetricRecord({"num-examples": examples,
                                                                             "partition-id": partition})}))


def _strategy(min_replies: int = 1) -> KeyedFedAvg:
    strategy = KeyedFedAvg(nodes=NODES, min_replies=min_replies)
    strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}),
                             Grid(NODES.values()))
    return strategy


def test_poisoned_updates_are_rejected_counted_and_logged_and_the_round_goes_on(caplog):
    strategy = _strategy()
    with caplog.at_level("WARNING", logger="semfed.strategy"):
        arrays, _ = strategy.aggregate_train(1, [_reply(0, 1.0), _reply(1, np.nan), _reply(2, 3.0)])
    assert arrays["a.w"].numpy().tolist() == [[2.0] * 3] * 2  # (1 + 3) / 2: the NaN update left out
    assert arrays["b.w"].numpy().tolist() == [1.0] * 4
    stats = strategy.round_stats[1]
    assert (stats["clients_replied"], stats["clients_failed"], stats["updates_rejected"], stats["skipped"]) == (3, 0, 1, 0)
    assert sorted(strategy.client_metrics[1]) == [0, 2]
    assert "rejected the update of node 101 (partition 1): array 'a.w' holds NaN or Inf values" in caplog.text


def test_missing_replies_count_as_failures_and_too_few_skip_the_round():
    strategy = _strategy(min_replies=2)
    assert strategy.aggregate_train(1, [_reply(0, 1.0)]) == (None, None)  # 2 of 3 never replied
    stats = strategy.round_stats[1]
    assert (stats["clients_replied"], stats["clients_failed"], stats["skipped"]) == (1, 2, 1)
    assert 1 not in strategy.client_metrics


def test_round_offset_numbers_rounds_from_the_checkpoint():
    strategy = resumable(KeyedFedAvg)(nodes=NODES)
    assert isinstance(strategy, RoundOffset) and type(strategy).__name__ == "KeyedFedAvg"
    strategy.round_offset = 4
    strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}),
                             Grid(NODES.values()))
    strategy.aggregate_train(1, [_reply(0, 1.0)])
    assert list(strategy.client_metrics) == [5]
    assert LabelConsensusFedAvg.STATE == ("round_stats", "client_metrics", "network_log", "stale_updates", "consensus",
                                          "consensus_history")


def test_evaluation_keeps_the_run_s_round_numbers_and_stop_after_round_stops_after_recording():
    from server.resume import StoppedAfterRound, offset_evaluate

    seen = []
    record = lambda server_round, arrays: seen.append(server_round) or MetricRecord({"round": server_round})
    fresh = offset_evaluate(record, 0)
    assert [fresh(r, None)["round"] for r in (0, 1)] == [0, 1]
    resumed = offset_evaluate(record, 2, stop_after=4)
    assert resumed(0, None) is None and resumed(1, None)["round"] == 3
    with pytest.raises(StoppedAfterRound, match="stopped after round 4"):
        resumed(2, None)
    assert seen == [0, 1, 3, 4]


def test_resume_refuses_a_checkpoint_of_another_experiment(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), run_name="r", resume=True)
    saved = load_config(work_dir=str(tmp_path), run_name="r", num_server_rounds=3).to_run_config()
    check_same_run(saved, cfg, "c.pt")  # resume and num-server-rounds may differ
    with pytest.raises(ConfigError, match="resume: c.pt was written with other values of learning-rate, seed"):
        check_same_run({**saved, "seed": 5, "learning-rate": 0.5}, cfg, "c.pt")


def test_a_resumed_run_may_reuse_its_directory_a_fresh_one_may_not(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), run_name="r")
    path = rd.create_run_dir(cfg)
    (path / report.METRICS).write_text("round\n0\n")
    with pytest.raises(FileExistsError, match="set resume=true to continue it"):
        rd.create_run_dir(cfg)
    assert rd.create_run_dir(cfg.replace(resume=True)) == path


@pytest.mark.parametrize("override, message", [
    ({"seed": -1}, "seed: must be >= 0"),
    ({"run-name": "a/../b"}, "run-name: 'a/../b' must be a relative folder name under runs/"),
    ({"run-name": ".."}, "run-name: '..' must be a relative folder name under runs/"),
    ({"min-replies": 0}, "min-replies: must be in 1..10"),
    ({"min-replies": 11}, "min-replies: must be in 1..10"),
    ({"round-timeout-s": 0}, "round-timeout-s: must be > 0"),
    ({"fail-fraction": 1.0}, "fail-fraction: must be in [0, 1)"),
    ({"fail-mode": "crash"}, "fail-mode: 'crash' is not one of ('raise', 'hang')"),
    ({"poison-clients": "12"}, "poison-clients: clients [12] are out of range 0..9"),
    ({"poison-clients": "a"}, "poison-clients: bad client list 'a'"),
    ({"poison-kind": "zero"}, "poison-kind: 'zero' is not a comma-separated list of"),
    ({"poison-kind": "nan,,zero"}, "poison-kind: 'nan,,zero' is not a comma-separated list of"),
    ({"aggregation": "average"}, "aggregation: 'average' is not one of ('mean', 'median', 'trimmed-mean', 'krum')"),
    ({"trim-fraction": 0.5}, "trim-fraction: must be in [0, 0.5), got 0.5"),
    ({"krum-byzantine": -1}, "krum-byzantine: must be >= 0, got -1"),
    ({"max-client-examples": float("inf")}, "max-client-examples: must be a finite number, got inf"),
    ({"update-norm-multiple": -1.0}, "update-norm-multiple: must be a finite number >= 0, got -1.0"),
    ({"update-norm-multiple": 1.0}, "update-norm-multiple: must be 0 (off) or > 1"),
    ({"resume": "true"}, "resume: expected bool, got 'true'"),
    ({"resume": 1}, "resume: expected bool, got 1"),
    ({"resume": True}, "resume: needs a run-name"),
    ({"resume": True, "run-name": "x", "task": "jscc"}, "resume: only task='retrieval' runs can resume"),
])
def test_bad_robustness_config_fails_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SemfedConfig.from_run_config({**default_run_config(), **override})


def test_a_list_of_poison_kinds_is_taken_in_turn_one_a_round():
    cfg = load_config(poison_kind="inflate, bytes,histogram")
    assert [cfg.poison_kind_in(r) for r in range(1, 8)] == ["inflate", "bytes", "histogram"] * 2 + ["inflate"]
    assert load_config(poison_kind="nan").poison_kind_in(5) == "nan"
