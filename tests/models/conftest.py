import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # On the shared 2-core machine, two intra-op threads competing with other jobs
    # made a resnet110 step ~60x slower than one thread; these nets are tiny anyway.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
