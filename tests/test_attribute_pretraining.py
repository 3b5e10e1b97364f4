import pytest
import torch
from sklearn.linear_model import LogisticRegression

from semfed.config import ConfigError
from semfed.data.features import feature_dir, load_dataset, region_spec
from semfed.data.scenes import OBJECT_ATTRIBUTES, SceneSpec, generate_scenes
from semfed.encoders.attribute_pretraining import pretrain_box_head, region_labels
from semfed.encoders.detector_adaptation import adapt_batchnorm
from semfed.encoders.feature_cache import encode_images, feature_key
from semfed.encoders.prediction_heads import fit_prediction_heads, predicted_regions
from semfed.encoders.regions import GEOMETRY_DIM, RegionEncoder
from tests.flower_runs import tiny_config

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # in the suite, on default threads, setup took 145 s (17 s alone)


def test_region_labels_index_each_attribute_per_kept_object():
    attributes = (("shape", ("circle", "star")), ("colour", ("red", "blue", "green")))
    objects = [[{"shape": "star", "colour": "green"}, {"shape": "circle", "colour": "red"}],
               [{"shape": "circle", "colour": "blue"}]]
    assert region_labels(objects, attributes, max_regions=2).tolist() == [[1, 2], [0, 0], [0, 1]]
    assert region_labels(objects, attributes, max_regions=1).tolist() == [[1, 2], [0, 1]]


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(SceneSpec(seed=1, n_train=96, n_val=1, n_test=64, image_size=SIZE))


@pytest.fixture(scope="module")
def detectors(scenes, tmp_path_factory, one_torch_thread):
    """(BatchNorm-adapted weights file, pre-trained weights file, the state dicts) of a ResNet-50 detector."""
    folder = tmp_path_factory.mktemp("detectors")
    train = scenes.splits["train"]
    adapted = adapt_batchnorm("frcnn-r50", train.images, SIZE, seed=0)
    torch.save(adapted, folder / "adapted.pt")
    encoder = RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(folder / "adapted.pt"))
    pretrained, features = pretrain_box_head(encoder, train.images, train.boxes, train.objects, OBJECT_ATTRIBUTES,
                                             seed=0, epochs=6, batch_size=32, lr=1e-3)
    torch.save(pretrained, folder / "pretrained.pt")
    return folder / "adapted.pt", folder / "pretrained.pt", adapted, pretrained, features


def test_pretraining_changes_only_the_box_head_and_object_classifier(detectors):
    _, _, adapted, pretrained, _ = detectors
    changed = {k for k in adapted if not torch.equal(adapted[k], pretrained[k])}
    trained = {k for k in adapted if k.startswith(("roi_heads.box_head.", "roi_heads.box_predictor.cls_score."))}
    assert changed == trained  # backbone, RPN, BatchNorm statistics and box regression untouched


def test_pretraining_is_seeded(scenes, detectors):
    adapted_path, _, _, pretrained, _ = detectors
    train = scenes.splits["train"]
    again, _ = pretrain_box_head(RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(adapted_path)),
                              train.images[:32], train.boxes[:32], train.objects[:32], OBJECT_ATTRIBUTES,
                              seed=0, epochs=1)
    twice, _ = pretrain_box_head(RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(adapted_path)),
                              train.images[:32], train.boxes[:32], train.objects[:32], OBJECT_ATTRIBUTES,
                              seed=0, epochs=1)
    assert all(torch.equal(again[k], twice[k]) for k in again)
    assert not torch.equal(again["roi_heads.box_head.fc7.weight"], pretrained["roi_heads.box_head.fc7.weight"])


def test_the_training_features_that_come_with_pretraining_are_the_encoders_exactly(scenes, detectors):
    _, pretrained_path, _, _, features = detectors
    train = scenes.splits["train"]
    encoder = RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(pretrained_path))
    again = encode_images(encoder, train.images, train.boxes)
    assert torch.equal(features["mask"], again["mask"]) and torch.equal(features["feats"], again["feats"])


def test_fitted_prediction_heads_know_held_out_regions_of_the_pretrained_detector(tmp_path, scenes, detectors):
    _, pretrained_path, _, _, train_features = detectors
    x = train_features["feats"][train_features["mask"]][:, :-GEOMETRY_DIM]
    labels = region_labels(scenes.splits["train"].objects, OBJECT_ATTRIBUTES, 8)
    heads = fit_prediction_heads(x, labels, tuple(len(values) for _, values in OBJECT_ATTRIBUTES))
    test = scenes.splits["test"]
    box_head = encode_images(RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(pretrained_path)),
                             test.images, test.boxes)
    rows = predicted_regions(box_head, heads, keep_box_head=False)["feats"][box_head["mask"]].float()
    # the most probable colour and size are right far above the most frequent value's share
    # (measured: colour 0.93 against 0.18, size 0.88 against 0.50, on 216 held-out regions)
    labels = region_labels(test.objects, OBJECT_ATTRIBUTES, 8)
    for (lo, hi), k in (((6, 13), 1), ((13, 15), 2)):
        chance = labels[:, k].bincount().max().item() / len(labels)
        assert (rows[:, lo:hi].argmax(1) == labels[:, k]).float().mean() > chance + 0.2, k


def _probe_accuracy(weights, scenes) -> dict[str, float]:
    """Held-out accuracy per attribute of a logistic regression on the detector's box-head features."""
    encoder = RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(weights))
    data = {}
    for split in ("train", "test"):
        s = scenes.splits[split]
        feats, mask = encoder.encode(s.images, s.boxes)
        x = feats[mask][:, :-GEOMETRY_DIM].numpy()
        labels = region_labels(s.objects, OBJECT_ATTRIBUTES, 8).numpy()
        data[split] = x, labels
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    return {name: float((LogisticRegression(max_iter=2000).fit(x_train, y_train[:, k]).predict(x_test)
                         == y_test[:, k]).mean()) for k, (name, _) in enumerate(OBJECT_ATTRIBUTES)}


def test_attribute_pretraining_lifts_the_probe_above_the_adapted_detector(scenes, detectors):
    adapted_path, pretrained_path, _, _, _ = detectors
    before, after = _probe_accuracy(adapted_path, scenes), _probe_accuracy(pretrained_path, scenes)
    # measured (216 held-out regions): colour 0.85 -> 0.93, size 0.81 -> 0.86-0.90; shape 0.27 -> 0.30 on the Intel
    # Xeon, 0.28 -> 0.27 on the AMD EPYC: at this budget shape moves by a few regions either way, so only colour
    # and size are held to a lift
    assert after["colour"] > before["colour"] + 0.04 and after["size"] > before["size"] + 0.04, (before, after)
    assert sum(after.values()) > sum(before.values()) + 0.1, (before, after)


def test_attribute_pretraining_is_refused_without_scene_attributes(tmp_path):
    with pytest.raises(ConfigError, match="'attributes' trains on the generated scenes' objects"):
        tiny_config(tmp_path, dataset="flickr30k", detector_adaptation="attributes")


def test_attributes_adaptation_leaves_the_training_features_it_computed_in_the_cache(tmp_path):
    cfg = tiny_config(tmp_path / "shared").replace(work_dir=str(tmp_path / "own"), detector_adaptation="attributes",
                                                    frcnn_mnv3_input_size=64)
    scenes = load_dataset(cfg)
    spec = region_spec(cfg, scenes, "frcnn-mnv3")
    cached = feature_dir(cfg) / f"{feature_key(spec, scenes.fingerprint, 'train')}.pt"
    assert [p.name for p in feature_dir(cfg).glob("*.pt")] == [cached.name]  # written by the pre-training alone
    train = scenes.splits["train"]
    encoder = RegionEncoder(**{k: v for k, v in spec.items() if k != "kind"})
    again = encode_images(encoder, train.images, train.boxes)
    features = torch.load(cached, weights_only=True)
    assert torch.equal(features["feats"], again["feats"]) and torch.equal(features["mask"], again["mask"])
