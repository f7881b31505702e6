"""Tests for amtoolkit.analysis.entropy: QUESTS entropy and overlap (optional `quests`)."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
from ase import Atoms

from amtoolkit.analysis import entropy as entropy_module
from amtoolkit.analysis.entropy import entropy, overlap

ENTROPY_TOL = 1e-8  # nats, reference implementation / identical environments
DISTINCT_TOL = 0.05  # nats, distinct environments give log N up to kernel tails


def random_cell(n_atoms: int, length: float, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    return Atoms(
        f"Si{n_atoms}",
        positions=rng.uniform(0.0, length, (n_atoms, 3)),
        cell=[length] * 3,
        pbc=True,
    )


def reference_entropy(x: np.ndarray, h: float) -> float:
    """-(1/N) sum_i log[(1/N) sum_j exp(-|x_i - x_j|^2 / 2h^2)] in plain numpy."""
    d2 = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    return float(-np.mean(np.log(np.mean(np.exp(-0.5 * d2 / h**2), axis=1))))


@pytest.fixture
def no_quests(monkeypatch):
    for name in [m for m in sys.modules if m == "quests" or m.startswith("quests.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("quests", "quests.descriptor", "quests.entropy"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import quests...` fail


def test_missing_quests_names_the_extra(diamond_si, no_quests):
    for call in (lambda: entropy(diamond_si), lambda: overlap(diamond_si, diamond_si)):
        with pytest.raises(ImportError, match=r"pip install 'amtoolkit\[entropy\]'"):
            call()


@pytest.fixture
def quests():
    return pytest.importorskip("quests")


def test_identical_environments_have_zero_entropy(diamond_si, quests):
    result = entropy(diamond_si.repeat((2, 1, 1)))
    assert result.entropy == pytest.approx(0.0, abs=ENTROPY_TOL)
    assert result.n_environments == 16
    assert result.diversity == pytest.approx(0.0, abs=ENTROPY_TOL)


def test_distinct_environments_reach_log_n(quests):
    result = entropy(random_cell(64, 10.0, seed=0))
    assert result.entropy == pytest.approx(np.log(64), abs=DISTINCT_TOL)
    assert result.entropy <= np.log(64) + ENTROPY_TOL


def test_set_entropy_matches_reference_formula(diamond_si, quests):
    disordered = random_cell(40, 8.0, seed=1)
    result = entropy([diamond_si, disordered], bandwidth=0.05)
    x = entropy_module.descriptors([diamond_si, disordered])
    assert x.shape == (48, 2 * 32 - 1)
    assert result.entropy == pytest.approx(reference_entropy(x, 0.05), abs=ENTROPY_TOL)
    assert result.per_structure.shape == (2,)
    assert result.per_structure[0] == pytest.approx(0.0, abs=ENTROPY_TOL)
    assert result.per_structure[1] == pytest.approx(reference_entropy(x[8:], 0.05), abs=ENTROPY_TOL)
    # pooling 8 identical and 40 distinct environments: known mixture entropy
    mixture = (8 * np.log(48 / 8) + 40 * np.log(48)) / 48
    assert result.entropy == pytest.approx(mixture, abs=DISTINCT_TOL)


def test_ghosts_are_ignored(diamond_si, quests):
    ghosted = diamond_si + Atoms("X3", positions=[[0.1, 0.2, 0.3], [1, 2, 3], [4, 1, 2]])
    result = entropy(ghosted)
    assert result.n_environments == 8
    assert result.entropy == pytest.approx(0.0, abs=ENTROPY_TOL)


def test_overlap(diamond_si, quests):
    disordered = random_cell(32, 9.0, seed=2)
    assert overlap(diamond_si, diamond_si).overlap == 1.0
    assert overlap(diamond_si, [disordered, diamond_si]).overlap == 1.0
    half = overlap([diamond_si, random_cell(8, 5.431, seed=3)], diamond_si)
    assert half.overlap == pytest.approx(0.5)
    assert half.dH.shape == (16,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # log(0) is guarded
        far = overlap(disordered, diamond_si)
    assert far.overlap == 0.0
    assert np.all(far.dH > 1.0)
    assert np.isinf(far.dH).any()  # kernel sums underflow for unrelated environments
    data = json.loads(json.dumps(far.to_dict(), allow_nan=False))
    assert data["overlap"] == 0.0
    assert None in data["dH"]


def test_entropy_json_and_bad_arguments(diamond_si, quests):
    data = json.loads(json.dumps(entropy(diamond_si).to_dict()))
    assert data["k"] == 32 and data["cutoff"] == 5.0 and data["bandwidth"] == 0.015
    with pytest.raises(ValueError, match="bandwidth"):
        entropy(diamond_si, bandwidth=0.0)
    with pytest.raises(ValueError, match="k must be"):
        entropy(diamond_si, k=1)
