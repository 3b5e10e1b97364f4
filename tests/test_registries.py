"""The registries of tasks, methods, label policies and encoders: a toy entry of each goes through the
config and a real code path (the D-JSCC registries: test_registries_jscc.py); and no code outside a
registry compares a registered name of any registry as a string."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import server.app
from semfed.channels import CHANNELS
from semfed.config import ConfigError, load_config
from semfed.config_values import ENCODERS, Encoder
from semfed.data.dataset import CAPTIONS_PER_IMAGE
from semfed.data.features import FEATURE_KINDS, FeatureKind, load_dataset, split_features
from semfed.jscc.decoders import DECODERS
from semfed.jscc.framework_registry import FRAMEWORKS
from semfed.label_policies import LABEL_POLICIES, LabelPolicy
from semfed.methods import METHODS, Method
from semfed.retrieval import participants
from semfed.retrieval.evaluation import pair_recalls
from semfed.retrieval.labels import HISTOGRAM_BINS, LabelLedger, close_label_round
from semfed.tasks import TASKS, Task
from server.retrieval import strategy_class
from strategies.keyed_fedavg import KeyedFedAvg
from strategies.label_consensus import LabelConsensusFedAvg
from strategies.local_only import LocalOnly
from tests.flower_runs import tiny_config

ROOT = Path(__file__).resolve().parent.parent
CONCEPTS = F.normalize(torch.randn(7, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_a_toy_method_is_a_config_value_and_builds_its_model_and_strategy(monkeypatch):
    monkeypatch.setitem(METHODS, "solo-flat", Method("graph", concept_edges=False, aggregates=False))
    monkeypatch.setattr(participants, "dataset_and_skb", lambda cfg: (None, SimpleNamespace(embeddings=CONCEPTS)))
    monkeypatch.setattr(participants, "encoder_dims", lambda cfg, encoders: {e: 10 for e in encoders})
    cfg = load_config(method="solo-flat")
    model = participants.build_adapter(cfg, ("minilm",), seed=0)
    assert not any("concept" in key for key in model.state_dict())  # concept_edges=False: no SKB edges
    with_edges = participants.build_adapter(cfg.replace(method="proposed"), ("minilm",), seed=0)
    assert any("concept" in key for key in with_edges.state_dict())
    assert strategy_class(cfg) is LocalOnly  # it does not aggregate
    with pytest.raises(ConfigError, match="label-handling: 'federated' needs a federation's consensus; method "
                                          "'solo-flat' has none"):
        cfg.replace(label_handling="federated")
    with pytest.raises(ConfigError, match="resume: method 'solo-flat' cannot resume"):
        cfg.replace(resume=True, run_name="x")


def test_an_unregistered_method_is_refused_naming_the_registry():
    with pytest.raises(ConfigError, match=r"method: 'solo-flat' is not one of \('proposed', "):
        load_config(method="solo-flat")


def test_a_toy_label_policy_uses_the_consensus_it_declares(monkeypatch):
    """'consensus-only' keeps a ledger on the federation's null: the same confidences close to other
    pruning under a consensus than under the client's own decoys, exactly as 'federated' does and 'local' does not."""
    monkeypatch.setitem(LABEL_POLICIES, "consensus-only", LabelPolicy(scores=True, keeps_ledger=True,
                                                                      uses_consensus=True))
    cfg = load_config(label_handling="consensus-only")
    assert strategy_class(cfg) is LabelConsensusFedAvg and strategy_class(load_config()) is KeyedFedAvg
    # 30 confident labels (0.97), 10 hard ones (0.45 then 0.7: 0.575 on average) and 5 at chance level (0.2)
    confidence = torch.cat([torch.full((2, 30), 0.97), torch.tensor([[0.45], [0.7]]).expand(2, 10),
                            torch.full((2, 5), 0.2)], 1)
    decoys = ((torch.arange(45) + 0.5) / 45).expand(2, 45)  # the client's own decoys rank uniformly
    excluded = torch.arange(45) >= 30

    def pruned(policy: str, consensus) -> int:
        return int(close_label_round(LabelLedger.empty(45), confidence, decoys, excluded, LABEL_POLICIES[policy],
                                     consensus, 0.8, 1).pruned.sum())

    consensus = np.zeros(HISTOGRAM_BINS)  # the federation's decoys: chance ranks at 0.45-0.65 here
    consensus[9:13] = 25.0
    # against it: noise fraction (5/45) / 0.25 = 0.44, cut 0.95, under which the hard and the low labels lie
    assert pruned("consensus-only", consensus) == pruned("federated", consensus) == 15
    # against uniform decoys: noise fraction 0.23 and cut 0.55 (at 0.6 the hard labels bring the expected
    # noise share to 0.41): only the chance-level labels
    assert pruned("local", consensus) == pruned("consensus-only", None) == 5


def toy_server(grid, cfg):
    toy_server.calls.append((grid, cfg.task, cfg.supernodes))


toy_server.calls = []


def test_a_toy_task_is_what_the_server_app_runs(monkeypatch):
    monkeypatch.setitem(TASKS, "toy", Task(f"{__name__}:toy_server", f"{__name__}:toy_server", "",
                                           lambda cfg: cfg.client_profiles[:2], "", "", resumable=False, takes_pool=False,
                                           rounds_table="toy.csv", final_table="toy_final.csv",
                                           sweep_report=f"{__name__}:toy_server"))
    context = SimpleNamespace(run_config=load_config(task="toy").to_run_config())
    server.app.main("the grid", context)
    assert toy_server.calls == [("the grid", "toy", 2)]
    with pytest.raises(ConfigError, match="resume: only task='retrieval' runs can resume, not task='toy'"):
        load_config(task="toy", resume=True, run_name="x")


#: the config keys whose values are registry names; a literal compared with one of these is a string branch
CHOICE_KEYS = ("task", "method", "label_handling", "jscc_framework", "jscc_channel", "channel", "framework", "family")


def registered_names() -> set[str]:
    """Every registered name except 'none', which other keys use as a plain word too."""
    return (set(TASKS) | set(METHODS) | set(LABEL_POLICIES) | set(CHANNELS) | set(DECODERS)
            | set(FRAMEWORKS) | set(ENCODERS)) - {"none"}


def name_comparisons(source: str, names: set[str]) -> list[str]:
    """Lines of `source` that compare a value with one of `names` written as a string literal, or a
    choice key (CHOICE_KEYS) with any literal: ==, !=, in / not in a literal tuple, list or set."""
    quoted = "|".join(re.escape(n) for n in sorted(names))
    literal = rf"""["'](?:{quoted})["']"""
    keys = "|".join(CHOICE_KEYS)
    pattern = re.compile(rf"""(?:==|!=)\s*{literal}|{literal}\s*(?:==|!=)|\bin\s*[(\[{{][^)\]}}]*{literal}"""
                         rf"""|\b(?:{keys})\b["'\]]?\s*(?:==|!=|\bin\b|\bnot in\b)\s*[("'\[{{]""")
    return [line.strip() for line in source.splitlines() if pattern.search(line)]


def test_the_comparison_finder_catches_each_form_and_passes_a_lookup():
    names = {"federated", "jscc"}
    assert name_comparisons('if cfg.task == "jscc":\n', names) == ['if cfg.task == "jscc":']
    assert len(name_comparisons("x = 'federated' != y\nif m in ('local', 'federated'): pass\n", names)) == 2
    assert len(name_comparisons('if cfg.label_handling != "none": pass\nok = cfg.method in ("a", "b")\n', names)) == 2
    assert name_comparisons('policy = LABEL_POLICIES["federated"]\nif task.resumable: pass\n'
                            'if cfg.detector_adaptation == "none": pass\n', names) == []


REGISTRIES = {"semfed/tasks.py", "semfed/methods.py", "semfed/label_policies.py",
              "semfed/jscc/framework_registry.py"}


def test_no_code_outside_a_registry_compares_a_registered_name():
    found = {}
    for folder in ("semfed", "clients", "server", "strategies", "experiments", "scripts"):
        for file in sorted((ROOT / folder).rglob("*.py")):
            if file.relative_to(ROOT).as_posix() not in REGISTRIES:
                lines = name_comparisons(file.read_text(), registered_names())
                if lines:
                    found[file.relative_to(ROOT).as_posix()] = lines
    assert found == {}


def toy_region_features(cfg, dataset, spec, split):
    """[N, 2, 3] features numbering the split's regions, both regions valid."""
    n = len(dataset.splits[split].images)
    toy_region_features.calls += 1
    return {"feats": torch.arange(n * 6, dtype=torch.float16).reshape(n, 2, 3),
            "mask": torch.ones(n, 2, dtype=torch.bool)}


toy_region_features.calls = 0


def test_a_toy_encoder_is_a_client_encoder_whose_features_come_from_its_kind_and_are_cached(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="unknown or repeated encoder 'toy-image'"):
        tiny_config(tmp_path, clients="toy-image+minilm:1")
    monkeypatch.setitem(ENCODERS, "toy-image", Encoder("image", "toy-regions"))
    toy_kind = FeatureKind(lambda cfg, dataset, name: {"kind": "toy", "name": name}, toy_region_features)
    monkeypatch.setitem(FEATURE_KINDS, "toy-regions", toy_kind)
    cfg = tiny_config(tmp_path, clients="toy-image+minilm:1")
    assert cfg.client_profiles[0].image_encoder == "toy-image" and cfg.client_profiles[0].text_encoder == "minilm"
    scenes = load_dataset(cfg)
    first = split_features(cfg, scenes, "toy-image", "test")
    again = split_features(cfg, scenes, "toy-image", "test")  # read back from the feature cache
    n = len(scenes.splits["test"].images)
    assert torch.equal(first["feats"], torch.arange(n * 6, dtype=torch.float16).reshape(n, 2, 3))
    assert torch.equal(again["feats"], first["feats"]) and toy_region_features.calls == 1
    pairs = pair_recalls({"minilm": torch.randn(2 * CAPTIONS_PER_IMAGE, 4), "toy-image": torch.randn(2, 4)})
    assert list(pairs) == ["toy-image+minilm"]  # the evaluation reads the entry's modality
