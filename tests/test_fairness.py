"""Fairness across users (seed 000 VI-B): q-fair weights on hand cases, through the strategy, and the
worst user's RSUM and the users' spread in a metrics row."""

import math

import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from semfed.aggregation import fair_weights
from semfed.config_values import ConfigError
from semfed.retrieval.evaluation import recall_columns
from semfed.update_validation import Judging
from strategies.keyed_fedavg import KeyedFedAvg
from tests.flower_messages import Grid, task_identity  # noqa: F401 (an autouse fixture)
from tests.flower_runs import tiny_config
from tests.test_strategy_judging import GLOBAL, NODES, SHARDS, client_reply


def test_q_fair_weights_grow_with_the_loss_to_the_power_q():
    assert fair_weights([10, 10, 20], [1.0, 2.0, 4.0], q=0) == [10, 10, 20]
    assert fair_weights([10, 10, 20], [1.0, 2.0, 4.0], q=1) == [10, 20, 80]
    assert fair_weights([10, 10, 20], [1.0, 2.0, 4.0], q=2) == [10, 40, 320]
    assert fair_weights([10, 10, 20], [1.0, 1.0, 100.0], q=1) == [10, 10, 200]  # 100 capped at 10 x median 1
    assert fair_weights([10, 10], [0.0, 0.0], q=1) == [10, 10]  # no loss anywhere: the weights as they were
    assert fair_weights([10, 10], [-3.0, 1.0], q=1) == [0.0, 10]  # a negative claim counts as no loss


def test_the_strategy_weights_each_accepted_update_by_its_loss():
    strategy = KeyedFedAvg(nodes=NODES, judging=Judging(SHARDS), fairness_q=1.0)
    strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}),
                             Grid(NODES.values()))
    strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES])  # client pid claims loss 0.5 + pid
    median = (4.5 + 5.5) / 2 + 0.5  # of 0.5 .. 9.5
    assert median * 10 > 9.5  # no claim reaches the cap
    weights = {pid: m["num-examples"] for pid, m in strategy.client_metrics[1].items()}
    assert weights == pytest.approx({pid: SHARDS[pid] * (0.5 + pid) for pid in NODES})


def test_the_worst_user_and_the_spread_are_metrics_columns(tmp_path):
    cfg = tiny_config(tmp_path)
    row = recall_columns({"a+b": {"rsum": 50.0, "i2t_r1": 1, "i2t_r5": 2, "i2t_r10": 3, "t2i_r1": 4, "t2i_r5": 5,
                                  "t2i_r10": 6}}, {0: 10.0, 1: 30.0, 2: math.nan}, cfg)
    assert row["user_rsum_worst"] == 10.0 and row["user_rsum_spread"] == 10.0  # a user with no test images left out
    with pytest.raises(ConfigError, match="fairness-q"):
        tiny_config(tmp_path, fairness_q=-1.0)._check_judging()
