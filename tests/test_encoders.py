"""Frozen region/token encoders and the on-disk feature cache."""

import logging

import numpy as np
import pytest
import torch

from semfed.config_values import encoder_names
from semfed.encoders import (
    RegionEncoder,
    TokenEncoder,
    cached_features,
    encode_images,
    encode_texts,
    feature_key,
)
from semfed.encoders.tokens import resolve_model_dir

SIZE = 64
MAX_REGIONS = 4
BOXES = [
    np.array([[0, 0, 32, 32], [10, 5, 60, 40]], dtype=np.float32),
    np.zeros((0, 4), dtype=np.float32),
    np.array([[1, 2, 3, 4], [8, 8, 40, 24], [0, 0, 64, 64], [5, 6, 7, 9], [2, 2, 9, 9], [3, 3, 4, 4]], np.float32),
]
TEXTS = ["a cat on a mat", "supercalifragilistic expialidocious words here and there again", ""]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def mnv3():
    return RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=1)


@pytest.fixture(scope="module")
def r50():
    return RegionEncoder("frcnn-r50", SIZE, MAX_REGIONS, seed=0)


@pytest.fixture(scope="module")
def minilm():
    return TokenEncoder("minilm", max_tokens=8)


def test_region_shapes_masks_padding_and_geometry(mnv3, images):
    feats, mask = mnv3.encode(images, BOXES)
    assert mnv3.out_dim == 1024 + 5
    assert feats.shape == (3, MAX_REGIONS, 1029) and feats.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, False, False], [False] * 4, [True] * 4]
    assert torch.all(feats[~mask] == 0)
    assert torch.all(feats[mask][:, :1024].abs().sum(-1) > 0)
    expected = [
        [0 / 64, 0 / 64, 32 / 64, 32 / 64, 32 * 32 / 64**2],
        [10 / 64, 5 / 64, 60 / 64, 40 / 64, 50 * 35 / 64**2],
    ]
    torch.testing.assert_close(feats[0, :2, 1024:], torch.tensor(expected), rtol=0, atol=1e-7)
    torch.testing.assert_close(feats[2, 2, 1024:], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]), rtol=0, atol=0)


def test_region_geometry_uses_original_size_when_image_is_resized(images):
    encoder = RegionEncoder("frcnn-mnv3", 32, 2, seed=1)
    feats, _ = encoder.encode(images[:1], [np.array([[16, 0, 48, 64]])])
    torch.testing.assert_close(feats[0, 0, 1024:], torch.tensor([0.25, 0.0, 0.75, 1.0, 0.5]))


def test_r50_shapes_and_box_dependence(r50, images):
    feats, mask = r50.encode(images, BOXES)
    assert feats.shape == (3, MAX_REGIONS, 1029) and r50.out_dim == 1029
    assert mask.sum(1).tolist() == [2, 0, 4]
    assert torch.all(feats[~mask] == 0)
    assert not torch.allclose(feats[0, 0, :1024], feats[0, 1, :1024])
    alone, _ = r50.encode(images[:1], [BOXES[0][1:]])  # a box's feature ignores the other boxes
    torch.testing.assert_close(alone[0, 0], feats[0, 1], rtol=1e-4, atol=1e-4)


def test_proposals_source_matches_boxes_source_on_same_boxes(r50, images):
    proposals = RegionEncoder("frcnn-r50", SIZE, MAX_REGIONS, seed=0, source="proposals")
    feats, mask = proposals.encode(images, None)
    assert feats.shape == (3, MAX_REGIONS, 1029) and mask.all()
    geometry = feats[..., 1024:]
    assert torch.all((geometry >= 0) & (geometry <= 1))
    assert torch.all(geometry[..., 2] >= geometry[..., 0]) and torch.all(geometry[..., 3] >= geometry[..., 1])
    boxes = [(g[:, :4] * SIZE).numpy() for g in geometry]
    again, _ = r50.encode(images, boxes)
    torch.testing.assert_close(again, feats, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("source", ["boxes", "proposals"])
def test_region_encoder_is_frozen(source, images):
    encoder = RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=1, source=source)
    params = dict(encoder.model.named_parameters())
    assert params and not any(p.requires_grad for p in params.values())
    assert not encoder.model.training
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}  # parameters and BN buffers
    for _ in range(2):
        feats, _ = encoder.encode(images, BOXES)
    after = encoder.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not feats.requires_grad and feats.grad_fn is None


def test_region_seed_reproducibility(mnv3, images):
    rng_state = torch.get_rng_state()
    same = RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=1)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG untouched
    other = RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=2)
    reference = mnv3.encode(images, BOXES)[0]
    assert torch.equal(same.encode(images, BOXES)[0], reference)
    assert not torch.allclose(other.encode(images, BOXES)[0], reference)


def test_weights_path_round_trip_and_errors(mnv3, images, tmp_path):
    path = tmp_path / "mnv3_seed1.pt"
    torch.save(mnv3.model.state_dict(), path)
    loaded = RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=2, weights_path=str(path))
    assert torch.equal(loaded.encode(images, BOXES)[0], mnv3.encode(images, BOXES)[0])

    missing = tmp_path / "missing.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=2, weights_path=str(missing))
    wrong = tmp_path / "wrong.pt"
    torch.save({"not.a.layer": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=str(wrong)):
        RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=2, weights_path=str(wrong))


def test_region_encoder_argument_errors(mnv3, images):
    with pytest.raises(ValueError, match="frcnn-mnv3") as err:
        RegionEncoder("yolo", SIZE, MAX_REGIONS, seed=0)
    assert all(name in str(err.value) for name in encoder_names(lambda e: e.is_detector))
    with pytest.raises(ValueError, match="proposals"):
        RegionEncoder("frcnn-mnv3", SIZE, MAX_REGIONS, seed=0, source="grid")
    with pytest.raises(ValueError, match="box array"):
        mnv3.encode(images, None)


def test_token_encoder_word_pieces(minilm):
    feats, mask = minilm.encode(TEXTS)
    assert minilm.out_dim == 384
    assert feats.shape == (3, 8, 384) and feats.dtype == torch.float32 and mask.dtype == torch.bool
    pieces = [minilm.tokenizer.tokenize(t) for t in TEXTS]
    assert len(pieces[0]) == 5 and len(pieces[1]) > 8 and pieces[2] == []  # text 1 gets truncated
    assert mask.sum(1).tolist() == [min(len(p), 8) for p in pieces]
    assert torch.all(mask[:, :-1] >= mask[:, 1:])  # real tokens first
    assert torch.all(feats[~mask] == 0)
    assert not feats.requires_grad and not any(p.requires_grad for p in minilm.model.parameters())
    with torch.no_grad():
        ids = minilm.tokenizer(TEXTS[0], return_tensors="pt")
        hidden = minilm.model(**ids).last_hidden_state[0]
    torch.testing.assert_close(feats[0, :5], hidden[1:-1], rtol=1e-4, atol=1e-5)


def test_sentence_embedding_is_normalised_mean_pooling(minilm):
    emb = minilm.sentence_embedding(TEXTS[:2])
    assert emb.shape == (2, 384)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    for text, row in zip(TEXTS[:2], emb):
        with torch.no_grad():
            hidden = minilm.model(**minilm.tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        manual = hidden.mean(0)
        torch.testing.assert_close(row, manual / manual.norm(), rtol=1e-4, atol=1e-5)
    cat, kitten, car = minilm.sentence_embedding(["a cat", "a kitten", "a truck engine"])
    assert cat @ kitten > cat @ car


def test_token_encoder_local_dir_and_errors(minilm):
    model_dir = resolve_model_dir("minilm")
    local = TokenEncoder(f"hf@{model_dir}", max_tokens=8)
    assert torch.equal(local.encode(TEXTS)[0], minilm.encode(TEXTS)[0])
    with pytest.raises(FileNotFoundError, match="/nonexistent"):
        TokenEncoder("hf@/nonexistent", max_tokens=8)
    with pytest.raises(ValueError, match="allowed"):
        TokenEncoder("gpt", max_tokens=8)


def test_cached_features_computes_once(tmp_path, caplog):
    calls = []

    def compute():
        calls.append(1)
        return {"feats": torch.randn(5, 3, 7).half(), "mask": torch.rand(5, 3) > 0.5}

    with caplog.at_level(logging.DEBUG, logger="semfed.encoders"):
        first = cached_features(tmp_path / "cache", "abc", compute)
        second = cached_features(tmp_path / "cache", "abc", compute)
    assert len(calls) == 1
    assert set(second) == {"feats", "mask"}
    assert all(torch.equal(first[k], second[k]) and first[k].dtype == second[k].dtype for k in first)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["abc.pt"]  # no temp files left
    assert "miss" in caplog.text and "hit" in caplog.text


def test_feature_key_depends_on_every_input(tmp_path):
    spec = {"name": "frcnn-mnv3", "image_size": 64, "seed": 0, "weights_path": ""}
    key = feature_key(spec, "fp1", "train")
    assert len(key) == 20 and set(key) <= set("0123456789abcdef")
    assert feature_key(dict(reversed(spec.items())), "fp1", "train") == key
    assert feature_key({**spec, "seed": 1}, "fp1", "train") != key
    assert feature_key(spec, "fp2", "train") != key
    assert feature_key(spec, "fp1", "test") != key

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"version 1")
    with_weights = {**spec, "weights_path": str(weights)}
    key_v1 = feature_key(with_weights, "fp1", "train")
    assert key_v1 != key
    copy = tmp_path / "elsewhere" / "w.pt"
    copy.parent.mkdir()
    copy.write_bytes(b"version 1")
    assert feature_key({**spec, "weights_path": str(copy)}, "fp1", "train") == key_v1  # same bytes, other path
    weights.write_bytes(b"version 2")
    assert feature_key(with_weights, "fp1", "train") != key_v1

    model_dir = tmp_path / "bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (model_dir / "model.safetensors").write_bytes(b"a")
    text_spec = {"kind": "tokens", "name": f"hf@{model_dir}", "max_tokens": 8}
    key_a = feature_key(text_spec, "fp1", "train")
    (model_dir / "model.safetensors").write_bytes(b"b")
    assert feature_key(text_spec, "fp1", "train") != key_a


def test_encode_helpers_batch_to_float16(mnv3, minilm, images, caplog):
    boxes = BOXES * 2
    many = np.concatenate([images, images])
    with caplog.at_level(logging.INFO, logger="semfed.encoders"):
        out = encode_images(mnv3, many, boxes, batch_size=4)
        text_out = encode_texts(minilm, TEXTS * 3, batch_size=4)
    assert "6/6" in caplog.text and "9/9" in caplog.text
    direct_feats, direct_mask = mnv3.encode(many, boxes)
    assert out["feats"].dtype == torch.float16 and out["feats"].shape == (6, MAX_REGIONS, 1029)
    assert torch.equal(out["mask"], direct_mask)
    torch.testing.assert_close(out["feats"], direct_feats.half(), rtol=1e-3, atol=1e-3)
    direct_text, direct_text_mask = minilm.encode(TEXTS * 3)
    assert text_out["feats"].dtype == torch.float16 and text_out["feats"].shape == (9, 8, 384)
    assert torch.equal(text_out["mask"], direct_text_mask)
    torch.testing.assert_close(text_out["feats"], direct_text.half(), rtol=1e-2, atol=1e-2)
