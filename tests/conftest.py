import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convolutions run fastest on one thread (and do not fight a busy machine's cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
