"""A cross-device federation: 200 clients described by one count-prefixed profile, 5 sampled per round, on one
SuperNode each or played by a pool of SuperNodes (supernode-pool)."""

import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from experiments.score_checkpoint import score
from semfed.config_values import format_client_list, parse_client_list
from semfed.retrieval import report
from semfed.sampling import sample_partitions
from semfed.config_values import ConfigError
from semfed.update_validation import Judging
from strategies.keyed_fedavg import KeyedFedAvg
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (an autouse fixture)
from tests.flower_runs import in_process, tiny_config
from tests.test_strategy_judging import GLOBAL, SHARDS, content, honest_state

SCALE = ("run-name='scale' num-server-rounds=2 scenes-train=400 scenes-val=4 scenes-test=200 partitioning='iid' "
         "clients='120x oracle-image+oracle-text; 50x oracle-image; 30x oracle-text' fraction-train=0.025 batch-size=4")


def test_200_clients_with_5_sampled_per_round_train_and_are_each_scored(tmp_path):
    run = in_process(tmp_path / "one-each", SCALE)
    table = pd.read_csv(run / report.METRICS, float_precision="round_trip")  # exact floats, as written
    assert table["round"].tolist() == [0, 1, 2] and (table.loc[1:, "clients_replied"] == 5).all()
    assert (table.loc[1:, ["clients_failed", "updates_rejected", "skipped"]] == 0).all().all()
    assert table.loc[2, "rsum"] != table.loc[0, "rsum"]
    users = [f"user_rsum[{k}]" for k in range(200)]
    assert set(users) <= set(table.columns) and table.loc[2, users].notna().all()  # one test image each at least
    sampled = [sample_partitions(0, r, range(200), 0.025) for r in (1, 2)]
    assert all(len(s) == 5 for s in sampled) and sampled[0] != sampled[1]
    # the final checkpoint, scored again outside the run, gives the run's own last row
    per_pair, rescored, _, server_round = score(run)
    assert server_round == 2 and [rescored[k] for k in range(200)] == table.loc[2, users].tolist()
    assert per_pair["oracle-image+oracle-text"]["rsum"] == table.loc[2, "rsum"]
    # the same 200 users played by a pool of 5 SuperNodes: the same numbers, exactly
    pooled = pd.read_csv(in_process(tmp_path / "pooled", SCALE + " supernode-pool=5") / report.METRICS,
                         float_precision="round_trip")
    pd.testing.assert_frame_equal(pooled.drop(columns="seconds"), table.drop(columns="seconds"), check_exact=True)


def test_a_client_list_is_written_in_runs_and_read_back():
    ids = (8, 0, 1, 2, 5, 7, 9)
    assert format_client_list(ids) == "0-2,5,7-9"
    assert parse_client_list("clients", format_client_list(ids), 10) == (0, 1, 2, 5, 7, 8, 9)
    assert format_client_list(range(10_000)) == "0-9999" and format_client_list([]) == ""


POOL = {0: 5000, 1: 5003, 2: 5006}  # pool slot -> Flower node id


def pooled_strategy() -> KeyedFedAvg:
    return KeyedFedAvg(nodes=POOL, pooled_users=10, fraction_train=0.3, min_train_nodes=1,
                       judging=Judging(SHARDS), fraction_evaluate=0.0)


def test_a_pool_of_three_supernodes_plays_each_rounds_three_sampled_users():
    strategy = pooled_strategy()
    arrays = ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})
    for server_round in (1, 2):
        sent = list(strategy.configure_train(server_round, arrays, ConfigRecord({}), Grid(POOL.values())))
        sampled = sample_partitions(0, server_round, range(10), 0.3)
        played = {m.metadata.dst_node_id: m.content["config"]["partition-id"] for m in sent}
        assert played == dict(zip(POOL.values(), sampled))  # the sampled users, in order, on the pool's nodes
        replies = [reply_from(node, content(honest_state(pid), {"num-examples": SHARDS[pid], "partition-id": pid}))
                   for node, pid in played.items()]
        strategy.aggregate_train(server_round, replies)
        assert sorted(strategy.client_metrics[server_round]) == sampled
    assert sample_partitions(0, 1, range(10), 0.3) != sample_partitions(0, 2, range(10), 0.3)


def test_a_pool_node_claiming_a_user_it_was_not_given_is_rejected():
    strategy = pooled_strategy()
    sent = list(strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}),
                                         Grid([5000, 5003])))  # one pool node is gone: its user is a failed client
    sampled = sample_partitions(0, 1, range(10), 0.3)
    assert [m.content["config"]["partition-id"] for m in sent] == sampled[:2]
    honest, lying = (reply_from(5000, content(honest_state(sampled[0]), {"num-examples": 20, "partition-id": sampled[0]})),
                     reply_from(5003, content(honest_state(sampled[1]), {"num-examples": 20, "partition-id": sampled[2]})))
    strategy.aggregate_train(1, [honest, lying])
    assert sorted(strategy.client_metrics[1]) == [sampled[0]] and strategy.round_stats[1]["updates_rejected"] == 1


def test_the_pool_is_checked_against_what_a_round_samples(tmp_path):
    with pytest.raises(ConfigError, match="supernode-pool: 2 SuperNodes cannot play the 3 users sampled per round"):
        tiny_config(tmp_path, supernode_pool=2)  # the tiny config's 3 users all train
    with pytest.raises(ConfigError, match="supernode-pool: must be 0"):
        tiny_config(tmp_path, supernode_pool=4)
    with pytest.raises(ConfigError, match="need one SuperNode per user"):
        tiny_config(tmp_path, supernode_pool=3, personal_finetune_epochs=1)
    assert tiny_config(tmp_path, supernode_pool=2, fraction_train=0.5).supernodes == 2
