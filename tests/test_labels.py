"""Error-aware labelling: confidence, exclusion, ledger, consensus, statistics, noise injection."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord

from semfed.config import ConfigError, load_config, parse_noise_groups
from semfed.data.label_noise import corrupt_annotations
from semfed.label_policies import LABEL_POLICIES
from semfed.retrieval import training
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.shards import Modality, Shard
from semfed.retrieval.labels import (HISTOGRAM_BINS, NULL, LabelLedger, close_label_round,
                                     confidence_histogram, decoy_rank_confidence, group_label_metrics, noise_cut,
                                     noise_fraction, noise_overlap, rank_confidence)
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg, pool_nulls
from tests.flower_messages import Grid, task_identity  # noqa: F401 (an autouse fixture)
from tests.test_aggregation import reply


def test_rank_confidence_on_a_hand_made_similarity_matrix():
    similarity = torch.tensor([[0.9, 0.1, 0.5],
                               [0.2, 0.3, 0.8],
                               [0.4, 0.4, 0.4]])
    # row 0: beats both others (2/2) and both other samples score label 0 lower (2/2) -> 1
    # row 1: beats 0.2 not 0.8 (1/2); column: above 0.1, below 0.4 (1/2) -> 0.5
    # row 2: ties twice (0.5 + 0.5 of 2); column: below 0.5 and 0.8 (0/2) -> 1/4
    torch.testing.assert_close(rank_confidence(similarity), torch.tensor([1.0, 0.5, 0.25]))
    assert rank_confidence(torch.tensor([[0.3]])).tolist() == [1.0]


def test_decoy_rank_confidence_on_a_hand_made_similarity_matrix():
    similarity = torch.tensor([[0.9, 0.1, 0.5],
                               [0.2, 0.3, 0.8],
                               [0.4, 0.4, 0.4]])
    decoy_similarity = torch.tensor([[0.3, 0.0, 0.0],
                                     [0.0, 0.9, 0.0],
                                     [0.0, 0.6, 0.4]])
    # decoy 0 (0.3): above label 1's 0.1, below label 2's 0.5 (1/2); column 0 of the decoys: above 0.0, 0.0 (2/2) -> 3/4
    # decoy 1 (0.9): above 0.2 and 0.8, its own label 0.3 left out (2/2); column 1: above 0.0, 0.6 (2/2) -> 1
    # decoy 2 (0.4): ties 0.4 twice (1/2); column 2: above 0.0, 0.0 (2/2) -> 3/4
    torch.testing.assert_close(decoy_rank_confidence(similarity, decoy_similarity), torch.tensor([0.75, 1.0, 0.75]))
    assert decoy_rank_confidence(torch.tensor([[0.3]]), torch.tensor([[0.9]])).tolist() == [0.5]


def spread(per_bin: dict[range, float]) -> np.ndarray:
    """A histogram with `per_bin[bins]` labels in each of `bins`."""
    histogram = np.zeros(HISTOGRAM_BINS)
    for bins, count in per_bin.items():
        histogram[list(bins)] += count
    return histogram


def test_noise_fraction_and_cut_on_hand_made_histograms():
    null = spread({range(20): 10})  # chance: flat
    noisy = spread({range(20): 1, range(19, 20): 80})  # 20 noisy labels ranking like decoys, 80 clean ones at 0.95-1
    # 10 of 100 labels under 0.5, where chance puts half its mass: 0.2 noise
    assert noise_fraction(noisy, null) == pytest.approx(0.2)
    # under every edge below 0.95 the labels are all noise (0.2 x (k/20) / (k/100) = 1): cut 0.95
    assert noise_cut(noisy, null, precision=0.8) == pytest.approx(0.95)
    clean = spread({range(17, 20): 30})
    assert noise_fraction(clean, null) == 0 and noise_cut(clean, null, precision=0.8) == 0  # nothing looks like chance
    wide = spread({range(20): 1, range(12, 20): 10})  # clean labels spread over 0.6-1
    # under 0.6: 12 of 100 labels, expected 0.2 x 0.6 / 0.12 = 1 noise; under 0.65: 0.2 x 0.65 / 0.23 = 0.57
    assert noise_cut(wide, null, precision=0.8) == pytest.approx(0.6)
    assert noise_cut(wide, null, precision=0.5) == pytest.approx(0.65)
    assert noise_cut(noisy, np.zeros(HISTOGRAM_BINS), 0.8) == 0 and noise_cut(np.zeros(HISTOGRAM_BINS), null, 0.8) == 0


def test_a_pooled_null_moves_a_clients_cut():
    own_null = spread({range(0, 10): 2, range(10, 20): 18})  # a client's few decoys happen to rank high
    pooled = spread({range(20): 10})
    labels = spread({range(20): 1, range(19, 20): 80})
    # own null: 20 of 200 decoys under 0.5 -> noise fraction 0.1 / 0.1 = 1, every edge flagged as noise
    assert noise_fraction(labels, own_null) == 1.0 and noise_cut(labels, own_null, 0.8) == 1.0
    assert noise_cut(labels, pooled, 0.8) == pytest.approx(0.95)


def test_confidence_histogram_counts_every_label_once():
    counts = confidence_histogram(np.array([0.0, 0.04, 0.05, 0.5, 0.999, 1.0]))
    assert counts.shape == (HISTOGRAM_BINS,) and counts.sum() == 6
    assert counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[19] == 2


def tiny_shard(n: int = 6, with_text: bool = True) -> tuple[GraphAdapter, Shard]:
    torch.manual_seed(0)
    concepts = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    model = GraphAdapter({"frcnn-r50": 6, "minilm": 7}, concepts, width=16, intra_k=2, skb_k=2)
    image = Modality("frcnn-r50", torch.randn(n, 3, 6, requires_grad=True), torch.ones(n, 3, dtype=torch.bool))
    text = Modality("minilm", torch.randn(n, 5, 4, 7), torch.ones(n, 5, 4, dtype=torch.bool)) if with_text else None
    labels = (torch.rand(n, 5, 5) > 0.5).float()
    return model, Shard(np.arange(n), np.arange(n), image, text, labels, labels.amax(1))


def test_an_excluded_label_sends_no_gradient():
    model, shard = tiny_shard()
    cfg = load_config()
    idx, caption = torch.arange(6), torch.zeros(6, dtype=torch.long)
    keep = torch.tensor([True, False, True, True, True, True])
    training.batch_loss(model, shard, idx, caption, cfg, "cpu", keep).backward()
    grad = shard.image.feats.grad.abs().sum(dim=(1, 2))
    assert grad[1] == 0 and (grad[[0, 2, 3, 4, 5]] > 0).all()
    shard.image.feats.grad = None
    training.batch_loss(model, shard, idx, caption, cfg, "cpu", torch.ones(6, dtype=torch.bool)).backward()
    assert shard.image.feats.grad[1].abs().sum() > 0


def test_a_label_excluded_in_one_epoch_is_back_when_its_confidence_recovers(monkeypatch):
    model, shard = tiny_shard()
    cfg = load_config(batch_size=6, label_confidence_threshold=0.5)
    epoch_confidence = iter([torch.tensor([0.9, 0.1, 0.9, 0.9, 0.9, 0.9]), torch.full((6,), 0.9)])
    monkeypatch.setattr(training, "batch_confidence",
                        lambda model, shard, idx, caption, decoy, device: (next(epoch_confidence)[idx], torch.zeros(len(idx))))
    keeps = []  # per step: keep mask in shard-row order
    original = training.batch_loss

    def spy(model, shard, idx, caption, cfg, device, keep):
        keeps.append(torch.zeros(6, dtype=torch.bool).index_put((idx,), keep))
        return original(model, shard, idx, caption, cfg, device, keep)

    monkeypatch.setattr(training, "batch_loss", spy)
    local = training.train_local(model, shard, cfg, epochs=2, seed=0, device="cpu", score_labels=True)
    assert keeps[0].tolist() == [True, False, True, True, True, True]
    assert keeps[1].all()  # confidence recovered: label 1 is back in the loss
    assert local.excluded.tolist() == [False, True, False, False, False, False]
    torch.testing.assert_close(local.confidence[:, 1], torch.tensor([0.1, 0.9]))


def test_scored_training_gives_every_label_a_confidence_and_never_trains_pruned_ones():
    model, shard = tiny_shard(n=8)
    cfg = load_config(batch_size=4, label_confidence_threshold=0.01)
    pruned = torch.zeros(8, dtype=torch.bool)
    pruned[3] = True
    local = training.train_local(model, shard, cfg, epochs=2, seed=0, device="cpu", score_labels=True, pruned=pruned)
    assert local.confidence.shape == (2, 8) and ((local.confidence >= 0) & (local.confidence <= 1)).all()
    assert local.decoy_confidence.shape == (2, 8) and not local.decoy_confidence.isnan().any()
    assert not local.excluded[3]  # pruned labels are out for good, not counted as excluded


def test_each_labels_decoy_is_another_rows_label_the_same_in_every_epoch(monkeypatch):
    model, shard = tiny_shard(n=8)
    decoys = []  # per epoch: each row's decoy row
    original = training.batch_confidence

    def spy(model, shard, idx, caption, decoy, device):
        if len(decoys) == 0 or (decoys[-1] >= 0).all():
            decoys.append(torch.full((8,), -1))
        decoys[-1][idx] = decoy
        return original(model, shard, idx, caption, decoy, device)

    monkeypatch.setattr(training, "batch_confidence", spy)
    training.train_local(model, shard, load_config(batch_size=3), epochs=3, seed=0, device="cpu", score_labels=True)
    assert len(decoys) == 3 and all(torch.equal(d, decoys[0]) for d in decoys)
    assert (decoys[0] != torch.arange(8)).all() and sorted(decoys[0].tolist()) == list(range(8))  # a derangement


def test_a_label_is_judged_on_its_mean_confidence_over_the_last_prune_rounds():
    """prune_rounds=2, chance between 0.4 and 0.6: 80 clean labels at 0.67, 19 noisy at 0.47 every round, and
    label 99 at 0.05, then 0.9, 0.9 (a clean label the early adapter could not rank). Round 2: 20 means under
    0.5 (noise fraction 0.2 / 0.5 = 0.4), cut 0.65 (at 0.7 the clean labels make the expected noise 0.4 / 1):
    the 19 and label 99 (mean 0.475) are pruned. Round 3: label 99's last two rounds average 0.9 and it comes
    back; over all three rounds (0.617) or on round 2 alone it would be judged differently."""
    null = np.zeros(HISTOGRAM_BINS)
    null[8:12] = 1.0
    rounds = np.full((3, 100), 0.67, np.float32)
    rounds[:, 80:99] = 0.47
    rounds[:, 99] = [0.05, 0.9, 0.9]
    ledger = LabelLedger.empty(100)
    assert ledger.update(rounds[0], null, 0.8, prune_rounds=2) == 0 and not ledger.pruned.any()  # one round: no verdict
    assert ledger.update(rounds[1], null, 0.8, prune_rounds=2) == 0
    assert np.nonzero(ledger.pruned)[0].tolist() == list(range(80, 100))
    assert ledger.update(rounds[2], null, 0.8, prune_rounds=2) == 1  # taken back
    assert np.nonzero(ledger.pruned)[0].tolist() == list(range(80, 99)) and ledger.history.shape == (3, 100)
    restored = LabelLedger.from_arrays({k: Array(v).numpy() for k, v in ledger.to_arrays().items()})
    assert restored.pruned.tolist() == ledger.pruned.tolist() and restored.history.shape == (3, 100)
    older = {**ledger.to_arrays(), "tracked": np.zeros(100, bool), "streak": np.zeros(100, np.int64)}
    assert LabelLedger.from_arrays(older).pruned.tolist() == ledger.pruned.tolist()  # a file from the earlier rule


def test_consensus_pools_three_clients_decoy_histograms_by_each_bins_median_share():
    strategy = LabelConsensusFedAvg(nodes={p: 100 + p for p in range(3)}, fraction_evaluate=0.0)
    strategy.configure_train(1, ArrayRecord({"core": Array(np.zeros(1, np.float32))}), ConfigRecord({}),
                             Grid([100, 101, 102]))
    nulls = np.zeros((3, HISTOGRAM_BINS))
    nulls[0, [9, 10]] = [30, 30]  # shares 0.5, 0.5
    nulls[1, [9, 10, 14]] = [20, 20, 40]  # 0.25, 0.25, 0.5
    nulls[2, [5, 9, 10]] = [40, 40, 20]  # 0.4, 0.4, 0.2
    replies = [reply({"core": [1.0]}, 100, p) for p in range(3)]  # at least as many examples as labels counted
    for r, null in zip(replies, nulls):
        r.content["label-stats"] = ArrayRecord({NULL: Array(null)})
    strategy.aggregate_train(1, replies)
    # medians: bin 9 0.4, bin 10 0.25, bins 5 and 14 0 (one client each); shares 0.4 / 0.65 and 0.25 / 0.65
    # of the 240 decoys counted
    expected = np.zeros(HISTOGRAM_BINS)
    expected[[9, 10]] = [240 * 0.4 / 0.65, 240 * 0.25 / 0.65]
    np.testing.assert_allclose(strategy.consensus, expected, rtol=1e-12)
    assert strategy.consensus_history[1][0] == pytest.approx((0.475 * 0.4 + 0.525 * 0.25) / 0.65)  # bin centres
    # .npy payloads (128-byte header + data): three float32 [1] updates and three float64 [20] histograms
    assert strategy.round_stats[1]["bytes_received"] == 3 * (128 + 4) + 3 * (128 + 20 * 8)
    sent = strategy.configure_train(2, ArrayRecord({"core": Array(np.zeros(1, np.float32))}), ConfigRecord({}),
                                    Grid([100, 101, 102]))
    assert list(sent[0].content["config"]["label-consensus"]) == strategy.consensus
    assert strategy.round_stats[2]["bytes_sent"] - 3 * (128 + 4) == 3 * 20 * 8


def test_one_skewed_null_among_ten_does_not_move_a_clients_cut():
    rng = np.random.default_rng(0)
    evidence = np.concatenate([rng.beta(8, 3, size=150), rng.beta(5, 5, size=50)])  # 150 clean, 50 chance-level
    honest = [confidence_histogram(rng.beta(5, 5, size=200)) for _ in range(9)]  # decoys rank like chance
    skewed = np.zeros(HISTOGRAM_BINS)
    skewed[10] = 200  # well-formed (200 decoys), all piled in [0.5, 0.55)
    histogram = confidence_histogram(evidence)
    honest_cut = noise_cut(histogram, pool_nulls(honest), 0.8)
    assert honest_cut == noise_cut(histogram, sum(honest), 0.8) == 0.55
    assert noise_cut(histogram, pool_nulls(honest + [skewed]), 0.8) == honest_cut
    summed = noise_cut(histogram, sum(honest) + skewed, 0.8)  # what pooling by the sum let it do
    assert summed == 0.65 and (evidence < summed).sum() == 92 and (evidence < honest_cut).sum() == 50
    assert pool_nulls([np.zeros(HISTOGRAM_BINS)]).sum() == 0


def test_label_statistics_hold_no_sample_content():
    confidence = torch.tensor([[0.1, 0.8, 0.95, 0.4, 0.99, 0.7]])
    decoys = torch.tensor([[0.5, 0.2, 0.6, 0.3, 0.9, 0.1]])
    excluded = confidence[0] < 0.5
    federated = LABEL_POLICIES["federated"]
    report = close_label_round(LabelLedger.empty(6), confidence, decoys, excluded, federated, None, 0.8, 2)
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    permuted = close_label_round(LabelLedger.empty(6), confidence[:, perm], decoys[:, perm], excluded[perm], federated,
                                 None, 0.8, 2)
    bigger = close_label_round(LabelLedger.empty(12), confidence.repeat(1, 2), decoys.repeat(1, 2), excluded.repeat(2),
                               federated, None, 0.8, 2)
    assert set(report.statistics) == {NULL}  # the labels' own confidences stay on the client
    histogram = report.statistics[NULL]
    assert histogram.shape == (HISTOGRAM_BINS,) and histogram.sum() == 6
    # order-free and of fixed size: nothing in it can name, order or reconstruct a sample
    np.testing.assert_array_equal(permuted.statistics[NULL], histogram)
    assert bigger.statistics[NULL].shape == histogram.shape
    assert report.counts == {"excluded": 2, "pruned": 0, "reinstated": 0}  # what the scheme knows, no ground truth


def test_hard_clean_labels_are_kept_and_chance_level_ones_pruned():
    decoys = ((torch.arange(100) + 0.5) / 100).repeat(2, 1)  # chance: 5 decoys per bin
    hard = torch.full((2, 100), 0.97)
    hard[:, :10] = torch.tensor([[0.45], [0.75]])  # 10 clean but hard labels: excluded in epoch 1, 0.6 on average
    noisy = torch.full((2, 100), 0.97)
    noisy[:, :30] = (torch.arange(30) + 0.25) / 30  # 30 labels ranking like decoys: 15 under 0.5, the last at 0.975
    # hard: no label under 0.5 on average, noise fraction 0, cut 0; noisy: fraction 0.3 and cut 0.95, under
    # which lie the first 29 (one round of evidence: prune_rounds=1)
    for confidence, expected in ((hard, []), (noisy, list(range(29)))):
        ledger = LabelLedger.empty(100)
        report = close_label_round(ledger, confidence, decoys, (confidence < 0.5).any(0), LABEL_POLICIES["local"],
                                   None, 0.8, 1)
        assert np.nonzero(ledger.pruned)[0].tolist() == expected
        assert report.counts["excluded"] == (10 if confidence is hard else 15)


def test_noise_overlap_counts_excluded_and_pruned_noisy_labels():
    noisy = torch.tensor([True, False, True, True, False])
    excluded = torch.tensor([True, True, False, False, False])
    pruned = np.array([False, False, True, True, True])
    assert noise_overlap(noisy) == {"noisy": 3}  # before labels are scored
    assert noise_overlap(noisy, excluded, pruned) == {"noisy": 3, "excluded-noisy": 1, "pruned-noisy": 2}


def test_label_diagnostics_are_kept_apart_from_the_averaged_metrics_and_the_bytes():
    strategy = KeyedFedAvg(nodes={p: 100 + p for p in range(3)}, fraction_evaluate=0.0)
    strategy.configure_train(1, ArrayRecord({"core": Array(np.zeros(1, np.float32))}), ConfigRecord({}),
                             Grid([100, 101, 102]))
    replies = [reply({"core": [1.0]}, 10, p) for p in range(3)]
    replies[0].content["label-diagnostics"] = MetricRecord({"noisy": 4, "pruned-noisy": 2})
    replies[1].content["label-diagnostics"] = MetricRecord({"noisy": 2.5, "pruned-noisy": -1})  # not counts: dropped
    replies[2].content["label-diagnostics"] = ArrayRecord({"noisy": Array(np.ones(1))})  # not a MetricRecord: ignored
    _, metrics = strategy.aggregate_train(1, replies)
    assert not any("noisy" in key for key in metrics) and not any("noisy" in key for key in strategy.round_stats[1])
    assert strategy.round_stats[1]["bytes_received"] == 3 * (128 + 4)  # three float32 [1] .npy payloads, nothing else
    assert strategy.client_diagnostics[1] == {0: {"noisy": 4, "pruned-noisy": 2}, 1: {}}


def test_noise_injection_corrupts_exactly_the_requested_fraction_reproducibly():
    indices = np.arange(100, 140)
    for kind in ("swap", "foreign"):
        out = corrupt_annotations(indices, 0.25, kind, n_train=500, seed=3)
        corrupted = out != indices
        assert corrupted.sum() == 10
        np.testing.assert_array_equal(out, corrupt_annotations(indices, 0.25, kind, n_train=500, seed=3))
        assert not np.array_equal(out, corrupt_annotations(indices, 0.25, kind, n_train=500, seed=4))
        if kind == "swap":  # the corrupted rows exchange annotations among themselves
            assert sorted(out[corrupted]) == sorted(indices[corrupted])
        else:
            assert not np.isin(out[corrupted], indices).any()
    assert (corrupt_annotations(indices, 0.0, "swap", 500, 0) == indices).all()
    single = corrupt_annotations(indices[:5], 0.2, "swap", 500, 0)
    assert (single != indices[:5]).sum() == 1 and np.isin(single, indices[:5]).all()


def test_noise_groups_parse_and_reject_bad_specs():
    groups = parse_noise_groups("mild:0.2:0-4;severe:0.5:5,6,7-9", 10)
    assert [(g.name, g.rate, g.clients) for g in groups] == [("mild", 0.2, (0, 1, 2, 3, 4)),
                                                            ("severe", 0.5, (5, 6, 7, 8, 9))]
    cfg = load_config(label_noise="mild:0.2:0-2")
    assert cfg.noise_rate(1) == 0.2 and cfg.noise_rate(5) == 0.0
    assert cfg.label_groups() == {"mild": (0, 1, 2), "clean": tuple(range(3, 10)), "all": tuple(range(10))}
    for spec, message in [("mild:0.2", "name:rate:clients"), ("mild:1.5:0", "rate must be in"),
                          ("mild:0.2:0-3;severe:0.5:3", "out of range .* or already"), ("all:0.1:0", "reserved"),
                          ("mild:0.2:12", "out of range")]:
        with pytest.raises(ConfigError, match=message):
            load_config(label_noise=spec)
    with pytest.raises(ConfigError, match="label-handling"):
        load_config(label_handling="magic")
    assert load_config().label_diagnostics is False  # the injected-noise ground truth stays on the client
    with pytest.raises(ConfigError, match="label-diagnostics: expected bool"):
        load_config(label_diagnostics=1)


def test_group_label_metrics_hand_computed():
    clients = {0: {"label-excluded": 4, "label-pruned": 4, "label-reinstated": 2},
               1: {"label-excluded": 1, "label-pruned": 0, "label-reinstated": 1}}
    diagnostics = {0: {"pruned-noisy": 3, "noisy": 6}, 1: {"pruned-noisy": 0, "noisy": 0}}
    groups = {"severe": (0,), "all": (0, 1)}
    # label-diagnostics off: the counts the scheme knows, no score against the injected noise
    assert group_label_metrics(groups, clients) == {"excluded[severe]": 4, "pruned[severe]": 4, "reinstated[severe]": 2,
                                                    "excluded[all]": 5, "pruned[all]": 4, "reinstated[all]": 3}
    row = group_label_metrics(groups, clients, diagnostics)
    assert row["pruned[severe]"] == 4 and row["excluded[all]"] == 5 and row["reinstated[all]"] == 3
    assert row["precision[severe]"] == 0.75 and row["recall[severe]"] == 0.5
    assert row["f1[severe]"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert np.isnan(group_label_metrics({"none": (1,)}, clients, diagnostics)["precision[none]"])
