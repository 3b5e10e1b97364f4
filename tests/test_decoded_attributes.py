"""Decoded attributes: a probe's predicted attributes written in the oracle's layout."""

import torch

from experiments.decoded_attributes import ORACLE, decoded_rows, write_decoded
from semfed.data.features import encoder_spec, load_dataset, split_features
from semfed.encoders.feature_cache import feature_key
from tests.flower_runs import tiny_config

ATTRIBUTES = (("shape", ("circle", "square", "star")), ("colour", ("red", "blue")))


def test_each_attribute_block_holds_the_predicted_value_and_the_geometry_is_kept():
    rows = torch.tensor([[1, 0, 0, 1, 0, 0.25, 0.5], [0, 1, 0, 0, 1, 0.75, 1.0]])
    decoded = decoded_rows(rows, torch.tensor([[2, 1], [1, 0]]), ATTRIBUTES)
    assert torch.equal(decoded, torch.tensor([[0, 0, 1, 0, 1, 0.25, 0.5], [0, 1, 0, 1, 0, 0.75, 1.0]]))
    assert torch.equal(rows[0, :3], torch.tensor([1.0, 0, 0]))  # the input is not changed


def test_decoding_the_oracle_from_itself_gives_the_oracle_back_and_links_the_rest(tmp_path):
    cfg = tiny_config(tmp_path / "work", clients="oracle-image+minilm:1")
    scenes = load_dataset(cfg)
    split_features(cfg, scenes, "minilm", "test")  # a cache entry the decoded work dir must link
    target = tmp_path / "decoded"
    accuracy = write_decoded(cfg, ORACLE, target)
    assert accuracy["train shape"] == accuracy["train colour"] == accuracy["train size"] == 1.0
    spec = encoder_spec(cfg, scenes, ORACLE)
    for split in ("train", "test"):
        original = split_features(cfg, scenes, ORACLE, split)
        written = torch.load(target / "features" / f"{feature_key(spec, scenes.fingerprint, split)}.pt")
        right = accuracy[f"{split} shape"] == accuracy[f"{split} colour"] == accuracy[f"{split} size"] == 1.0
        assert torch.equal(written["mask"], original["mask"])
        assert torch.equal(written["feats"], original["feats"]) == right
    written = {f"{feature_key(spec, scenes.fingerprint, split)}.pt" for split in ("train", "test")}
    files = {p.name: p for p in (target / "features").iterdir()}
    assert written < set(files) and not any(files[name].is_symlink() for name in written)
    assert all(p.resolve() == (cfg.root / "features" / name).resolve() for name, p in files.items() if name not in written)
    assert (target / "data").resolve() == (cfg.root / "data").resolve()
