import pandas as pd
import pytest
import torch

from semfed.centralised import train_centralised
from semfed.config import load_config
from semfed.participants import build_adapter, client_shard
from semfed.training import epoch_batches, train_local
from tests.checks import assert_trained


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_config(work_dir=str(tmp_path_factory.mktemp("work")), scenes_train=30, scenes_val=2, scenes_test=6,
                       scenes_image_size=64, frcnn_mnv3_input_size=64, max_regions=3, batch_size=8,
                       num_server_rounds=2, clients="frcnn-mnv3+minilm:2;minilm:1", partitioning="iid")


def test_epoch_batches_cover_every_sample_once_per_epoch():
    batches = epoch_batches(10, 2, 4, torch.Generator().manual_seed(0))
    assert [len(idx) for idx, _ in batches] == [4, 4, 2, 4, 4, 2]
    for epoch in (batches[:3], batches[3:]):
        assert sorted(torch.cat([idx for idx, _ in epoch]).tolist()) == list(range(10))
    assert all(((c >= 0) & (c < 5)).all() for _, c in batches)


def test_local_training_is_deterministic_in_its_seed_and_moves_the_adapter(tiny):
    shard = client_shard(tiny, 0)
    states = []
    for seed in (1, 1, 2):
        model = build_adapter(tiny, ("frcnn-mnv3", "minilm"), seed=0)
        local = train_local(model, shard, tiny, epochs=2, seed=seed, device="cpu")
        assert local.steps == 2 * -(-len(shard) // tiny.batch_size) and local.train_loss > 0
        assert local.confidence.isnan().all() and not local.excluded.any()  # labels not scored by default
        states.append(model.state_dict())
    initial = build_adapter(tiny, ("frcnn-mnv3", "minilm"), seed=0).state_dict()
    assert all(torch.equal(states[0][k], states[1][k]) for k in initial)
    assert any(not torch.equal(states[0][k], states[2][k]) for k in initial)
    assert any(not torch.equal(states[0][k], initial[k]) for k in initial)


def test_centralised_bound_writes_a_run_directory(tiny):
    run = train_centralised(tiny.replace(run_name="central"))
    table = pd.read_csv(run / "metrics.csv")
    assert table["round"].tolist() == [0, 1, 2]
    assert_trained(table)
    assert table.loc[1:, "train_loss"].notna().all()
    assert (run / "checkpoint.pt").exists() and (run / "rsum.png").exists()
