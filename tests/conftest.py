import os

import pytest
import torch

from tests import flower_runs


@pytest.fixture(scope="session", autouse=True)
def shared_run_cache(tmp_path_factory):
    """The Flower runs' shared scene/detector/feature cache: fresh each session, one for all xdist workers
    (their base temp dirs are siblings)."""
    base = tmp_path_factory.getbasetemp()
    flower_runs.SHARED_CACHE = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "shared-cache"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convolutions run fastest on one thread (and do not fight a busy machine's cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items):
    """Test files with slow (end-to-end `flwr run`) tests first, the longest known first, so that the
    xdist workers (scripts/test.sh: --dist loadfile --no-loadscope-reorder) start them at once and the
    quick files fill in around them; the order within a file is kept."""
    first = ("test_cluster_tls.py", "test_flower_e2e.py", "test_jscc_flower.py", "test_ray_attach.py")
    rank = {name: i for i, name in enumerate(first)}
    items.sort(key=lambda item: rank.get(item.path.name, len(first)))
