import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from semfed.aggregation import keyed_aggregate
from semfed.update_validation import Judging
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (fixture)


def test_keyed_average_over_clients_with_different_keys():
    current = {"core": np.zeros(2, np.float32), "stem_a": np.zeros(1, np.float32),
               "stem_b": np.zeros(1, np.float32), "stem_c": np.full(1, 7.0, np.float32)}
    updates = [({"core": np.array([1.0, 1.0], np.float32), "stem_a": np.array([2.0], np.float32)}, 1.0),
               ({"core": np.array([3.0, 5.0], np.float32), "stem_b": np.array([4.0], np.float32)}, 3.0)]
    out = keyed_aggregate(updates, current)
    np.testing.assert_allclose(out["core"], [2.5, 4.0])
    np.testing.assert_allclose(out["stem_a"], [2.0])  # only client 1 holds it
    np.testing.assert_allclose(out["stem_b"], [4.0])  # only client 2 holds it
    np.testing.assert_allclose(out["stem_c"], [7.0])  # nobody sent it: unchanged
    assert out["core"].dtype == np.float32


def test_keyed_average_rejects_bad_shapes_and_unknown_keys():
    current = {"core": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="'core'.*shape"):
        keyed_aggregate([({"core": np.zeros(3, np.float32)}, 1.0)], current)
    with pytest.raises(ValueError, match="extra"):
        keyed_aggregate([({"core": np.zeros(2, np.float32), "extra": np.zeros(1)}, 1.0)], current)


def reply(arrays: dict, examples: int, partition: int):
    content = RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in arrays.items()}),
                          "metrics": MetricRecord({"num-examples": examples, "partition-id": partition,
                                                   "train_loss": float(partition)})})
    return reply_from(100 + partition, content)


def test_strategy_aggregates_heterogeneous_replies_in_partition_order():
    strategy = KeyedFedAvg(nodes={0: 100, 2: 102}, judging=Judging({0: 10, 2: 30}), fraction_evaluate=0.0)
    strategy.configure_train(1, ArrayRecord({"core": Array(np.zeros(1, np.float32)), "img": Array(np.zeros(1, np.float32)),
                                             "txt": Array(np.zeros(1, np.float32))}), ConfigRecord({}), Grid([100, 102]))
    replies = [reply({"core": [4.0], "txt": [8.0]}, 30, 2), reply({"core": [0.0], "img": [2.0]}, 10, 0)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays["core"].numpy().tolist() == [3.0]
    assert arrays["img"].numpy().tolist() == [2.0] and arrays["txt"].numpy().tolist() == [8.0]
    assert metrics["train_loss"] == pytest.approx((0 * 10 + 2 * 30) / 40)
    assert strategy.round_stats[1]["clients_replied"] == 2
    # four float32 [1] arrays, each a .npy payload: 128-byte header + 4 bytes
    assert strategy.round_stats[1]["bytes_received"] == 4 * (128 + 4)


def test_record_bytes_are_the_serialised_npy_payloads():
    # Flower's Array holds np.save output: a 128-byte header (magic, version, header length, padded dict) + data
    record = ArrayRecord({"w": Array(np.zeros((3, 4), np.float32)), "ids": Array(np.zeros(2, np.int64))})
    assert record_nbytes(record) == (128 + 3 * 4 * 4) + (128 + 2 * 8)
