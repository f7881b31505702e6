"""Fixtures of the network tests: tiny float64 models and small periodic batches."""

from __future__ import annotations

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.nn import ScoreDenoiser
from tests.nn.helpers import random_batch, tiny_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: threads only add contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[0, 6], ids=["e_ij", "radial_basis"])
def model(request) -> ScoreDenoiser:
    """The tiny model with the AMDEN edge attribute only, and with a radial basis too."""
    return tiny_model(radial_basis=request.param)


@pytest.fixture
def batch() -> Batch:
    return random_batch()
