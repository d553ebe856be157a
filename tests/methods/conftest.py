import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Method tests use tiny tensors, which gain nothing from threads; on a busy 2-core box two
    intra-op threads make them 5-10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
