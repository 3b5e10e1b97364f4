"""Flickr30K loaders on tiny fixture files written in exactly the two layouts people have."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from semfed.config import ConfigError, load_config
from semfed.data.caption_vocabulary import caption_word_concepts, main_concepts
from semfed.data.features import load_dataset, split_features
from semfed.data.flickr30k import IMAGE_SIDE, Flickr30KError, load_flickr30k
from semfed.data.scene_vocabulary import concepts_in_text
from semfed.retrieval.evaluation import evaluate_federation
from semfed.retrieval.metrics import RECALL_NAMES
from semfed.retrieval.participants import build_adapter
from semfed.retrieval.shards import build_shard, client_indices
from semfed.retrieval.skb import concept_relations, load_skb
from tests.flower_runs import in_process

TRAIN_CAPTIONS = [
    ["A dog runs on the grass.", "Two dogs play with a ball.", "A brown dog is running.",
     "The dog catches a ball.", "A dog outside."],
    ["A man rides a bike.", "The man is on his bike.", "A man cycling down the street.",
     "Man riding a bicycle.", "A person on a bike."],
    ["Two women walk on the beach.", "A woman on the beach.", "Women walking by the ocean.",
     "People at the beach.", "A woman and a dog on the beach."],
    ["A man plays guitar.", "A man is playing a guitar on stage.", "Musician with a guitar.",
     "A guitar player.", "The man sings."],
    ["Children play in the water.", "A child splashes water.", "Kids in a pool.",
     "Two children swimming in water.", "A girl in the water."],
    ["A dog jumps into the water.", "The dog swims.", "A black dog in water.",
     "Dog playing in a lake.", "A wet dog."],
]
TEST_CAPTIONS = [
    ["A man with a dog.", "A man walks his dog.", "Dog and owner.", "A man outside.", "A dog on a leash."],
    ["Kids on the beach.", "Children in the water.", "A beach day.", "Two kids swim.", "Water fun."],
]
#: Counted by hand from TRAIN_CAPTIONS: dog 11 (incl. "dogs"), man 7, water 6, beach 4, guitar 4, bike 3.
TOP_CONCEPTS = ("dog", "man", "water", "beach", "guitar", "bike")


def write_scan(folder: Path, captions=(TRAIN_CAPTIONS, TEST_CAPTIONS), regions=36, dim=2048) -> Path:
    """SCAN's layout: {split}_ims.npy float32 [N, regions, dim] and {split}_caps.txt, caption j of image i on line 5i+j."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, split_captions in zip(("train", "test"), captions):
        np.save(folder / f"{name}_ims.npy", rng.random((len(split_captions), regions, dim), dtype=np.float32))
        (folder / f"{name}_caps.txt").write_text("".join(c + "\n" for image in split_captions for c in image))
    return folder


def write_karpathy(folder: Path, side: int = 64) -> Path:
    """Karpathy's layout: dataset_flickr30k.json and random JPEGs in flickr30k-images/."""
    (folder / "flickr30k-images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for split, split_captions in (("train", TRAIN_CAPTIONS), ("test", TEST_CAPTIONS)):
        for i, image_captions in enumerate(split_captions):
            filename = f"{1000 + len(entries)}.jpg"
            pixels = rng.integers(0, 256, size=(side, side + 16 * i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "flickr30k-images" / filename)
            sentences = [{"raw": c, "tokens": c.lower().rstrip(".").split()} for c in image_captions]
            entries.append({"filename": filename, "imgid": len(entries), "split": split, "sentences": sentences})
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    return folder


def scan_config(tmp_path: Path, data: Path, **overrides):
    return load_config(**{"work_dir": str(tmp_path / "work"), "dataset": "flickr30k", "flickr30k_layout": "scan",
                          "flickr30k_path": str(data), "flickr30k_concepts": 6, "partitioning": "iid", **overrides})


def test_caption_vocabulary_is_the_most_frequent_content_words_with_plurals_folded():
    concepts = caption_word_concepts([c for image in TRAIN_CAPTIONS for c in image], 6)
    assert tuple(c.name for c in concepts) == TOP_CONCEPTS
    assert concepts[0].synonyms == ("dog", "dogs") and concepts[1].synonyms == ("man",)
    ties = caption_word_concepts(["bb zz", "zz cc", "cc bb the", "x"], 2)  # "the" a stop word, "x" too short
    assert tuple(c.name for c in ties) == ("bb", "cc")  # equal counts: alphabetical
    assert main_concepts([["two dogs", "a man"], ["a man and a dog", "man"], ["nothing"]], concepts).tolist() == [0, 1, 6]
    assert concept_relations(concepts) == ()  # counted words have no known alternatives


def test_scan_layout_counts_caption_order_and_concept_labels(tmp_path):
    data = load_flickr30k(write_scan(tmp_path / "scan"), "scan", 6)
    assert sorted(data.splits) == ["test", "train"]  # no dev files: no val split
    train, test = data.splits["train"], data.splits["test"]
    assert (len(train), len(test)) == (6, 2) and train.regions.shape == (6, 36, 2048)
    assert isinstance(train.regions, np.memmap)
    assert train.captions == TRAIN_CAPTIONS and test.captions == TEST_CAPTIONS
    assert test.flat_captions()[5 * 1 + 3] == "Two kids swim."  # caption 3 of image 1 at line 5i+j
    assert tuple(c.name for c in data.concepts) == TOP_CONCEPTS
    assert train.main_classes().tolist() == [0, 1, 3, 4, 2, 0]  # dog, man, beach, guitar, water, dog
    assert concepts_in_text("Two dogs play with a ball on the BEACH.", data.concepts) == [0, 3]  # dog, beach
    again = load_flickr30k(tmp_path / "scan", "scan", 3)
    assert again.fingerprint == data.fingerprint and len(again.concepts) == 3  # K does not key the features


def test_karpathy_layout_counts_captions_and_decoded_images(tmp_path):
    data = load_flickr30k(write_karpathy(tmp_path / "k"), "karpathy", 6)
    train, test = data.splits["train"], data.splits["test"]
    assert (len(train), len(test)) == (6, 2) and sorted(data.splits) == ["test", "train"]
    assert train.captions[3] == TRAIN_CAPTIONS[3] and test.flat_captions()[7] == "A beach day."
    batch = train.images[1:4]
    assert batch.shape == (3, IMAGE_SIDE, IMAGE_SIDE, 3) and batch.dtype == np.uint8
    original = np.asarray(Image.open(tmp_path / "k" / "flickr30k-images" / "1002.jpg"))
    assert original.shape == (64, 96, 3)  # aspect kept: a 64 x 96 JPEG fills 333 of the 500 rows
    assert batch[1][:80].max() == 0 and batch[1][IMAGE_SIDE // 2].max() > 0
    assert tuple(c.name for c in data.concepts) == TOP_CONCEPTS


def _expect(error_match: str, *args):
    with pytest.raises(Flickr30KError, match=error_match):
        load_flickr30k(*args)


def test_bad_scan_files_raise_naming_the_file_and_the_expectation(tmp_path):
    folder = write_scan(tmp_path / "scan")
    (folder / "train_ims.npy").unlink()
    _expect(r"train_ims\.npy: not found; the scan layout expects a float array \[N, R, D\]", folder, "scan", 6)
    np.save(folder / "train_ims.npy", np.zeros((6, 2048), dtype=np.float32))
    _expect(r"train_ims\.npy: holds float32 \[6, 2048\]; expected a float array \[N, R, D\]", folder, "scan", 6)
    np.save(folder / "train_ims.npy", np.zeros((6, 36, 2048), dtype=np.float32))
    lines = (folder / "train_caps.txt").read_text().splitlines()
    (folder / "train_caps.txt").write_text("\n".join(lines[:-1]) + "\n")
    _expect(r"train_caps\.txt: 29 lines; expected 5 x 6 = 30 lines \(6 images in train_ims\.npy", folder, "scan", 6)
    (folder / "train_caps.txt").unlink()
    _expect(r"train_caps\.txt: not found", folder, "scan", 6)
    write_scan(folder)
    np.save(folder / "test_ims.npy", np.zeros((2, 36, 1024), dtype=np.float32))
    _expect(r"differ in shape", folder, "scan", 6)


def test_bad_karpathy_files_raise_naming_the_file_and_the_expectation(tmp_path):
    folder = write_karpathy(tmp_path / "k")
    record = json.loads((folder / "dataset_flickr30k.json").read_text())
    del record["images"][1]["sentences"]
    (folder / "dataset_flickr30k.json").write_text(json.dumps(record))
    _expect(r"dataset_flickr30k\.json: images\[1\] has no 'sentences' list; expected \{\"images\"", folder, "karpathy", 6)
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"pictures": []}))
    _expect(r"dataset_flickr30k\.json: no top-level 'images' list", folder, "karpathy", 6)
    (folder / "dataset_flickr30k.json").unlink()
    _expect(r"dataset_flickr30k\.json: not found", folder, "karpathy", 6)
    folder = write_karpathy(tmp_path / "k2")
    (folder / "flickr30k-images" / "1003.jpg").unlink()
    _expect(r"flickr30k-images: 1 JPEG file\(s\) that .*dataset_flickr30k\.json lists are missing \(first: 1003\.jpg\)",
            folder, "karpathy", 6)


def test_config_keys_are_validated(tmp_path):
    data = write_scan(tmp_path / "scan")
    with pytest.raises(ConfigError, match="clients: image encoder.*'frcnn-r50'.* use 'bottom-up'"):
        scan_config(tmp_path, data, clients="frcnn-r50+minilm:1")
    with pytest.raises(ConfigError, match="clients: image encoder 'bottom-up' reads precomputed features"):
        load_config(clients="bottom-up+minilm:1")
    with pytest.raises(ConfigError, match="region-source: flickr30k-layout='karpathy' has no boxes"):
        load_config(dataset="flickr30k", flickr30k_path=str(data), clients="frcnn-mnv3+minilm:1",
                    detector_adaptation="batchnorm", region_features="box-head")
    with pytest.raises(ConfigError, match="flickr30k-path: 'rel/dir' is not an absolute path"):
        load_config(dataset="flickr30k", flickr30k_path="rel/dir", detector_adaptation="batchnorm",
                    region_features="box-head")
    with pytest.raises(ConfigError, match="flickr30k-layout: 'coco' is not one of"):
        load_config(flickr30k_layout="coco")
    with pytest.raises(ConfigError, match="dataset: 'mscoco' is not one of"):
        load_config(dataset="mscoco")


def test_scan_features_flow_into_shards_and_the_retrieval_evaluation(tmp_path, one_torch_thread):
    data = write_scan(tmp_path / "scan")
    cfg = scan_config(tmp_path, data, clients="bottom-up+minilm:1;minilm:1", max_regions=8)
    scenes = load_dataset(cfg)
    skb = load_skb(cfg.root / "features", scenes.concepts, cfg.skb_encoder)
    regions = split_features(cfg, scenes, "bottom-up", "train")
    raw = np.load(data / "train_ims.npy")
    assert regions["feats"].shape == (6, 8, 2048) and regions["mask"].all()  # the first max-regions of 36
    assert torch.equal(regions["feats"], torch.from_numpy(raw[:, :8]).half())
    indices = np.array([0, 2, 5])
    shard = build_shard(cfg, scenes, skb, cfg.client_profiles[0], indices)
    texts = split_features(cfg, scenes, "minilm", "train")
    assert torch.equal(shard.image.feats, regions["feats"][indices])
    assert torch.equal(shard.text.feats[1, 4], texts["feats"][5 * 2 + 4])  # caption 4 of image 2
    dog, beach = 0, 3
    assert shard.caption_labels[1, 4, [dog, beach]].tolist() == [1.0, 1.0]  # "A woman and a dog on the beach."
    assert shard.caption_labels[1, 0].nonzero().flatten().tolist() == [beach]  # "Two women walk on the beach."
    assert sorted(np.concatenate(client_indices(cfg, scenes)).tolist()) == list(range(6))
    recalls = evaluate_federation(build_adapter(cfg, ("bottom-up", "minilm"), seed=0), cfg, ("bottom-up", "minilm"))
    scores = recalls["bottom-up+minilm"]
    assert list(recalls) == ["bottom-up+minilm"]  # the precomputed features reached the scoring, which added up:
    assert scores["rsum"] > 0 and scores["rsum"] == pytest.approx(sum(scores[name] for name in RECALL_NAMES))


def test_karpathy_images_give_rpn_proposal_regions(tmp_path, one_torch_thread):
    data = write_karpathy(tmp_path / "k")
    cfg = load_config(work_dir=str(tmp_path / "work"), dataset="flickr30k", flickr30k_path=str(data),
                      region_source="proposals", clients="frcnn-mnv3+minilm:1", frcnn_mnv3_input_size=64,
                      max_regions=3, partitioning="iid", detector_adaptation="batchnorm", region_features="box-head")
    scenes = load_dataset(cfg)
    regions = split_features(cfg, scenes, "frcnn-mnv3", "test")
    assert regions["feats"].shape == (2, 3, 1029) and regions["mask"].any(dim=1).all()
    skb = load_skb(cfg.root / "features", scenes.concepts, cfg.skb_encoder)
    shard = build_shard(cfg, scenes, skb, cfg.client_profiles[0], np.array([1, 3]))
    assert shard.image.feats.shape == (2, 3, 1029) and shard.text.feats.shape[:2] == (2, 5)


def test_flower_run_on_the_scan_fixture(tmp_path):
    rng = np.random.default_rng(1)
    train = [TRAIN_CAPTIONS[i] for i in rng.integers(0, 6, size=12)]
    data = write_scan(tmp_path / "scan", captions=(train, TEST_CAPTIONS * 2), regions=36, dim=64)
    run_config = (f"run-name='scan' num-server-rounds=2 dataset='flickr30k' flickr30k-layout='scan' "
                  f"flickr30k-path='{data}' flickr30k-concepts=8 batch-size=4 max-regions=12 partitioning='iid' "
                  "clients='bottom-up+minilm:1;bottom-up:1;minilm:1'")
    run = in_process(tmp_path / "work", run_config)
    table = pd.read_csv(run / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    # 4 test images of random region features: R@5 and R@10 are 100 for any finite model and RSUM does not
    # follow training (420, 365, 365 measured); a diverged model scores 0, and training must lower the loss
    assert (table["rsum"] > 0).all() and table.loc[2, "train_loss"] < table.loc[1, "train_loss"]
    assert (table.loc[1:, "clients_replied"] == 3).all()
    assert sorted(pd.read_csv(run / "groups.csv")["group"]) == ["bottom-up", "bottom-up+minilm", "minilm"]
