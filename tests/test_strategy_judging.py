"""Replies judged at the strategy, with real Flower Messages built in-process: the node -> partition map,
seeded sampling, the attack matrix (each poison kind x 1 or 3 of 10 hostile x each aggregation rule),
malformed replies that must cost only themselves, and hand cases of each robust rule."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from semfed.aggregation import AGGREGATIONS, RuleParams, coordinate_median, keyed_aggregate, krum, trimmed_mean
from semfed.fault_injection import poison_metrics, poison_statistics, poison_update
from semfed.retrieval.labels import HISTOGRAM_BINS
from semfed.sampling import sample_partitions
from semfed.update_validation import Judging, histogram_problem, norm_outliers
from server.resume import resumable
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg
from tests.flower_messages import Grid, reply_from, task_identity  # noqa: F401 (an autouse fixture)

N = 10
NODES = {pid: 1000 + 7 * pid for pid in range(N)}  # partition -> node id (as discover_partitions returns)
SHARDS = {pid: 20 + pid for pid in range(N)}  # examples the server assigned each partition
GLOBAL = {"core.w": np.zeros((2, 3), np.float32), "stem.w": np.zeros(4, np.float32), "steps": np.array(5, np.int64)}


def honest_state(pid: int) -> dict[str, torch.Tensor]:
    """Client pid's update: global plus a small seeded step; it also trained 'steps' once."""
    rng = np.random.default_rng(pid)
    return {"core.w": torch.tensor(rng.normal(0, 0.1, (2, 3)), dtype=torch.float32),
            "stem.w": torch.tensor(rng.normal(0, 0.1, 4), dtype=torch.float32), "steps": torch.tensor(6)}


def content(state, metrics, statistics=None) -> RecordDict:
    record = RecordDict({"arrays": ArrayRecord({k: Array(v.numpy()) for k, v in state.items()}),
                         "metrics": MetricRecord(metrics)})
    if statistics is not None:
        record["label-stats"] = ArrayRecord({k: Array(v) for k, v in statistics.items()})
    return record


def histogram(pid: int) -> dict[str, np.ndarray]:
    counts = np.zeros(HISTOGRAM_BINS)
    counts[[3, 15]] = [2, SHARDS[pid] - 4]  # the decoys of all but two labels
    return {"null-histogram": counts}


def client_reply(pid: int, kind: str | None, with_stats: bool = False) -> Message:
    """Client pid's reply, poisoned by `kind` (semfed.fault_injection, as clients/app.py does) or honest."""
    state = honest_state(pid)
    metrics = {"num-examples": SHARDS[pid], "partition-id": pid, "train_loss": 0.5 + pid}
    stats = histogram(pid) if with_stats else None
    if kind is not None:
        state, metrics = poison_update(state, kind), poison_metrics(metrics, kind, N)
        stats = poison_statistics(stats, kind) if stats is not None else None
    record = content(state, metrics, stats)
    if kind == "bytes":
        first = record["arrays"]["core.w"]
        record["arrays"]["core.w"] = Array(dtype=first.dtype, shape=first.shape, stype=first.stype, data=b"\x00garbage")
    return reply_from(NODES[pid], record)


def strategy_for(rule: str = "mean", cls=KeyedFedAvg, **kwargs) -> KeyedFedAvg:
    """A strategy after configure_train of round 1 (every partition sampled)."""
    strategy = cls(nodes=NODES, aggregation=rule, judging=Judging(SHARDS), **kwargs)
    strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}), Grid(NODES.values()))
    return strategy


def honest_inputs(partitions) -> list[tuple[dict, float]]:
    return [({k: v.numpy() for k, v in honest_state(p).items()}, SHARDS[p]) for p in partitions]


#: poison kind -> rejected (True) or accepted with its weight capped (False)
KINDS = {"nan": True, "inf": True, "shape": True, "key": True, "huge": True, "dtype": True, "forge-id": True,
         "bytes": True, "inflate": False, "histogram": True}


@pytest.mark.parametrize("rule", sorted(AGGREGATIONS))
@pytest.mark.parametrize("hostile", [1, 3])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_attack_matrix_costs_only_the_hostile_updates(kind, hostile, rule):
    stats = kind == "histogram"
    strategy = strategy_for(rule, LabelConsensusFedAvg if stats else KeyedFedAvg)
    replies = [client_reply(pid, kind if pid < hostile else None, stats) for pid in range(N)]
    arrays, _ = strategy.aggregate_train(1, replies)
    round_stats = strategy.round_stats[1]
    rejected = hostile if KINDS[kind] else 0
    assert (round_stats["clients_replied"], round_stats["updates_rejected"], round_stats["skipped"]) == (N, rejected, 0)
    assert round_stats["weights_capped"] == (0 if KINDS[kind] else hostile)
    assert sorted(strategy.client_metrics[1]) == list(range(rejected, N))
    result = {k: a.numpy() for k, a in arrays.items()}
    assert all(np.isfinite(v).all() and v.dtype == GLOBAL[k].dtype for k, v in result.items())
    # the kept inputs are exactly the honest updates (inflate: all ten, each weighted by its assigned shard)
    expected = keyed_aggregate(honest_inputs(range(rejected, N)), GLOBAL, rule)
    for key in GLOBAL:
        np.testing.assert_array_equal(result[key], expected[key])
    if rule == "mean":  # FedAvg of the honest clients, computed by hand
        honest = range(rejected, N)
        by_hand = sum(SHARDS[p] * honest_state(p)["core.w"].double().numpy() for p in honest) / sum(SHARDS[p] for p in honest)
        np.testing.assert_allclose(result["core.w"], by_hand, rtol=1e-6)


def test_with_three_label_statistics_attackers_the_consensus_is_the_honest_clients():
    clean, attacked = strategy_for(cls=LabelConsensusFedAvg), strategy_for(cls=LabelConsensusFedAvg)
    clean.aggregate_train(1, [client_reply(p, None, True) for p in range(3, N)])
    attacked.aggregate_train(1, [client_reply(p, "histogram" if p < 3 else None, True) for p in range(N)])
    assert attacked.consensus == clean.consensus and attacked.consensus_history == clean.consensus_history
    assert clean.consensus is not None


def test_replies_are_mapped_by_node_a_forged_or_unknown_sender_and_a_second_reply_are_rejected(caplog):
    strategy = strategy_for()
    forged = content(honest_state(2), {"num-examples": SHARDS[2], "partition-id": 3})
    no_claim = content(honest_state(4), {"num-examples": SHARDS[4]})
    replies = [client_reply(0, None), client_reply(0, None), reply_from(NODES[2], forged), reply_from(999, forged),
               reply_from(NODES[4], no_claim), client_reply(5, None)]
    with caplog.at_level("WARNING", logger="semfed.strategy"):
        strategy.aggregate_train(1, replies)
    assert sorted(strategy.client_metrics[1]) == [0, 4, 5]  # a reply without a claim is mapped by its node
    assert strategy.round_stats[1]["updates_rejected"] == 3
    assert f"node {NODES[0]} (partition 0): a second reply from partition 0 in round 1" in caplog.text
    assert f"node {NODES[2]} (partition 2): reply claims partition-id 3, but node {NODES[2]} is partition 2" in caplog.text
    assert "node 999 (partition None): node 999 was not asked to train in round 1" in caplog.text


@pytest.mark.parametrize("make, reason", [
    (lambda: content(honest_state(1), {"num-examples": SHARDS[1], "partition-id": [1, 2]}), "claims partition-id [1, 2]"),
    (lambda: content(honest_state(1), {"num-examples": SHARDS[1], "partition-id": float("nan")}), "claims partition-id nan"),
    (lambda: content(honest_state(1), {"num-examples": 1e308, "partition-id": 1}), "num-examples 1e+308 is not"),
    (lambda: content(honest_state(1), {"num-examples": 0, "partition-id": 1}), "num-examples 0 is not"),
    (lambda: content(honest_state(1), {"num-examples": [3.0], "partition-id": 1}), "num-examples [3.0] is not"),
    (lambda: content({**honest_state(1), "core.w": torch.zeros(2, 3, dtype=torch.float64)},
                     {"num-examples": SHARDS[1]}), "array 'core.w' has dtype float64, the global one float32"),
    (lambda: content({**honest_state(1), "core.w": torch.zeros(2, 3, dtype=torch.complex64)},
                     {"num-examples": SHARDS[1]}), "array 'core.w' has dtype complex64"),
    (lambda: content({**honest_state(1), "core.w": torch.zeros(2, 3, dtype=torch.bool)},
                     {"num-examples": SHARDS[1]}), "array 'core.w' has dtype bool"),
    (lambda: RecordDict({"arrays": ArrayRecord({"core.w": Array(np.zeros((2, 3), np.float32))}),
                         "metrics": ConfigRecord({"num-examples": 5})}), "reply lacks the ArrayRecord 'arrays'"),
    (lambda: RecordDict({"metrics": MetricRecord({"num-examples": 5})}), "reply lacks the ArrayRecord 'arrays'"),
    (lambda: content(honest_state(1), {"num-examples": SHARDS[1]}, {"null-histogram": np.ones(3)}),
     "label histogram has dtype float64 and shape (3,), expected float64 (20,)"),
    (lambda: content(honest_state(1), {"num-examples": SHARDS[1]}, {**histogram(1), "confidence-histogram": np.ones(20)}),
     "'label-stats' is not an"),
    (lambda: content(honest_state(1), {"num-examples": SHARDS[1]}, {"other": np.ones(20)}), "'label-stats' is not an"),
])
def test_a_malformed_reply_is_rejected_with_its_reason_never_raised(make, reason, caplog):
    strategy = strategy_for(cls=LabelConsensusFedAvg)
    with caplog.at_level("WARNING", logger="semfed.strategy"):
        arrays, _ = strategy.aggregate_train(1, [client_reply(0, None), reply_from(NODES[1], make()), client_reply(2, None)])
    assert strategy.round_stats[1]["updates_rejected"] == 1 and sorted(strategy.client_metrics[1]) == [0, 2]
    assert f"rejected the update of node {NODES[1]} (partition 1): " in caplog.text and reason in caplog.text
    np.testing.assert_array_equal(arrays["core.w"].numpy(), keyed_aggregate(honest_inputs([0, 2]), GLOBAL)["core.w"])


def test_undeserialisable_bytes_are_rejected_naming_the_error(caplog):
    strategy = strategy_for()
    with caplog.at_level("WARNING", logger="semfed.strategy"):
        strategy.aggregate_train(1, [client_reply(0, "bytes"), client_reply(1, None)])
    assert f"node {NODES[0]} (partition 0): unreadable reply (" in caplog.text
    assert strategy.round_stats[1]["updates_rejected"] == 1


def test_an_error_reply_is_a_failed_client_and_all_rejected_skips_the_round():
    strategy = strategy_for(min_replies=1)
    assert strategy.aggregate_train(1, [reply_from(NODES[0], Error(code=0, reason="boom")),
                                        client_reply(1, "nan")]) == (None, None)
    stats = strategy.round_stats[1]
    assert (stats["clients_sampled"], stats["clients_replied"], stats["clients_failed"], stats["updates_rejected"],
            stats["skipped"]) == (N, 1, N - 1, 1, 1)


def test_num_examples_is_capped_at_the_assigned_shard_else_max_client_examples_else_the_round_median():
    def weights(judging):
        strategy = KeyedFedAvg(nodes=NODES, judging=judging)
        strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}), ConfigRecord({}), Grid(NODES.values()))
        replies = [reply_from(NODES[p], content(honest_state(p), {"num-examples": claim}))
                   for p, claim in [(0, 10), (1, 30), (2, 1e12), (3, 20)]]
        strategy.aggregate_train(1, replies)
        return [strategy.client_metrics[1][p]["num-examples"] for p in range(4)]

    assert weights(Judging({0: 12, 1: 25, 2: 40, 3: 40})) == [10, 25, 40, 20]
    assert weights(Judging({}, max_examples=15)) == [10, 15, 15, 15]
    assert weights(Judging({})) == [10, 25, 25, 20]  # median of 10, 20, 30, 1e12 = 25


def test_the_norm_bound_compares_each_key_among_its_holders_only():
    reference = {"core": np.zeros(2), "stem_a": np.zeros(1), "stem_b": np.zeros(1)}
    updates = {0: {"core": np.array([1.0, 0]), "stem_a": np.array([1.0])},
               1: {"core": np.array([0, 1.0]), "stem_a": np.array([2.0])},
               2: {"core": np.array([1.0, 1.0]), "stem_a": np.array([21.0])},  # 21 > 10 x median 2
               3: {"core": np.array([30.0, 40.0]), "stem_b": np.array([1e6])}}  # core 50 > 10 x median 1.21; stem_b: 1 holder
    assert sorted(norm_outliers(updates, reference, 10.0)) == [2, 3]
    assert norm_outliers(updates, reference, 10.0)[2].startswith("array 'stem_a' moved 21 from the global model")
    assert sorted(norm_outliers(updates, reference, 25.0)) == [3]  # 21 <= 25 x 2
    assert norm_outliers(updates, reference, 0) == {}
    unchanged = {p: {"core": np.zeros(2)} for p in range(3)} | {3: {"core": np.ones(2)}}
    assert norm_outliers(unchanged, reference, 10.0) == {}  # a median of 0 has no scale: not judged


def test_histogram_bounds():
    good = np.zeros(HISTOGRAM_BINS)
    good[0] = 30.0
    assert histogram_problem(good, HISTOGRAM_BINS, 30) is None
    assert "more than the client's 29 examples" in histogram_problem(good, HISTOGRAM_BINS, 29)
    assert "negative, NaN or Inf" in histogram_problem(-good, HISTOGRAM_BINS, 30)
    assert "negative, NaN or Inf" in histogram_problem(good * np.inf, HISTOGRAM_BINS, np.inf)
    assert "dtype float32" in histogram_problem(good.astype(np.float32), HISTOGRAM_BINS, 30)


def test_sampling_is_drawn_from_the_seed_by_partition_and_a_resumed_run_draws_the_same():
    draws = [sample_partitions(3, r, range(N), 0.3) for r in range(1, 11)]
    assert all(len(d) == 3 and d == sorted(d) for d in draws) and len({tuple(d) for d in draws}) > 3
    assert draws == [sample_partitions(3, r, list(reversed(range(N))), 0.3) for r in range(1, 11)]  # order-free
    assert sample_partitions(3, 1, range(N), 1.0) == list(range(N))
    assert len(sample_partitions(3, 1, range(N), 0.05, minimum=2)) == 2
    assert sample_partitions(3, 1, range(N), 0.3) != sample_partitions(4, 1, range(N), 0.3)

    arrays = ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})
    fresh = KeyedFedAvg(nodes=NODES, seed=3, fraction_train=0.3)
    sent = [sorted(m.metadata.dst_node_id for m in fresh.configure_train(r, arrays, ConfigRecord({}), Grid(NODES.values())))
            for r in (1, 2, 3)]
    assert sent == [sorted(NODES[p] for p in draws[r - 1]) for r in (1, 2, 3)]
    resumed = resumable(KeyedFedAvg)(nodes=NODES, seed=3, fraction_train=0.3)
    resumed.round_offset = 2
    messages = resumed.configure_train(1, arrays, ConfigRecord({}), Grid(NODES.values()))
    assert sorted(m.metadata.dst_node_id for m in messages) == sent[2]
    assert {m.content["config"]["server-round"] for m in messages} == {3}


def test_a_sampled_node_that_is_not_connected_is_a_failed_client():
    strategy = KeyedFedAvg(nodes=NODES)
    arrays = ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})
    messages = strategy.configure_train(1, arrays, ConfigRecord({}), Grid([NODES[p] for p in range(1, N)]))
    assert sorted(m.metadata.dst_node_id for m in messages) == [NODES[p] for p in range(1, N)]
    strategy.aggregate_train(1, [client_reply(p, None) for p in range(1, N)])
    stats = strategy.round_stats[1]
    assert (stats["clients_sampled"], stats["clients_failed"], stats["bytes_sent"]) == (N, 1, 9 * sum(
        len(Array(v).data) for v in GLOBAL.values()))


# hand cases: a plausible bug in each rule changes these numbers
def test_median_of_an_even_count_averages_the_middle_two():
    arrays = [np.array([1.0, 8.0]), np.array([2.0, 1.0]), np.array([10.0, 3.0]), np.array([4.0, 2.0])]
    assert coordinate_median(arrays, [1] * 4, RuleParams()).tolist() == [3.0, 2.5]


def test_trimmed_mean_drops_floor_of_the_fraction_at_each_end_per_coordinate():
    arrays = [np.array([v, -v]) for v in (0.0, 1.0, 2.0, 6.0, 100.0)]
    assert trimmed_mean(arrays, [1] * 5, RuleParams(trim_fraction=0.2)).tolist() == [3.0, -3.0]  # k = 1: (1+2+6)/3
    assert trimmed_mean(arrays, [1] * 5, RuleParams(trim_fraction=0.39)).tolist() == [3.0, -3.0]  # floor(1.95) = 1
    assert trimmed_mean(arrays, [1] * 5, RuleParams(trim_fraction=0.4)).tolist() == [2.0, -2.0]  # k = 2
    assert trimmed_mean(arrays, [1] * 5, RuleParams(trim_fraction=0.0)).tolist() == [21.8, -21.8]


def test_krum_scores_the_n_minus_f_minus_2_nearest_and_needs_f_plus_3_holders():
    # points 0, 1, 2, 4, 5, f = 1: 2 nearest -> scores 5, 2, 5, 5, 10 -> 1; 3 nearest would pick 2
    arrays = [np.array([v]) for v in (0.0, 1.0, 2.0, 4.0, 5.0)]
    assert krum(arrays, [1] * 5, RuleParams(byzantine=1)).tolist() == [1.0]
    assert krum(arrays, [1] * 5, RuleParams(byzantine=0)).tolist() == [2.0]  # 3 nearest: 11 for 1, 9 for 2
    assert krum(arrays[:3], [1] * 3, RuleParams(byzantine=1)).tolist() == [1.0]  # 3 < f + 3: median of 0, 1, 2
    assert krum([np.array([0.0]), np.array([1.0]), np.array([5.0])], [1] * 3, RuleParams(byzantine=1)).tolist() == [1.0]


def test_mean_is_the_weighted_fedavg_and_every_rule_keeps_the_global_dtype_over_heterogeneous_keys():
    current = {"core": np.zeros(2, np.float32), "stem_a": np.zeros(1, np.float32), "stem_c": np.full(1, 7.0, np.float32)}
    updates = [({"core": np.array([1.0, 1.0], np.float32), "stem_a": np.array([2.0], np.float32)}, 1.0),
               ({"core": np.array([3.0, 5.0], np.float32)}, 3.0)]
    for rule in AGGREGATIONS:
        out = keyed_aggregate(updates, current, rule)
        assert out["stem_a"].tolist() == [2.0] and out["stem_c"].tolist() == [7.0]
        assert all(v.dtype == np.float32 for v in out.values())
    assert keyed_aggregate(updates, current, "mean")["core"].tolist() == [2.5, 4.0]
    assert keyed_aggregate(updates, current, "median")["core"].tolist() == [2.0, 3.0]  # unweighted


class QueryGrid(Grid):
    """Nodes that answer the partition-id query with `answers` (node -> partition-id; absent: silent)."""

    def __init__(self, answers: dict):
        super().__init__(answers)
        self.answers = answers

    def send_and_receive(self, messages, timeout):
        return [reply_from(m.metadata.dst_node_id, RecordDict({"metrics": MetricRecord({"partition-id": pid})}))
                for m in messages if (pid := self.answers[m.metadata.dst_node_id]) is not None]


def test_discovery_maps_each_node_to_the_partition_it_answers_and_refuses_a_bad_or_taken_id():
    from server.nodes import discover_partitions

    assert discover_partitions(QueryGrid({50: 1, 40: 0, 60: 2}), 3, 1.0) == {0: 40, 1: 50, 2: 60}
    for answers, message in [({50: 1, 40: 1, 60: 2}, "nodes 40 and 50 both answer partition-id 1"),
                             ({50: 1, 40: 0, 60: 3}, "node 60 answers partition-id 3; 'clients' needs an integer in 0..2"),
                             ({50: 1, 40: 0, 60: 1.5}, "node 60 answers partition-id 1.5"),
                             ({50: 1, 40: 0, 60: None}, r"nodes \[60\] did not answer the partition-id query within 1 s")]:
        with pytest.raises(RuntimeError, match=message):
            discover_partitions(QueryGrid(answers), 3, 1.0)
