"""Users joining and leaving (seed 000 VI-E): who is online, drawn from the seed, on hand cases; at the
strategy, a user that joins is asked and its update aggregated from its first round online."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from semfed.aggregation import keyed_aggregate
from semfed.churn import Churn, parse_churn
from semfed.config_values import ConfigError
from semfed.update_validation import Judging
from strategies.keyed_fedavg import KeyedFedAvg
from tests.flower_messages import Grid, task_identity  # noqa: F401 (an autouse fixture)
from tests.flower_runs import tiny_config
from tests.test_strategy_judging import GLOBAL, NODES, SHARDS, client_reply, honest_inputs


def test_who_is_online_on_hand_cases():
    assert Churn(leave=0, join=0, start=1, seed=0).online(5, 4) == {0, 1, 2, 3}
    gone = Churn(leave=1, join=0, start=1, seed=0)
    assert gone.online(1, 4) == {0, 1, 2, 3} and gone.online(2, 4) == frozenset()
    late = Churn(leave=0, join=1, start=0, seed=0)
    assert late.online(1, 4) == frozenset() and late.online(2, 4) == {0, 1, 2, 3}


def test_churn_is_drawn_from_the_seed_and_settles_at_join_over_join_plus_leave():
    churn = Churn(leave=0.2, join=0.6, start=1, seed=3)
    assert churn.online(7, 50) == Churn(leave=0.2, join=0.6, start=1, seed=3).online(7, 50)
    assert churn.online(7, 50) != Churn(leave=0.2, join=0.6, start=1, seed=4).online(7, 50)
    share = np.mean([len(churn.online(r, 200)) / 200 for r in range(20, 220)])
    assert abs(share - 0.6 / 0.8) < 0.03  # the stationary share online


def test_churn_specs():
    assert parse_churn("", 0) is None
    assert parse_churn("leave:0.1,join:0.3", 2) == Churn(0.1, 0.3, 1.0, 2)
    assert parse_churn("join:0.3, leave:0.1, start:0.5", 2) == Churn(0.1, 0.3, 0.5, 2)
    for bad in ("leave:0.1", "leave:2,join:0.1", "leave:0.1,join:0.1,leave:0.2", "stay:0.1,join:0.1"):
        with pytest.raises(ValueError, match="churn"):
            parse_churn(bad, 0)


def test_a_user_that_joins_is_aggregated_from_its_first_round_online():
    strategy = KeyedFedAvg(nodes=NODES, judging=Judging(SHARDS), churn=Churn(leave=0, join=1, start=0.0, seed=0))
    arrays = ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})
    assert strategy.configure_train(1, arrays, ConfigRecord({}), Grid(NODES.values())) == []  # nobody online
    assert (strategy.round_stats[1]["users_online"], strategy.round_stats[1]["users_left"]) == (0, 0)
    sent = strategy.configure_train(2, arrays, ConfigRecord({}), Grid(NODES.values()))
    assert len(sent) == 10 and strategy.round_stats[2]["users_joined"] == 10
    result, _ = strategy.aggregate_train(2, [client_reply(pid, None) for pid in NODES])
    expected = keyed_aggregate(honest_inputs(NODES), GLOBAL)
    assert all(np.array_equal(result[k].numpy(), expected[k]) for k in GLOBAL)


def test_churn_key_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="churn: bad item"):
        tiny_config(tmp_path, churn="leave:0.1,join:x")._check_network()
    with pytest.raises(ConfigError, match="churn: the centralised bound"):
        tiny_config(tmp_path, churn="leave:0.1,join:0.1", method="centralised")._check_network()
