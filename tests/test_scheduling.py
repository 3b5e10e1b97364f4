"""Semantic-aware scheduling (seed 003 V): the second-price auction's winners and price on hand-made
bids, the semantic bids, and an auction-scheduled strategy over two rounds with real Flower Messages."""

import math

import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from semfed.config_values import ConfigError
from semfed.scheduling import SCHEDULERS, second_price, semantic_bids
from semfed.update_validation import Judging
from strategies.keyed_fedavg import KeyedFedAvg
from tests.flower_messages import Grid, task_identity  # noqa: F401 (an autouse fixture)
from tests.flower_runs import tiny_config
from tests.test_strategy_judging import GLOBAL, NODES, SHARDS, client_reply


def test_the_highest_bids_win_and_pay_the_highest_losing_bid():
    auction = second_price({0: 5.0, 1: 9.0, 2: 7.0, 3: 1.0}, slots=2)
    assert auction.winners == [1, 2] and auction.price == 5.0 and auction.value == 16.0
    assert second_price({0: 5.0, 1: 5.0, 2: 5.0}, slots=2).winners == [0, 1]  # ties: the lower partition id
    everyone = second_price({0: 5.0, 1: 9.0}, slots=3)
    assert everyone.winners == [0, 1] and everyone.price == 0.0


def test_semantic_bids_are_loss_times_examples_per_joule_and_the_unheard_bid_first():
    bids = semantic_bids({0: 2.0, 1: 4.0, 2: 1000.0}, {0: 10, 1: 10, 2: 10, 3: 10})
    assert bids[0] == 20.0 and bids[1] == 40.0
    assert bids[2] == 10 * 4.0 * 10  # capped at 10 x the median report (4.0)
    assert bids[3] == math.inf  # never heard from: trains before the bids decide
    assert semantic_bids({0: 2.0}, {0: 10}, energy_j={0: 4.0}) == {0: 5.0}


def test_an_auction_scheduled_strategy_tries_everyone_then_follows_the_bids():
    strategy = KeyedFedAvg(nodes=NODES, judging=Judging(SHARDS), scheduler=SCHEDULERS["auction"], fraction_train=0.5)
    arrays = ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})
    sent = strategy.configure_train(1, arrays, ConfigRecord({}), Grid(NODES.values()))
    first = sorted(strategy.partition_of[m.metadata.dst_node_id] for m in sent)
    assert first == [0, 1, 2, 3, 4]  # all bid infinity: ties to the lower ids
    strategy.aggregate_train(1, [client_reply(pid, None) for pid in first])  # client pid reports loss 0.5 + pid
    sent = strategy.configure_train(2, arrays, ConfigRecord({}), Grid(NODES.values()))
    assert sorted(strategy.partition_of[m.metadata.dst_node_id] for m in sent) == [5, 6, 7, 8, 9]  # unheard first
    strategy.aggregate_train(2, [client_reply(pid, None) for pid in range(5, 10)])
    sent = strategy.configure_train(3, arrays, ConfigRecord({}), Grid(NODES.values()))
    # bids (0.5 + pid) x (20 + pid): the five highest are 5..9; the price is partition 4's bid
    assert sorted(strategy.partition_of[m.metadata.dst_node_id] for m in sent) == [5, 6, 7, 8, 9]
    assert strategy.round_stats[3]["auction_price"] == pytest.approx(4.5 * 24)
    assert math.isnan(strategy.round_stats[1]["auction_price"])  # the losers bid infinity too


def test_scheduling_key_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="scheduling: 'lottery'"):
        tiny_config(tmp_path, scheduling="lottery")._check_network()
