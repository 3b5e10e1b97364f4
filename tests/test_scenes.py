"""Tests of the synthetic "scenes" dataset and its vocabulary."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from semfed.data import scenes as scenes_module
from semfed.data.scene_vocabulary import SCENE_CONCEPTS, Concept, concept_spans, concepts_in_text
from semfed.data.scenes import (
    COLOUR_JITTER,
    COLOUR_RGB,
    SceneSpec,
    generate_scenes,
    load_scenes,
    scenes_fingerprint,
)

SMALL = SceneSpec(seed=3, n_train=40, n_val=5, n_test=10, image_size=64, min_objects=1, max_objects=5)
INDEX = {c.name: i for i, c in enumerate(SCENE_CONCEPTS)}


@pytest.fixture(scope="module")
def small():
    return generate_scenes(SMALL)


def all_scenes(scenes):
    """(split, image index) for every image of every split."""
    return [(split, i) for split in scenes.splits.values() for i in range(len(split))]


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def parse_caption(caption):
    """Object mentions [{"shape", "colour"[, "size"]}] and relations [(subject, relation, reference)].

    Subject and reference index the mentions: a relation links the phrase just before it to
    the phrase just after it.
    """
    mentions, relations, pending, pending_relation = [], [], {}, None
    for _, _, i in concept_spans(caption):
        concept = SCENE_CONCEPTS[i]
        if concept.category == "relation":
            assert not pending and mentions and pending_relation is None, caption
            pending_relation = (len(mentions) - 1, concept.name)
        elif concept.category == "shape":
            mentions.append({**pending, "shape": concept.name})
            pending = {}
            if pending_relation is not None:
                relations.append((*pending_relation, len(mentions) - 1))
                pending_relation = None
        else:
            assert concept.category not in pending, caption
            pending[concept.category] = concept.name
    assert not pending and pending_relation is None, caption
    return mentions, relations


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_is_well_formed():
    counts = Counter(c.category for c in SCENE_CONCEPTS)
    assert counts == {"shape": 6, "colour": 7, "size": 2, "relation": 4}
    synonyms = [s for c in SCENE_CONCEPTS for s in c.synonyms]
    assert len(synonyms) == len(set(synonyms))
    for i, concept in enumerate(SCENE_CONCEPTS):
        assert concept.synonyms[0].split()[0] == concept.name
        for synonym in concept.synonyms:
            assert concepts_in_text(f"look: {synonym.upper()}!") == [i]


def test_concepts_in_text_synonyms_and_phrases():
    text = "A Crimson disc to the left of a BIG box"
    assert concepts_in_text(text) == sorted(INDEX[n] for n in ("red", "circle", "left", "large", "square"))
    in_order = [INDEX[n] for n in ("red", "circle", "left", "large", "square")]
    assert [i for _, _, i in concept_spans(text)] == in_order
    assert concepts_in_text("an amber plus sign beneath a violet star") == sorted(
        INDEX[n] for n in ("orange", "cross", "below", "purple", "star"))
    assert concepts_in_text("right of\nit, to  the   right of that") == [INDEX["right"]]
    assert len(concept_spans("to the right of")) == 1
    custom = (Concept("ice", "thing", ("ice",)), Concept("ice cream", "thing", ("ice cream",)))
    assert concepts_in_text("an ice cream", custom) == [1]
    assert concepts_in_text("ice, creamy", custom) == [0]


def test_concepts_in_text_whole_words_only():
    assert concepts_in_text("bored") == []
    assert concepts_in_text("a reddish, overcast, bigger boxer; plus") == []
    assert concepts_in_text("over-red") == [INDEX["red"], INDEX["above"]]
    assert concepts_in_text("") == []


# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize("field, kwargs", [
    ("seed", {"seed": -1}),
    ("n_train", {"n_train": 0}),
    ("n_val", {"n_val": 0}),
    ("n_test", {"n_test": -5}),
    ("image_size", {"image_size": 31}),
    ("min_objects", {"min_objects": 0}),
    ("min_objects", {"min_objects": 9, "max_objects": 9}),
    ("max_objects", {"max_objects": 9}),
    ("max_objects", {"min_objects": 4, "max_objects": 3}),
    ("n_train", {"n_train": 2.5}),
])
def test_spec_rejects_bad_values(field, kwargs):
    with pytest.raises(ValueError, match=rf"SceneSpec\.{field} must be"):
        SceneSpec(**kwargs)


def test_fingerprint_depends_on_every_field():
    fingerprints = {scenes_fingerprint(SceneSpec())}
    for change in ({"seed": 1}, {"n_train": 3}, {"n_val": 3}, {"n_test": 3}, {"image_size": 33},
                   {"min_objects": 1}, {"max_objects": 6}):
        fingerprints.add(scenes_fingerprint(SceneSpec(**change)))
    assert len(fingerprints) == 8
    assert all(len(f) == 16 and int(f, 16) >= 0 for f in fingerprints)


# --------------------------------------------------------------------------- generation


def test_same_seed_same_data_different_seed_different_data(small):
    again = generate_scenes(SMALL)
    assert again == small
    np.testing.assert_array_equal(again.splits["train"].images, small.splits["train"].images)
    other = generate_scenes(replace(SMALL, seed=4))
    assert not np.array_equal(other.splits["train"].images, small.splits["train"].images)
    assert other.splits["train"].captions != small.splits["train"].captions
    assert other.fingerprint != small.fingerprint


def test_changing_n_test_keeps_train_and_val(small):
    other = generate_scenes(replace(SMALL, n_test=3))
    assert other.splits["train"] == small.splits["train"]
    assert other.splits["val"] == small.splits["val"]
    assert len(other.splits["test"]) == 3


def test_shapes_and_dtypes(small):
    s = SMALL.image_size
    for name, n in (("train", 40), ("val", 5), ("test", 10)):
        split = small.splits[name]
        assert len(split) == n
        assert split.images.shape == (n, s, s, 3) and split.images.dtype == np.uint8
        assert len(split.boxes) == len(split.objects) == len(split.captions) == n
        assert all(len(c) == 5 for c in split.captions)
        flat = split.flat_captions()
        assert len(flat) == 5 * n
        assert flat[5 * 3 + 2] == split.captions[3][2]
    assert small.concepts == SCENE_CONCEPTS


def test_objects_and_boxes(small):
    s = SMALL.image_size
    n_objects = []
    for split, i in all_scenes(small):
        boxes, objects = split.boxes[i], split.objects[i]
        assert boxes.dtype == np.float32 and boxes.shape == (len(objects), 4)
        assert SMALL.min_objects <= len(objects) <= SMALL.max_objects
        n_objects.append(len(objects))
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= s)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        assert len({(o["shape"], o["colour"]) for o in objects}) == len(objects)
        for obj, box in zip(objects, boxes):
            extent = max(box[2] - box[0], box[3] - box[1])
            if obj["size"] == "small":
                assert extent <= 0.18 * s + 2
            else:
                assert extent >= 0.7 * 0.25 * s - 1
        # the last object is drawn on top: its colour fills part of its box
        x0, y0, x1, y1 = boxes[-1].astype(int)
        patch = split.images[i, y0:y1, x0:x1].astype(int)
        close = np.all(np.abs(patch - COLOUR_RGB[objects[-1]["colour"]]) <= COLOUR_JITTER, axis=-1)
        assert close.mean() >= 0.3
    assert set(n_objects) == set(range(SMALL.min_objects, SMALL.max_objects + 1))


def test_objects_recur_across_images(small):
    split = small.splits["train"]
    counts = Counter(o[key] for objs in split.objects for o in objs for key in ("shape", "colour"))
    assert all(counts[c.name] >= 3 for c in SCENE_CONCEPTS if c.category in ("shape", "colour"))


def test_captions_are_true_of_their_image(small):
    n_relational_total = 0
    for split, i in all_scenes(small):
        objects, boxes = split.objects[i], split.boxes[i]
        allowed = {INDEX[o[k]] for o in objects for k in ("shape", "colour", "size")}
        allowed |= {INDEX[r] for r in ("left", "right", "above", "below")}
        n_relational = 0
        for caption in split.captions[i]:
            assert set(concepts_in_text(caption)) <= allowed, caption
            mentions, relations = parse_caption(caption)
            assert 1 <= len(mentions) <= 3, caption
            referents = []
            for mention in mentions:
                matches = [k for k, o in enumerate(objects) if all(o[key] == v for key, v in mention.items())]
                assert len(matches) == 1 and "colour" in mention, caption
                referents.append(matches[0])
            assert len(relations) <= 1, caption
            for subject, relation, reference in relations:
                (ax, ay), (bx, by) = centre(boxes[referents[subject]]), centre(boxes[referents[reference]])
                dx, dy = ax - bx, ay - by
                signed = {"left": -dx, "right": dx, "above": -dy, "below": dy}[relation]
                assert signed >= max(abs(dx), abs(dy)) > 0, caption
            n_relational += bool(relations)
        pair_offsets = [max(abs(np.subtract(centre(a), centre(b)))) for a in boxes for b in boxes]
        if max(pair_offsets) >= 2:
            assert n_relational >= 3, split.captions[i]
        n_relational_total += n_relational
    assert n_relational_total > 0


def test_captions_vary_and_use_synonyms(small):
    captions = small.splits["train"].flat_captions()
    assert len(set(captions)) >= 0.95 * len(captions)
    words = Counter(w for c in captions for w in c.replace(",", " ").replace(";", " ").split())
    assert words["crimson"] + words["scarlet"] > 0 and words["red"] > 0
    assert words["box"] > 0 and words["square"] > 0


# --------------------------------------------------------------------------- disk cache


def test_load_scenes_round_trip(tmp_path, monkeypatch, caplog, small):
    with caplog.at_level(logging.INFO, logger="semfed.data.scenes"):
        first = load_scenes(tmp_path, SMALL)
    assert "generating 55 scene images" in caplog.text
    assert first == small
    folder = tmp_path / f"scenes-{small.fingerprint}"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
    for name in ("spec.json", "concepts.json", "train/images.npy", "test/annotations.json"):
        assert (folder / name).is_file()

    def fail(spec):
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(scenes_module, "generate_scenes", fail)
    second = load_scenes(tmp_path, SMALL)
    assert second == first
    assert second.splits["train"].boxes[0].dtype == np.float32
    with pytest.raises(AssertionError, match="cache"):
        load_scenes(tmp_path, replace(SMALL, seed=9))
