"""The baselines' models, config checks and evaluation columns (seed 000 V-D);
the local-only strategy is exercised end to end in test_baselines_e2e.py."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from semfed.config import ConfigError, load_config, parse_client_profiles
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.adapter.uniform_head import UniformHead
from semfed.retrieval.evaluation import client_encoders, pair_recalls, recall_columns, user_groups
from semfed.retrieval.report import LINES_PER_GROUP, users_figure

CONCEPTS = F.normalize(torch.randn(7, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_uniform_head_shares_one_head_per_modality_and_zero_pads_narrower_encoders():
    torch.manual_seed(0)
    model = UniformHead({"image": 12, "text": 10}, CONCEPTS, width=32)
    feats, mask = torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool)
    mask[0, 2:] = False
    tokens, pooled = model(feats, mask, "hf@/some/bert")  # an 8-wide text encoder goes through the 10-wide head
    assert tokens.shape == (3, 4, 16) and pooled.shape == (3, 16)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(model(F.pad(feats, (0, 2)), mask, "minilm")[1], pooled)  # same head, padded
    assert tokens[~mask].abs().max() == 0
    pooled.sum().backward()
    assert model.heads["text"][0].weight.grad.abs().sum() > 0 and model.heads["image"][0].weight.grad is None


def test_graph_adapter_without_concept_edges_has_no_concept_parameters():
    model = GraphAdapter({"minilm": 10}, CONCEPTS, width=32, skb_k=0)
    assert not any("concept" in k for k in model.state_dict())
    _, pooled = model(torch.randn(2, 3, 10), torch.ones(2, 3, dtype=torch.bool), "minilm")
    assert pooled.shape == (2, 16)


@pytest.mark.parametrize("overrides, message", [
    (dict(method="local-only", label_handling="federated"), "needs a federation's consensus"),
    (dict(method="centralised", label_handling="exclusion"), "the centralised bound trains on every label"),
    (dict(method="fedavg"), "method: 'fedavg' is not one of"),
])
def test_method_combinations_that_cannot_run_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(**overrides)


def test_client_encoders_are_the_pairs_each_client_uses():
    both, image, text = parse_client_profiles("frcnn-r50+minilm;frcnn-mnv3;minilm")
    everyone = ("frcnn-mnv3", "frcnn-r50", "minilm")
    assert client_encoders(both, everyone) == ("frcnn-r50", "minilm")
    assert client_encoders(image, everyone) == ("frcnn-mnv3", "minilm")
    assert client_encoders(text, everyone) == ("frcnn-mnv3", "frcnn-r50", "minilm")


def test_recall_columns_average_pairs_and_label_groups_average_clients():
    cfg = load_config(clients="frcnn-r50+minilm;frcnn-mnv3+minilm;minilm", label_noise="mild:0.2:0-1")
    recalls = {k: 1.0 for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")}
    per_pair = {"frcnn-r50+minilm": {**recalls, "rsum": 30.0}, "frcnn-mnv3+minilm": {**recalls, "rsum": 10.0}}
    row = recall_columns(per_pair, {0: 30.0, 1: 10.0, 2: 50.0}, cfg)
    assert row["rsum"] == 20.0 and row["rsum[frcnn-r50+minilm]"] == 30.0
    assert [row[f"user_rsum[{c}]"] for c in range(3)] == [30.0, 10.0, 50.0]
    assert row["group_rsum[mild]"] == 20.0 and row["group_rsum[clean]"] == 50.0 and row["group_rsum[all]"] == 30.0
    no_test_images = recall_columns(per_pair, {0: 30.0, 1: float("nan"), 2: float("nan")}, cfg)
    assert no_test_images["group_rsum[mild]"] == 30.0 and math.isnan(no_test_images["group_rsum[clean]"])


def test_a_users_recalls_use_only_its_own_images_and_their_captions():
    """Image 2 duplicates image 0: over all four images, image 0's captions tie with image 2's and the
    pessimistic tie-break costs R@1 and R@5; over images 1 and 3 alone (captions 5-9, 15-19) every
    recall is 100, which a wrong caption offset would break."""
    basis = torch.eye(4)
    image = basis[[0, 1, 0, 3]]
    captions = image.repeat_interleave(5, dim=0)
    whole = pair_recalls({"frcnn-r50": image, "minilm": captions})["frcnn-r50+minilm"]
    assert whole["i2t_r1"] == 50.0 and whole["rsum"] < 600
    own = pair_recalls({"frcnn-r50": image, "minilm": captions}, np.array([1, 3]))["frcnn-r50+minilm"]
    assert own["rsum"] == 600.0
    shifted = pair_recalls({"frcnn-r50": image, "minilm": captions.roll(1, dims=0)}, np.array([1, 3]))
    assert shifted["frcnn-r50+minilm"]["rsum"] < 600.0



def test_users_plot_draws_each_users_scored_rounds_in_its_groups_colour():
    cfg = load_config(clients="frcnn-r50+minilm;frcnn-mnv3+minilm;minilm", label_noise="severe:0.5:1-2")
    groups = user_groups(cfg)
    assert groups == {0: "clean", 1: "severe", 2: "severe"}
    assert user_groups(load_config(clients="frcnn-r50+minilm;minilm")) == {0: "frcnn-r50+minilm", 1: "minilm"}
    table = pd.DataFrame({"round": [0, 1, 2], "user_rsum[0]": [1.0, np.nan, 3.0], "user_rsum[1]": [4.0, np.nan, 6.0],
                          "user_rsum[2]": [7.0, np.nan, 9.0]})
    figure = users_figure(table, groups, "t")
    lines = figure.axes[0].get_lines()
    assert [line.get_ydata().tolist() for line in lines] == [[1.0, 3.0], [4.0, 6.0], [7.0, 9.0]]
    assert [line.get_xdata().tolist() for line in lines] == [[0, 2]] * 3  # the unscored round left out
    assert lines[1].get_color() == lines[2].get_color() != lines[0].get_color()
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["clean", "severe"]


def test_users_plot_draws_a_big_group_as_its_median_and_10_to_90_percent_band():
    users = LINES_PER_GROUP + 1  # one user more than is drawn line by line
    groups = {pid: "many" for pid in range(users)} | {users: "one"}
    table = pd.DataFrame({"round": [0, 1], **{f"user_rsum[{pid}]": [float(pid), np.nan if pid == 3 else 2.0 * pid]
                                              for pid in range(users + 1)}})
    axes = users_figure(table, groups, "t").axes[0]
    lines = axes.get_lines()
    assert len(lines) == 2 and lines[0].get_ydata().tolist() == [10.0, 21.0]  # medians; round 1 without user 3
    assert lines[1].get_ydata().tolist() == [21.0, 42.0]  # the group of one: its user
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    assert sorted(set(np.round(band, 6))) == [2.0, 3.8, 18.0, 36.2]  # 10th and 90th percentiles of rounds 0 and 1
    assert axes.get_legend().get_texts()[0].get_text() == f"many: median, 10-90% of {users} users"
