import numpy as np
import torch

from semfed.data.features import load_dataset, split_features
from semfed.data.scene_vocabulary import SCENE_CONCEPTS
from semfed.retrieval.shards import build_shard
from semfed.retrieval.skb import SemanticKnowledgeBase, concept_relations, load_skb
from tests.flower_runs import tiny_config


def test_skb_labels_relations_and_version():
    emb = torch.nn.functional.normalize(torch.randn(len(SCENE_CONCEPTS), 8), dim=-1)
    skb = SemanticKnowledgeBase(SCENE_CONCEPTS, emb, concept_relations(SCENE_CONCEPTS))
    names = [c.name for c in SCENE_CONCEPTS]
    labels = skb.labels(["a crimson disc to the left of a big box", "nothing here"])
    assert {names[i] for i in labels[0].nonzero().flatten().tolist()} == {"red", "circle", "left", "large", "square"}
    assert labels[1].sum() == 0
    assert (names.index("red"), "alternative", names.index("blue")) in skb.relations
    assert (names.index("red"), "alternative", names.index("circle")) not in skb.relations
    other = SemanticKnowledgeBase(SCENE_CONCEPTS, emb + 1e-3, skb.relations)
    assert skb.version != other.version and len(skb.version) == 16


def test_shard_gathers_the_right_rows_of_every_modality(tmp_path):
    cfg = tiny_config(tmp_path, clients="frcnn-mnv3+minilm:1")
    scenes = load_dataset(cfg)
    skb = load_skb(tmp_path / "features", scenes.concepts, "minilm")
    assert skb.dim == 384 and torch.allclose(skb.embeddings.norm(dim=-1), torch.ones(len(SCENE_CONCEPTS)))
    indices = np.array([1, 4, 7])
    shard = build_shard(cfg, scenes, skb, cfg.client_profiles[0], indices)
    images = split_features(cfg, scenes, "frcnn-mnv3", "train")
    texts = split_features(cfg, scenes, "minilm", "train")
    assert torch.equal(shard.image.feats, images["feats"][indices])
    assert shard.text.feats.shape[:2] == (3, 5)
    assert torch.equal(shard.text.feats[2, 3], texts["feats"][5 * 7 + 3])  # caption 3 of image 7
    expected = skb.labels([scenes.splits["train"].captions[4][2]])[0]
    assert torch.equal(shard.caption_labels[1, 2], expected)
    assert torch.equal(shard.image_labels, shard.caption_labels.amax(dim=1))


def test_a_corrupted_row_keeps_its_image_and_carries_another_images_annotation(tmp_path):
    cfg = tiny_config(tmp_path, clients="frcnn-mnv3+minilm:1;minilm:1")
    scenes = load_dataset(cfg)
    skb = load_skb(tmp_path / "features", scenes.concepts, "minilm")
    indices, annotations = np.array([1, 4, 7]), np.array([1, 7, 4])
    images = split_features(cfg, scenes, "frcnn-mnv3", "train")
    texts = split_features(cfg, scenes, "minilm", "train")
    paired = build_shard(cfg, scenes, skb, cfg.client_profiles[0], indices, annotations)
    assert paired.noisy.tolist() == [False, True, True]
    assert torch.equal(paired.image.feats[1], images["feats"][4])  # its own image
    assert torch.equal(paired.text.feats[1, 0], texts["feats"][5 * 7])  # image 7's captions
    assert torch.equal(paired.caption_labels[1], skb.labels(scenes.splits["train"].captions[7]))
    text_only = build_shard(cfg, scenes, skb, cfg.client_profiles[1], indices, annotations)
    assert torch.equal(text_only.text.feats[1, 0], texts["feats"][5 * 4])  # captions are its inputs: its own
    assert torch.equal(text_only.caption_labels[1], skb.labels(scenes.splits["train"].captions[7]))  # labels are not
