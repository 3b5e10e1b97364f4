"""Region features from prediction heads fitted on frozen box-head features, and the stem the detectors share."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from semfed.config import ConfigError
from semfed.data.features import load_dataset, region_spec, split_features
from semfed.encoders.prediction_heads import fit_prediction_heads, predicted_regions
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.participants import PREDICTIONS_STEM, shared_stems
from tests.flower_runs import in_process, tiny_config


def _softmax(heads, k, x):
    return torch.softmax(x @ heads[f"{k}.weight"].T + heads[f"{k}.bias"], dim=-1)


def test_fitted_heads_give_the_standardised_regressions_probabilities():
    rng = np.random.default_rng(0)
    shape = np.arange(60) % 3  # values 0-2 of 4: value 3 is absent
    x = rng.normal(size=(60, 3)) + np.eye(3)[shape]  # overlapping classes
    x = torch.from_numpy(x * [10.0, 0.5, 2.0] + [5.0, -3.0, 0.0])  # far from standardised
    labels = torch.stack([torch.from_numpy(shape), (x[:, 0] > 5).long(), torch.zeros(60, dtype=torch.long)], dim=1)
    heads = fit_prediction_heads(x, labels, (4, 2, 2))
    assert [tuple(heads[f"{k}.weight"].shape) for k in range(3)] == [(4, 3), (2, 3), (2, 3)]
    for k, present in ((0, [0, 1, 2]), (1, [0, 1])):
        reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x.numpy(), labels[:, k])
        probabilities = _softmax(heads, k, x.float())
        torch.testing.assert_close(probabilities[:, present], torch.from_numpy(reference.predict_proba(x.numpy())).float(),
                                   atol=1e-5, rtol=0)
    assert _softmax(heads, 0, x.float())[:, 3].max() < 1e-30  # the value no region has
    assert torch.equal(_softmax(heads, 2, x.float()), torch.tensor([[1.0, 0.0]]).expand(60, 2))


def test_fitting_refuses_labels_outside_the_values():
    with pytest.raises(ValueError, match=r"attribute 1: labels must lie in \[0, 2\), got 0..2"):
        fit_prediction_heads(torch.zeros(3, 4), torch.tensor([[0, 0], [1, 1], [0, 2]]), (2, 2))


def test_predicted_regions_by_hand():
    feats = torch.zeros(1, 3, 2 + 5, dtype=torch.float16)
    feats[0, 0, :2] = torch.tensor([float(np.log(2.0)), 0.0])
    feats[0, 1, :2] = torch.tensor([3.0, 4.0])
    feats[0, 0, 2:] = feats[0, 1, 2:] = torch.tensor([0.1, 0.2, 0.5, 0.6, 0.16])
    feats[0, 2] = 7.0  # padding: whatever it holds gives zeros
    mask = torch.tensor([[True, True, False]])
    heads = {"0.weight": torch.eye(2), "0.bias": torch.zeros(2)}
    out = predicted_regions({"feats": feats, "mask": mask}, heads, keep_box_head=False)
    geometry = [0.1, 0.2, 0.5, 0.6, 0.16]
    expected = torch.tensor([[[2 / 3, 1 / 3, *geometry], [1 / (1 + np.exp(1)), 1 / (1 + np.exp(-1)), *geometry],
                              [0.0] * 7]])
    assert out["feats"].dtype == torch.float16 and torch.equal(out["mask"], mask)
    torch.testing.assert_close(out["feats"].float(), expected.float(), atol=2e-3, rtol=0)
    both = predicted_regions({"feats": feats, "mask": mask}, heads, keep_box_head=True)["feats"].float()
    torch.testing.assert_close(both[0, 1, :2], torch.tensor([0.6, 0.8]), atol=1e-3, rtol=0)  # (3, 4), unit length
    torch.testing.assert_close(both[0, :, 2:], expected[0].float(), atol=2e-3, rtol=0)


def test_prediction_features_are_the_fitted_heads_over_the_cached_box_head_features(tmp_path):
    cfg = tiny_config(tmp_path, region_features="predictions")
    scenes = load_dataset(cfg)
    box_head = split_features(cfg.replace(region_features="box-head"), scenes, "frcnn-mnv3", "test")
    heads = torch.load(region_spec(cfg, scenes, "frcnn-mnv3")["heads_path"], weights_only=True)
    predictions = split_features(cfg, scenes, "frcnn-mnv3", "test")
    assert predictions["feats"].shape[-1] == 6 + 7 + 2 + 5
    expected = predicted_regions(box_head, heads, keep_box_head=False)
    assert torch.equal(predictions["feats"], expected["feats"]) and torch.equal(predictions["mask"], box_head["mask"])


def test_predictions_are_refused_without_the_scenes_labels(tmp_path):
    with pytest.raises(ConfigError, match="region-features: 'predictions' holds the detector's object"):
        tiny_config(tmp_path, dataset="flickr30k", region_features="predictions")


def test_the_detectors_share_one_stem_only_for_predictions_alone(tmp_path):
    encoders = ("frcnn-mnv3", "frcnn-r50", "minilm")
    cfg = tiny_config(tmp_path)
    assert shared_stems(cfg.replace(region_features="predictions"), encoders) == {
        "frcnn-mnv3": PREDICTIONS_STEM, "frcnn-r50": PREDICTIONS_STEM}
    assert shared_stems(cfg.replace(region_features="box-head+predictions"), encoders) == {}
    assert shared_stems(cfg, encoders) == {}


def test_a_shared_stem_serves_both_detectors():
    concepts = F.normalize(torch.randn(7, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    dims = {"frcnn-mnv3": 20, "frcnn-r50": 20, "minilm": 10}
    shared = GraphAdapter(dims, concepts, width=32, shared_stems={"frcnn-mnv3": "p", "frcnn-r50": "p"})
    own = GraphAdapter(dims, concepts, width=32)
    assert sorted(shared.stems) == ["minilm", "p"] and sorted(own.stems) == ["frcnn_mnv3", "frcnn_r50", "minilm"]
    feats, mask = torch.randn(2, 3, 20), torch.ones(2, 3, dtype=torch.bool)
    assert torch.equal(shared(feats, mask, "frcnn-mnv3")[1], shared(feats, mask, "frcnn-r50")[1])
    assert not torch.equal(own(feats, mask, "frcnn-mnv3")[1], own(feats, mask, "frcnn-r50")[1])
    with pytest.raises(ValueError, match="encoders sharing stem 'p' differ in width: frcnn-r50 gives 21"):
        GraphAdapter({**dims, "frcnn-r50": 21}, concepts, width=32, shared_stems={"frcnn-mnv3": "p", "frcnn-r50": "p"})


def test_a_federation_on_predictions_trains_the_shared_stem(tmp_path):
    run = in_process(tmp_path, "run-name='predictions' num-server-rounds=1 region-features='predictions' "
                     "clients='frcnn-mnv3+minilm:1;frcnn-r50+minilm:1;frcnn-r50:1;minilm:1' "
                     "scenes-train=48 scenes-val=4 scenes-test=12 batch-size=16 max-regions=4 "
                     "detector-adaptation='batchnorm' partitioning='iid'")
    stems = {k.split(".")[1] for k in torch.load(run / "checkpoint.pt", weights_only=True)["adapter"]
             if k.startswith("stems.")}
    assert stems == {"region_predictions", "minilm"}
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"rsum[frcnn-mnv3+minilm]", "rsum[frcnn-r50+minilm]"} <= set(header)
