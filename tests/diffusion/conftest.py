"""Fixtures of the diffusion tests: one torch thread, a fixed generator."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Run torch single-threaded: the many small element-wise ops of a sampler loop are
    ~50x slower when torch's thread pool competes with other processes on 2 cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(1234)
