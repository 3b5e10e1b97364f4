import pytest
import torch

from semfed.retrieval.participants import build_adapter, client_shard
from semfed.retrieval.training import epoch_batches, train_local
from tests.flower_runs import tiny_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_config(tmp_path_factory.mktemp("work"), num_server_rounds=2)


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
