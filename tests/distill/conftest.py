import pytest
import torch

import torchworks.distill  # noqa: F401  (registers losses and models)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
