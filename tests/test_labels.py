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
from semfed.retrieval.labels import (HISTOGRAM_BINS, LabelLedger, close_label_round, confidence_histogram,
                                     fit_noise_mixture, group_label_metrics, noise_overlap, rank_confidence)
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg
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


def test_noise_mixture_cut_splits_two_modes_and_falls_back_without_a_noise_mode():
    histogram = np.zeros(HISTOGRAM_BINS)
    histogram[[4, 15]] = 50  # equal modes at bin centres 0.225 and 0.775: the cut is their midpoint
    mixture = fit_noise_mixture(histogram[None])
    assert mixture.noise_mean == pytest.approx(0.225) and mixture.clean_mean[0] == pytest.approx(0.775)
    assert mixture.cut(0, fallback=0.3) == pytest.approx(0.5, abs=1e-3)
    unimodal = np.zeros(HISTOGRAM_BINS)
    unimodal[[18, 19]] = [40, 60]
    assert fit_noise_mixture(unimodal[None]).cut(0, fallback=0.3) == 0.3
    assert fit_noise_mixture(histogram[None] / 20).cut(0, fallback=0.3) == 0.3  # 5 labels: too few to say


def test_a_fixed_noise_component_moves_a_clients_cut():
    histogram = np.zeros(HISTOGRAM_BINS)
    histogram[[6, 7, 16, 17, 18]] = [10, 10, 30, 40, 30]
    own = fit_noise_mixture(histogram[None])
    held = fit_noise_mixture(histogram[None], noise=(0.5, 0.2))
    assert held.noise_mean == 0.5 and held.noise_std == 0.2  # the consensus is applied, not re-fitted
    assert own.noise_mean == pytest.approx(0.35, abs=0.02)
    assert own.cut(0, 0.5) != pytest.approx(held.cut(0, 0.5), abs=0.01)
    assert held.noise_mean < held.cut(0, 0.5) < held.clean_mean[0]


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
    monkeypatch.setattr(training, "batch_confidence", lambda model, shard, idx, caption, device: next(epoch_confidence)[idx])
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
    assert not local.excluded[3]  # pruned labels are out for good, not counted as excluded


def test_a_label_is_pruned_only_after_the_configured_persistence():
    ledger = LabelLedger.empty(3)
    low = np.array([True, False, False])
    conf = np.array([0.2, 0.9, 0.9], np.float32)
    for _ in range(2):
        ledger.update(conf, excluded=low, inconsistent=low, prune_rounds=3)
    assert ledger.tracked.tolist() == [True, False, False] and ledger.streak.tolist() == [2, 0, 0]
    ledger.update(conf, excluded=np.zeros(3, bool), inconsistent=np.zeros(3, bool), prune_rounds=3)  # recovers once
    assert ledger.streak[0] == 0 and not ledger.pruned.any() and not ledger.tracked[0]
    for expected_pruned in (False, False, True):
        ledger.update(conf, excluded=low, inconsistent=low, prune_rounds=3)
        assert ledger.pruned[0] == expected_pruned
    assert ledger.pruned.tolist() == [True, False, False] and not ledger.tracked[0]
    assert ledger.history.shape == (6, 3)
    restored = LabelLedger.from_arrays({k: Array(v).numpy() for k, v in ledger.to_arrays().items()})
    assert restored.pruned.tolist() == ledger.pruned.tolist() and restored.history.shape == (6, 3)


def test_consensus_is_aggregated_from_three_clients_statistics():
    strategy = LabelConsensusFedAvg(nodes={p: 100 + p for p in range(3)}, fraction_evaluate=0.0)
    strategy.configure_train(1, ArrayRecord({"core": Array(np.zeros(1, np.float32))}), ConfigRecord({}),
                             Grid([100, 101, 102]))
    histograms = np.zeros((3, HISTOGRAM_BINS))
    histograms[0, [19, 9]] = [50, 10]  # clean labels near 1, noise around 0.5 in every client
    histograms[1, [15, 10]] = [40, 10]  # a weaker encoder: its clean labels rank lower
    histograms[2, [19, 8]] = [30, 10]
    replies = [reply({"core": [1.0]}, 60, p) for p in range(3)]  # at least as many examples as labels counted
    for r, h in zip(replies, histograms):
        r.content["label-stats"] = ArrayRecord({"confidence-histogram": Array(h)})
    strategy.aggregate_train(1, replies)
    joint = fit_noise_mixture(histograms)
    assert strategy.consensus == (joint.noise_mean, joint.noise_std)
    # one noise mode for all: the count-weighted mean of the three low bins' centres
    assert strategy.consensus[0] == pytest.approx((0.475 + 0.525 + 0.425) / 3, abs=1e-3)
    np.testing.assert_allclose(joint.clean_mean, [0.975, 0.775, 0.975], atol=1e-3)
    # .npy payloads (128-byte header + data): three float32 [1] updates and three float64 [20] histograms
    assert strategy.round_stats[1]["bytes_received"] == 3 * (128 + 4) + 3 * (128 + 20 * 8)


def test_label_statistics_hold_no_sample_content():
    confidence = torch.tensor([[0.1, 0.8, 0.95, 0.4, 0.99, 0.7]])
    excluded = confidence[0] < 0.5
    report = close_label_round(LabelLedger.empty(6), confidence, excluded, LABEL_POLICIES["federated"], None, 0.5, 2)
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    permuted = close_label_round(LabelLedger.empty(6), confidence[:, perm], excluded[perm], LABEL_POLICIES["federated"], None, 0.5, 2)
    bigger = close_label_round(LabelLedger.empty(12), confidence.repeat(1, 2), excluded.repeat(2), LABEL_POLICIES["federated"], None,
                               0.5, 2)
    assert set(report.statistics) == {"confidence-histogram"}
    histogram = report.statistics["confidence-histogram"]
    assert histogram.shape == (HISTOGRAM_BINS,) and histogram.sum() == 6
    # order-free and of fixed size: nothing in it can name, order or reconstruct a sample
    np.testing.assert_array_equal(permuted.statistics["confidence-histogram"], histogram)
    assert bigger.statistics["confidence-histogram"].shape == histogram.shape
    assert report.counts == {"excluded": 2, "tracked": 2, "pruned": 0}  # what the scheme knows, no ground truth


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
    clients = {0: {"label-excluded": 4, "label-tracked": 3, "label-pruned": 4},
               1: {"label-excluded": 1, "label-tracked": 0, "label-pruned": 0}}
    diagnostics = {0: {"pruned-noisy": 3, "noisy": 6}, 1: {"pruned-noisy": 0, "noisy": 0}}
    groups = {"severe": (0,), "all": (0, 1)}
    # label-diagnostics off: the counts the scheme knows, no score against the injected noise
    assert group_label_metrics(groups, clients) == {"excluded[severe]": 4, "tracked[severe]": 3, "pruned[severe]": 4,
                                                    "excluded[all]": 5, "tracked[all]": 3, "pruned[all]": 4}
    row = group_label_metrics(groups, clients, diagnostics)
    assert row["pruned[severe]"] == 4 and row["excluded[all]"] == 5 and row["tracked[all]"] == 3
    assert row["precision[severe]"] == 0.75 and row["recall[severe]"] == 0.5
    assert row["f1[severe]"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert np.isnan(group_label_metrics({"none": (1,)}, clients, diagnostics)["precision[none]"])
