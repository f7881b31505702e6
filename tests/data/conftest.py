"""Fixtures of the dataset tests."""

from __future__ import annotations

import pytest
from ase import Atoms

from tests.data.helpers import make_frames


@pytest.fixture
def frames() -> list[Atoms]:
    """Six small random frames with properties (see `make_frames`)."""
    return make_frames()
