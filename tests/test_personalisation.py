"""Personalisation (personal-finetune-epochs): the EVALUATE round after the last one, and its untrusted replies."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, MessageType, MetricRecord, RecordDict

from semfed.config import ConfigError, load_config
from server.retrieval import strategy_class
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (an autouse fixture)

NODES = {0: 100, 1: 101, 2: 102, 3: 103}
GLOBAL = ArrayRecord({"core": Array(np.ones(2, np.float32))})


def personalising(cls=KeyedFedAvg):
    strategy = strategy_class(load_config(personal_finetune_epochs=1, label_handling="federated"
                                          if cls is LabelConsensusFedAvg else "none"))(nodes=NODES, fraction_evaluate=0.0)
    strategy.personal_round = 5
    return strategy


def answer(node: int, metrics: dict) -> object:
    return reply_from(node, RecordDict({"metrics": MetricRecord(metrics)}))


def test_the_users_are_asked_once_after_the_last_round_with_the_global_arrays():
    strategy = personalising(LabelConsensusFedAvg)
    assert isinstance(strategy, LabelConsensusFedAvg) and "personal" in strategy.STATE
    assert strategy.configure_evaluate(4, GLOBAL, ConfigRecord({}), Grid([100, 101, 102, 103])) == []
    messages = strategy.configure_evaluate(5, GLOBAL, ConfigRecord({"run-name": "r"}), Grid([100, 101, 103]))
    assert [m.metadata.dst_node_id for m in messages] == [100, 101, 103]  # node 102 is not connected
    assert all(m.metadata.message_type == MessageType.EVALUATE for m in messages)
    assert dict(messages[0].content["config"]) == {"run-name": "r", "server-round": 5}
    np.testing.assert_array_equal(messages[0].content["arrays"]["core"].numpy(), np.ones(2, np.float32))


def test_a_malformed_personalisation_reply_is_left_out_and_the_others_kept(caplog):
    strategy = personalising()
    good = {"partition-id": 0, "rsum-global": 100.0, "rsum-personal": 150.0}
    replies = [answer(100, good),
               answer(101, {**good, "partition-id": 2}),  # claims another user's partition
               answer(102, {**good, "partition-id": 2, "rsum-personal": 1e9}),  # not an RSUM
               reply_from(103, Error(code=0, reason="ClientApp raised")),
               answer(999, good),  # not a node of the federation
               answer(101, {"partition-id": 1, "rsum-global": float("nan"), "rsum-personal": float("nan")})]
    with caplog.at_level("WARNING", logger="semfed.strategy"):
        assert strategy.aggregate_evaluate(5, replies) is None
    assert strategy.personal == {0: (100.0, 150.0), 1: (pytest.approx(float("nan"), nan_ok=True),) * 2}
    for reason in ("claims partition-id 2, but the node is partition 1", "rsum-personal 1000000000.0 is not an RSUM",
                   "error reply (ClientApp raised)", "node 999 left out: not a node of this federation"):
        assert reason in caplog.text


def test_personalisation_needs_a_global_adapter():
    with pytest.raises(ConfigError, match="personal-finetune-epochs: method 'local-only' has no global adapter"):
        load_config(method="local-only", personal_finetune_epochs=1)
    with pytest.raises(ConfigError, match="personal-finetune-epochs: must be an integer >= 0"):
        load_config(personal_finetune_epochs=-1)
    assert strategy_class(load_config()) is KeyedFedAvg  # off by default: no evaluation round
