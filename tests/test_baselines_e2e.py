"""End-to-end: each baseline (seed 000 V-D) runs two rounds of the Flower apps on the tiny config (in this
process: tests/flower_runs.py)."""

import pandas as pd
import torch

from tests.checks import assert_plot, assert_trained
from tests.flower_runs import tiny_in_process


def run_method(work, method: str, extra: str = "", rsum_improves: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    run = tiny_in_process(work, method, f"method='{method}' {extra}")
    table = pd.read_csv(run / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    if rsum_improves:
        assert_trained(table)
    assert table.loc[1:, "train_loss"].notna().all()
    return table, pd.read_csv(run / "groups.csv").set_index("group")["rsum"]


def test_single_modal_fedavg_trains_one_uniform_head_per_modality(tmp_path):
    table, _ = run_method(tmp_path, "single-modal")
    assert (table.loc[1:, "clients_replied"] == 3).all()
    keys = torch.load(tmp_path / "runs/single-modal/checkpoint.pt", weights_only=True)["adapter"]
    assert {k.split(".")[1] for k in keys} == {"image", "text"} and not any(k.startswith("stems") for k in keys)


def test_fedgnn_federates_the_gnn_without_skb_concept_edges(tmp_path):
    table, _ = run_method(tmp_path, "fedgnn")
    keys = torch.load(tmp_path / "runs/fedgnn/checkpoint.pt", weights_only=True)["adapter"]
    assert not any("concept" in k for k in keys) and any(k.startswith("layers.0.attention") for k in keys)
    assert (table.loc[1:, "clients_replied"] == 3).all() and table.loc[2, "rsum"] != table.loc[0, "rsum"]


def test_local_only_clients_train_alone_and_are_evaluated_on_their_own_models(tmp_path):
    table, groups = run_method(tmp_path, "local-only", "eval-every=2")
    assert table["rsum"].isna().tolist() == [False, True, False]  # scored at rounds 0 and 2 only
    assert (table["bytes_sent"] == 0).all() and (table["bytes_received"] == 0).all()
    assert (table.loc[1:, "clients_replied"] == 3).all()
    # all three groups are scored on the one pair mnv3+minilm; under one shared model they would tie
    assert groups.nunique() == 3


def test_centralised_bound_trains_in_the_server_app(tmp_path):
    # two pooled epochs leave the tiny test RSUM where it started (196.7, 186.7, 196.7 measured): the
    # training loss must fall instead
    table, groups = run_method(tmp_path, "centralised", rsum_improves=False)
    assert "clients_replied" not in table and table.loc[2, "train_loss"] < table.loc[1, "train_loss"]
    assert sorted(groups.index) == ["frcnn-mnv3", "frcnn-mnv3+minilm", "minilm"]
    assert torch.load(tmp_path / "runs/centralised/checkpoint.pt", weights_only=True)["round"] == 2
    assert_plot(tmp_path / "runs/centralised/rsum.png")
