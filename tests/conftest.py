"""Shared fixtures: fixed seeds and small reference structures."""

from __future__ import annotations

import os

# Multi-threaded OpenBLAS makes the many tiny 3x3 solves of cell relaxations ~50x slower
# when both cores are busy; the suite is faster and steadier single-threaded.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402  (the environment must be set before numpy loads)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase.build import bulk  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _fixed_seed():
    np.random.seed(0)  # noqa: NPY002  (fixes the legacy global RNG that ASE rattle etc. use)


@pytest.fixture(autouse=True)
def _private_analysis_cache(tmp_path_factory, monkeypatch):
    """`amtool analyze` keeps per-frame results in a cache folder: one per test, never the
    user's (a test must measure what it asserts, not read another test's results)."""
    monkeypatch.setenv("AMTOOLKIT_CACHE", str(tmp_path_factory.mktemp("analysis-cache")))


@pytest.fixture
def diamond_si():
    """Conventional 8-atom diamond Si cell at the SW lattice constant (5.431 Å)."""
    return bulk("Si", "diamond", a=5.431, cubic=True)


@pytest.fixture
def dm2_sio2_path():
    """One 3000-atom SiO2 glass from ../shared/data/dm2-sio2 (skips if absent)."""
    path = SHARED_DATA / "dm2-sio2" / "sio2_3000_glass_1k_sample0.dat"
    if not path.exists():
        pytest.skip(f"external data not found: {path}")
    return path
