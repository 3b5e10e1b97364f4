"""Backbone pre-training on object crops (detector-adaptation 'backbone'): the crops by hand, what it trains,
its seed, and that it teaches the region features shape beyond the BatchNorm-adapted detector."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from semfed.config import ConfigError
from semfed.data.scenes import OBJECT_ATTRIBUTES, SceneSpec, generate_scenes
from semfed.encoders.attribute_pretraining import region_labels
from semfed.encoders.backbone_pretraining import object_crops, pretrain_backbone
from semfed.encoders.detector_adaptation import adapt_batchnorm
from semfed.encoders.regions import GEOMETRY_DIM, RegionEncoder
from tests.flower_runs import tiny_config

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_crop_is_a_window_of_the_largest_box_side_centred_on_its_box_with_the_edge_repeated():
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    boxes = [np.array([[2, 2, 5, 4], [0, 0, 1, 1]]), np.array([[5, 6, 8, 8]])]  # sides 3, 1, 3: window 3
    crops = object_crops(np.stack([image, image]), boxes, max_regions=2)
    assert crops.shape == (3, 3, 3, 3)
    np.testing.assert_array_equal(crops[0], image[2:5, 2:5])  # centre (3, 3): rows and columns 2..4
    np.testing.assert_array_equal(crops[1], image[np.ix_([0, 0, 1], [0, 0, 1])])  # centre (0, 0): row and column 0 repeated
    np.testing.assert_array_equal(crops[2], image[np.ix_([6, 7, 7], [5, 6, 7])])  # centre (6, 7): row 7 repeated
    assert len(object_crops(np.stack([image, image]), boxes, max_regions=1)) == 2


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(SceneSpec(seed=1, n_train=96, n_val=1, n_test=64, image_size=SIZE))


@pytest.fixture(scope="module")
def trained(scenes, one_torch_thread):
    train = scenes.splits["train"]
    return pretrain_backbone("frcnn-r50", SIZE, 0, train.images, train.boxes, train.objects, OBJECT_ATTRIBUTES,
                             max_regions=8, epochs=4, batch_size=32)


def test_backbone_pretraining_trains_the_backbone_and_fpn_only_and_is_seeded(scenes, trained):
    untrained = adapt_batchnorm("frcnn-r50", scenes.splits["train"].images[:1], SIZE, seed=0, weights=None)
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in trained if not torch.equal(trained[k], untrained[k])}
    assert changed == {"backbone.body", "backbone.fpn"}
    train = scenes.splits["train"]
    again, twice = (pretrain_backbone("frcnn-r50", SIZE, 0, train.images[:8], train.boxes[:8], train.objects[:8],
                                      OBJECT_ATTRIBUTES, max_regions=8, epochs=1) for _ in range(2))
    assert all(torch.equal(again[k], twice[k]) for k in again)


def _probe(weights: dict, scenes, folder) -> dict[str, float]:
    """Held-out accuracy per attribute of a logistic regression on the region features of the detector with
    `weights` after its BatchNorm statistics are re-estimated on the training images (box head untrained)."""
    path = folder / "weights.pt"
    torch.save(adapt_batchnorm("frcnn-r50", scenes.splits["train"].images, SIZE, seed=0, weights=weights), path)
    encoder = RegionEncoder("frcnn-r50", SIZE, 8, seed=0, weights_path=str(path))
    data = {}
    for split in ("train", "test"):
        s = scenes.splits[split]
        feats, mask = encoder.encode(s.images, s.boxes)
        data[split] = feats[mask][:, :-GEOMETRY_DIM].numpy(), region_labels(s.objects, OBJECT_ATTRIBUTES, 8).numpy()
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    return {name: float((LogisticRegression(max_iter=2000).fit(x_train, y_train[:, k]).predict(x_test)
                         == y_test[:, k]).mean()) for k, (name, _) in enumerate(OBJECT_ATTRIBUTES)}


def test_backbone_pretraining_lifts_the_probe_above_the_batchnorm_adapted_detector(scenes, trained, tmp_path):
    before, after = _probe(None, scenes, tmp_path), _probe(trained, scenes, tmp_path)
    # measured (96 training scenes of 64 px, 4 epochs): colour 0.856 -> 0.940, size 0.810 -> 0.880-0.903; shape
    # 0.278 -> 0.287 on the Intel Xeon, 0.282 -> 0.278 on the AMD EPYC: shape needs more (at the default's scale the
    # MobileNet probe goes 0.33 -> 0.80: docs/retrieval.md), so only colour and size are held to a lift here
    assert after["colour"] > before["colour"] + 0.04 and after["size"] > before["size"] + 0.04, (before, after)
    assert sum(after.values()) > sum(before.values()) + 0.1, (before, after)


def test_backbone_adaptation_is_refused_without_scene_attributes(tmp_path):
    with pytest.raises(ConfigError, match="'backbone' trains on the generated scenes' objects"):
        tiny_config(tmp_path, dataset="flickr30k", detector_adaptation="backbone")
