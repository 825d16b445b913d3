"""One torch thread for the tests of small recurrent models and of ChemNet: their many small steps run fastest on one
thread, and far slower with two on a machine whose cores are busy. Use: `from _threads import one_thread` and
`pytestmark = pytest.mark.usefixtures("one_thread")`."""

import pytest
import torch


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
