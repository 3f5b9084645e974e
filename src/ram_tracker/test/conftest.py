import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Test tensors are tiny: a second thread only adds synchronisation cost, and on CI's two
    shared cores (other processes of the same test running) it made tests many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
