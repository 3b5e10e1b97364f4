"""End-to-end: the real `flwr run` simulation (managed local SuperLink, Ray backend: a Ray cluster of the
test's own) on a tiny config, and the same config in process."""

import json

import pandas as pd
import pytest
import torch

from tests.checks import assert_plot, assert_trained
from tests.flower_runs import TINY, run_flower, tiny_in_process
from tests.flower_runs import tiny_run as flwr_run
from tests.ray_head import actors_ran_on, ray_head
from tests.test_tracking import expected_series, read_mlflow, read_tensorboard


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """a: the real `flwr run`, filling work's own cache, its simulation attached to a Ray head of the test's
    own through RAY_ADDRESS (the managed SuperLink passes it on), its users personalising after the last
    round; b: the same config in this process without personalisation, reading a's features (and mirroring
    its metrics to TensorBoard and MLflow)."""
    work = tmp_path_factory.mktemp("work")
    with ray_head() as (address, temp_dir):
        result = flwr_run(work, "a", "personal-finetune-epochs=1", fresh_cache=True, env={"RAY_ADDRESS": address})
        superlink_log = work / "flwr-home" / "local-superlink" / "superlink.log"
        assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-3000:] +
                                        (superlink_log.read_text()[-3000:] if superlink_log.exists() else ""))
        on_the_head = actors_ran_on(temp_dir)
    tiny_in_process(work, "b", "tracking='tensorboard,mlflow'", fresh_cache=True)
    return work, result, on_the_head


@pytest.mark.slow
def test_simulation_writes_a_complete_run_directory(two_runs):
    work, result, _ = two_runs
    run = work / "runs" / "a"
    table = pd.read_csv(run / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    assert_trained(table)
    assert (table.loc[1:, "clients_replied"] == 3).all()
    assert (table.loc[1:, "bytes_sent"] > 0).all() and (table.loc[1:, "bytes_received"] > 0).all()
    assert table.loc[1:, "train_loss"].notna().all()
    groups = pd.read_csv(run / "groups.csv")
    assert sorted(groups["group"]) == ["frcnn-mnv3", "frcnn-mnv3+minilm", "minilm"]
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["round"] == 2 and any(k.startswith("stems.frcnn_mnv3") for k in checkpoint["adapter"])
    assert json.loads((run / "config.json").read_text())["num-server-rounds"] == 2
    assert_plot(run / "rsum.png")
    assert_plot(run / "users.png")
    assert "round 2/2" in (run / "run.log").read_text()
    assert "round 2/2" in result.stdout + result.stderr  # progress is streamed to the user
    assert "feature cache miss" in (run / "run.log").read_text()  # a ran the frozen encoders
    assert "feature cache miss" not in (work / "runs" / "b" / "run.log").read_text()  # b read a's features


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_through_flower_and_in_process(two_runs):
    """Also: a's personalisation changed neither its global arrays nor anything the server measured."""
    work, *_ = two_runs
    a, b = (pd.read_csv(work / "runs" / name / "metrics.csv").drop(columns="seconds") for name in ("a", "b"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.loc[2, "rsum"] != a.loc[0, "rsum"] or a.loc[2, "train_loss"] != a.loc[1, "train_loss"]
    adapters = [torch.load(work / "runs" / name / "checkpoint.pt", weights_only=True)["adapter"] for name in ("a", "b")]
    assert adapters[0].keys() == adapters[1].keys() and all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


@pytest.mark.slow
def test_a_pool_of_two_supernodes_playing_the_sampled_users_gives_the_one_node_per_user_numbers(two_runs):
    """Through `flwr run`: 2 SuperNodes play the 2 of 3 users sampled each round (supernode-pool)."""
    work, *_ = two_runs
    two_of_three = "fraction-train=0.67"
    result = run_flower(work, f"run-name='pool' num-server-rounds=2 {TINY} {two_of_three} supernode-pool=2", 2, 39191)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pooled = pd.read_csv(work / "runs" / "pool" / "metrics.csv")
    one_each = pd.read_csv(tiny_in_process(work, "one-each", two_of_three) / "metrics.csv")
    assert (pooled.loc[1:, "clients_replied"] == 2).all()
    pd.testing.assert_frame_equal(pooled.drop(columns="seconds"), one_each.drop(columns="seconds"), check_exact=True)


@pytest.mark.slow
def test_each_user_personalises_on_its_own_node_and_reports_both_rsums(two_runs):
    work, *_ = two_runs
    personal = pd.read_csv(work / "runs" / "a" / "personal.csv")
    table = pd.read_csv(work / "runs" / "a" / "metrics.csv")
    assert personal["partition-id"].tolist() == [0, 1, 2]  # the tiny config's three users
    # the global adapter scored on the user's node gives the server's own score of that user
    own = [table.loc[2, f"user_rsum[{pid}]"] for pid in personal["partition-id"]]
    assert personal["rsum_global"].tolist() == pytest.approx(own, abs=1e-6, nan_ok=True)
    assert (personal["rsum_personal"] != personal["rsum_global"]).any()  # a fine-tuned copy scores differently
    assert_plot(work / "runs" / "a" / "personal.png")


@pytest.mark.slow
def test_bad_config_value_fails_the_run_with_a_clear_message(tmp_path):
    result = flwr_run(tmp_path, "bad", "gnn-layers=0")
    assert result.returncode != 0
    assert "gnn-layers: must be an integer >= 1" in result.stdout + result.stderr


def test_federated_label_consensus_prunes_injected_noise_and_counts_its_bytes(tmp_path):
    run = tiny_in_process(tmp_path, "noisy", rounds=3, extra="label-noise='mild:0.25:0;severe:0.5:1-2' "
                          "label-handling='federated' label-warmup-rounds=1 label-prune-rounds=2 label-diagnostics=true")
    record = pd.read_csv(run / "label_noise.csv")
    assert record.groupby("partition-id")["group"].first().tolist() == ["mild", "severe", "severe"]
    assert (record["image"] != record["annotation_of"]).all()
    table = pd.read_csv(run / "metrics.csv")
    assert table.loc[1, "excluded[all]"] == 0 and table.loc[1, "pruned[all]"] == 0  # warm-up round
    # a verdict needs two scored rounds (rounds 2 and 3): round 3's comes from the ledger file round 2 left
    assert table.loc[2, "pruned[all]"] == 0 and table.loc[3, "pruned[all]"] > 0
    assert table.loc[3, "pruned[all]"] == table.loc[3, ["pruned[mild]", "pruned[severe]"]].sum()
    # better than chance: a random pick of labels would be noisy at the injected rate (corrupted / 48 training labels)
    assert table.loc[3, "precision[all]"] > len(record) / 48 and table.loc[3, "recall[all]"] > 0
    assert_trained(table)
    # the decoy histogram is a float64 [20] .npy payload: 128-byte header + 160 bytes of counts
    received, sent = table["bytes_received"].diff(), table["bytes_sent"].diff()
    assert received[2] == 3 * (128 + 160) and received[3] == 0  # statistics from round 2 on
    assert sent[2] == 0 and sent[3] == 3 * 160  # the pooled null (20 float64) goes back from round 3 on
    assert 0.3 < table.loc[2, "null_mean"] < 0.7 and table.loc[2, "null_std"] > 0  # the null of round 2: near chance


@pytest.mark.slow
def test_tracking_sinks_hold_the_metrics_csv_values(two_runs):
    work, *_ = two_runs
    # round_trip: pandas' default float parser can miss the last digit of what to_csv wrote
    expected = expected_series(pd.read_csv(work / "runs" / "b" / "metrics.csv", float_precision="round_trip"))
    assert set(expected) >= {"rsum", "train_loss", "bytes_received", "rsum/frcnn-mnv3_minilm"}
    assert read_tensorboard(work / "runs" / "b" / "tensorboard") == expected
    run, series = read_mlflow(work, "b")
    assert series == expected and run.data.params["num-server-rounds"] == "2"
    assert not (work / "runs" / "a" / "tensorboard").exists()  # no sink unless asked for


@pytest.mark.slow
def test_the_simulation_attaches_to_an_existing_ray_cluster_through_ray_address(two_runs):
    *_, on_the_head = two_runs
    assert on_the_head  # the ClientApp actors ran on the test's Ray head, not on a Ray of the simulation's own
