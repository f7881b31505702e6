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


@pytest.fixture
def model() -> ScoreDenoiser:
    return tiny_model()


@pytest.fixture
def batch() -> Batch:
    return random_batch()
