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
    """The TLS cluster test first, the other files in their usual order: it runs about 4-7 minutes, mostly
    waiting (a SuperNode's heartbeat expiry, per-message ClientApp processes), so one xdist worker starts
    it at once while the others work through the rest (scripts/test.sh: --no-loadscope-reorder; xdist's
    own reordering by test count put this one-test file last, to run alone at the end). Putting all the
    real `flwr run` files first was slower: three at once fight for the two cores (9 min 41 s)."""
    items.sort(key=lambda item: item.path.name != "test_cluster_tls.py")
