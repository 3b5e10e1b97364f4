"""The oracle encoders: the scenes' ground truth as region and token features."""

import numpy as np
import pytest
import torch

from semfed.config_values import ConfigError
from semfed.data.features import load_dataset, split_features
from semfed.data.scenes import COLOURS, OBJECT_ATTRIBUTES, SHAPES, SIZES
from semfed.encoders.oracle import OracleRegions, OracleTokens, word_list
from tests.flower_runs import tiny_config

S, C, Z = len(SHAPES), len(COLOURS), len(SIZES)


def test_a_region_is_its_one_hot_attributes_then_its_box_geometry():
    objects = [[{"shape": "star", "colour": "red", "size": "large"}, {"shape": "circle", "colour": "blue", "size": "small"},
                {"shape": "cross", "colour": "red", "size": "small"}], []]
    boxes = [np.array([[0, 0, 32, 64], [16, 16, 48, 32], [0, 0, 8, 8]]), np.zeros((0, 4))]
    feats, mask = OracleRegions(2, OBJECT_ATTRIBUTES).encode(objects, boxes, image_side=64)
    assert feats.shape == (2, 2, S + C + Z + 5) and mask.tolist() == [[True, True], [False, False]]  # the cross is cut
    first = torch.zeros(S + C + Z + 5)
    first[[SHAPES.index("star"), S + COLOURS.index("red"), S + C + SIZES.index("large")]] = 1
    first[S + C + Z:] = torch.tensor([0, 0, 0.5, 1, 0.5])  # x1/W, y1/H, x2/W, y2/H, area/(W*H)
    assert torch.equal(feats[0, 0], first)
    assert feats[0, 1, S + COLOURS.index("blue")] == 1 and feats[0, 1, S + C + Z + 4] == 32 * 16 / 64 ** 2
    assert not feats[1].any()


def test_a_token_is_its_words_one_hot_identity():
    vocabulary = word_list(["A red star.", "a big star"])
    assert vocabulary == ("a", "big", "red", "star")
    feats, mask = OracleTokens(vocabulary, max_tokens=4).encode(["A red star, a big star", "one red"])
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert feats[0].argmax(dim=1).tolist() == [0, 2, 3, 0] and (feats[0].sum(dim=1) == 1).all()
    assert not feats[1, 0].any() and feats[1, 1, 2] == 1  # 'one' is not in the training words: zero, but a token


def test_oracle_features_of_generated_scenes_hold_exactly_the_generators_attributes(tmp_path):
    cfg = tiny_config(tmp_path, clients="oracle-image+oracle-text:1")
    scenes = load_dataset(cfg)
    split = scenes.splits["test"]
    regions = split_features(cfg, scenes, "oracle-image", "test")
    for i, objects in enumerate(split.objects):
        n = min(len(objects), cfg.max_regions)
        assert regions["mask"][i].tolist() == [True] * n + [False] * (cfg.max_regions - n)
        f = regions["feats"][i, :n].float()
        assert f[:, :S].argmax(1).tolist() == [SHAPES.index(o["shape"]) for o in objects[:n]]
        assert f[:, S:S + C].argmax(1).tolist() == [COLOURS.index(o["colour"]) for o in objects[:n]]
        assert f[:, S + C:S + C + Z].argmax(1).tolist() == [SIZES.index(o["size"]) for o in objects[:n]]
    tokens = split_features(cfg, scenes, "oracle-text", "test")
    vocabulary = word_list(scenes.splits["train"].flat_captions())
    caption = split.flat_captions()[7]
    words = [vocabulary[j] for j in tokens["feats"][7][tokens["mask"][7]].float().argmax(1).tolist()]
    assert words == "".join(ch if ch.isalpha() else " " for ch in caption.lower()).split()[:cfg.max_tokens]


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "flickr30k", "clients": "oracle-image+minilm"}, "read the ground truth of the generated scenes"),
    ({"skb_encoder": "oracle-text"}, "has no sentence embedding"),
])
def test_oracle_encoders_are_refused_where_there_is_no_ground_truth(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, **changes)
