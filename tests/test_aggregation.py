import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from semfed.aggregation import keyed_weighted_average
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes


def test_keyed_average_over_clients_with_different_keys():
    current = {"core": np.zeros(2, np.float32), "stem_a": np.zeros(1, np.float32),
               "stem_b": np.zeros(1, np.float32), "stem_c": np.full(1, 7.0, np.float32)}
    updates = [({"core": np.array([1.0, 1.0], np.float32), "stem_a": np.array([2.0], np.float32)}, 1.0),
               ({"core": np.array([3.0, 5.0], np.float32), "stem_b": np.array([4.0], np.float32)}, 3.0)]
    out = keyed_weighted_average(updates, current)
    np.testing.assert_allclose(out["core"], [2.5, 4.0])
    np.testing.assert_allclose(out["stem_a"], [2.0])  # only client 1 holds it
    np.testing.assert_allclose(out["stem_b"], [4.0])  # only client 2 holds it
    np.testing.assert_allclose(out["stem_c"], [7.0])  # nobody sent it: unchanged
    assert out["core"].dtype == np.float32


def test_keyed_average_rejects_bad_shapes_and_unknown_keys():
    current = {"core": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="'core'.*shape"):
        keyed_weighted_average([({"core": np.zeros(3, np.float32)}, 1.0)], current)
    with pytest.raises(ValueError, match="extra"):
        keyed_weighted_average([({"core": np.zeros(2, np.float32), "extra": np.zeros(1)}, 1.0)], current)


class Reply:
    """Stand-in for a Flower reply Message (constructing real ones needs a running Flower context)."""

    def __init__(self, content: RecordDict):
        self.content = content

    def has_error(self) -> bool:
        return False

    def has_content(self) -> bool:
        return True


def reply(arrays: dict, examples: int, partition: int) -> Reply:
    content = RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in arrays.items()}),
                          "metrics": MetricRecord({"num-examples": examples, "partition-id": partition,
                                                   "train_loss": float(partition)})})
    return Reply(content)


def test_strategy_aggregates_heterogeneous_replies_in_partition_order():
    strategy = KeyedFedAvg(fraction_evaluate=0.0)
    strategy.global_arrays = ArrayRecord({"core": Array(np.zeros(1, np.float32)), "img": Array(np.zeros(1, np.float32)),
                                          "txt": Array(np.zeros(1, np.float32))})
    strategy.round_stats[1] = {"bytes_sent": 0, "clients_sampled": 2}  # as configure_train leaves it
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
