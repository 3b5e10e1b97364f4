"""Compressed updates: top-k keeps exactly k entries, error feedback carries the rest into the next round,
8-bit quantisation stays within half a step, payload bytes against hand counts, malformed payloads refused
at the strategy at the cost of that reply only (a compressed run end to end: tests/test_network.py)."""

import json

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from experiments.rsum_curves import summary
from semfed.compression import Compression, compress_update, decode, decompress_update, encode, parse_compression
from semfed.config_values import ConfigError
from semfed.retrieval import report
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (an autouse fixture)
from tests.flower_runs import tiny_config

TOP3 = Compression(fraction=0.3)
NPY_HEADER = 128  # bytes of a 1-d .npy header (np.save, format 1.0: padded to a multiple of 64)


def test_top_k_sends_exactly_the_k_largest_changes_ties_to_the_lower_position():
    change = np.array([0.1, -5.0, 0.3, 2.0, -2.0, 0.0, 0.2, 0.05, -0.4, 1.0], np.float32)
    parts, sent = encode(change, TOP3)  # k = ceil(0.3 x 10) = 3: -5 at 1, then 2 and -2 tie: 3 before 4
    assert parts["idx"].tolist() == [1, 3, 4] and parts["idx"].dtype == np.int32
    assert parts["val"].tolist() == [-5.0, 2.0, -2.0]
    assert np.count_nonzero(sent) == 3 and sent[[1, 3, 4]].tolist() == [-5.0, 2.0, -2.0]
    assert np.array_equal(decode(parts, change.shape, TOP3), sent)


def test_error_feedback_carries_what_was_not_sent_into_the_next_rounds():
    received = {"w": np.zeros(10, np.float32)}
    trained = {"w": np.array([0.1, -5.0, 0.3, 2.0, -2.0, 0.0, 0.2, 0.05, -0.4, 1.0], np.float32)}
    payload, residual = compress_update(trained, received, {}, TOP3, error_feedback=True)
    sent = decompress_update(payload, received, TOP3)["w"]
    np.testing.assert_array_equal(residual["w"], trained["w"] - sent)  # the seven entries not sent
    total = sent.copy()
    for _ in range(3):  # no new change: each round sends the three largest of what is left
        payload, residual = compress_update(received, received, residual, TOP3, error_feedback=True)
        total += decompress_update(payload, received, TOP3)["w"]
    np.testing.assert_array_equal(total, trained["w"])  # after 4 rounds of 3 entries, all 10 arrived
    _, none = compress_update(trained, received, {}, TOP3, error_feedback=False)
    assert none == {}


def test_eight_bit_values_are_within_half_a_step_and_the_scale_maps_127_to_the_peak():
    change = np.random.default_rng(0).normal(0, 0.01, (6, 50)).astype(np.float32)
    int8 = Compression(bits=8)
    parts, sent = encode(change, int8)
    step = np.abs(change).max() / 127
    assert parts["val"].dtype == np.int8 and parts["scale"][0] == np.float32(step)
    assert np.abs(sent - change).max() <= step / 2 + 1e-9 and np.abs(parts["val"]).max() == 127
    both = Compression(fraction=0.1, bits=8)
    parts, sent = encode(change, both)
    assert parts["idx"].shape == (30,) and parts["val"].dtype == np.int8 and np.count_nonzero(sent) == 30


def test_payload_bytes_against_hand_counts():
    state = {"w": np.ones(1000, np.float32), "steps": np.array([3], np.int64)}
    received = {"w": np.zeros(1000, np.float32), "steps": np.array([2], np.int64)}

    def nbytes(compression):
        payload, _ = compress_update(state, received, {}, compression, error_feedback=False)
        return record_nbytes(ArrayRecord({k: Array(v) for k, v in payload.items()}))

    counter = NPY_HEADER + 8  # the int64 counter, sent as it is
    assert nbytes(Compression()) == NPY_HEADER + 4000 + counter
    assert nbytes(Compression(fraction=0.1)) == 2 * NPY_HEADER + 100 * 4 + 100 * 4 + counter
    assert nbytes(Compression(bits=8)) == 2 * NPY_HEADER + 1000 + 4 + counter
    assert nbytes(Compression(fraction=0.1, bits=8)) == 3 * NPY_HEADER + 100 * 4 + 100 + 4 + counter


@pytest.mark.parametrize("spec, expected", [("none", Compression()), ("topk:0.05", Compression(0.05)),
                                            ("int8", Compression(bits=8)), ("topk:0.1+int8", Compression(0.1, 8))])
def test_compression_specs(spec, expected):
    assert parse_compression(spec) == expected


@pytest.mark.parametrize("spec", ["topk:1.5", "topk:0", "topk", "int4", "int8+int8", "none+int8"])
def test_bad_compression_specs_are_refused(spec):
    with pytest.raises(ValueError, match="update-compression"):
        parse_compression(spec)


REFERENCE = {"w": np.zeros(10, np.float32)}
GOOD = {"w::idx": np.array([1, 3, 4], np.int32), "w::val": np.array([1.0, 2.0, 3.0], np.float32)}


@pytest.mark.parametrize("payload, problem", [
    ({**GOOD, "v::val": np.zeros(3, np.float32)}, "names no float array"),
    ({"w::val": GOOD["w::val"]}, "payload parts"),
    ({**GOOD, "w::idx": np.array([1, 3, 10], np.int32)}, "positions"),
    ({**GOOD, "w::idx": np.array([1, 3, 3], np.int32)}, "positions"),
    ({**GOOD, "w::idx": np.array([1, 3, 4], np.int64)}, "positions"),
    ({**GOOD, "w::val": np.array([1.0, np.nan, 3.0], np.float32)}, "finite"),
    ({**GOOD, "w::val": np.array([1.0, 2.0], np.float32)}, "values"),
])
def test_malformed_payloads_are_refused_naming_the_problem(payload, problem):
    with pytest.raises(ValueError, match=problem):
        decompress_update(payload, REFERENCE, TOP3)
    assert decompress_update(GOOD, REFERENCE, TOP3)["w"].tolist() == [0, 1, 0, 2, 3, 0, 0, 0, 0, 0]


def test_a_bad_scale_is_refused():
    parts = {"w::val": np.ones(10, np.int8), "w::scale": np.array([0.0], np.float32)}
    with pytest.raises(ValueError, match="scale"):
        decompress_update(parts, REFERENCE, Compression(bits=8))


def test_the_strategy_rebuilds_compressed_updates_and_a_malformed_one_costs_only_itself():
    nodes = {0: 100, 1: 101}
    strategy = KeyedFedAvg(nodes=nodes, compression=TOP3)
    strategy.configure_train(1, ArrayRecord({"w": Array(REFERENCE["w"])}), ConfigRecord({}), Grid(nodes.values()))
    bad = {**GOOD, "w::idx": np.array([4, 3, 1], np.int32)}  # not ascending
    replies = [reply_from(node, RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in payload.items()}),
                                            "metrics": MetricRecord({"num-examples": 10, "partition-id": pid})}))
               for pid, node, payload in [(0, 100, GOOD), (1, 101, bad)]]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert strategy.round_stats[1]["updates_rejected"] == 1 and list(strategy.client_metrics[1]) == [0]
    assert arrays["w"].numpy().tolist() == [0, 1, 0, 2, 3, 0, 0, 0, 0, 0]


def test_compression_keys_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"update-compression: the top-k fraction must be in \(0, 1\), got '2'"):
        tiny_config(tmp_path, update_compression="topk:2")._check_network()
    with pytest.raises(ConfigError, match="not with method 'local-only'"):
        tiny_config(tmp_path, update_compression="int8", method="local-only")._check_network()


def test_rsum_curves_report_the_cost_until_a_target_on_hand_made_runs(tmp_path):
    for name, received, rsums in [("dense", [0, 8e6, 8e6, 8e6], [2.0, 60.0, 110.0, 130.0]),
                                  ("sparse", [0, 1e6, 1e6, 1e6], [2.0, 40.0, 90.0, 105.0])]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"update-compression": name}))
        pd.DataFrame({"round": [0, 1, 2, 3], "rsum": rsums, "bytes_received": received}).to_csv(
            tmp_path / name / report.METRICS, index=False)
    table = summary([tmp_path / "dense", tmp_path / "sparse"], "bytes", target=100)
    assert table["MB uplink"].tolist() == [24.0, 3.0] and table["final_rsum"].tolist() == [130.0, 105.0]
    assert table["MB uplink to RSUM 100"].tolist() == [16.0, 3.0]  # the first round at or above 100
