"""Tests for amtoolkit.analysis.crystallinity: spglib space groups, P1 = amorphous."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from amtoolkit.analysis.crystallinity import CrystallinityResult, crystallinity, space_group
from amtoolkit.errors import StructureError


def random_cell(n_atoms: int, length: float, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    return Atoms(
        f"Si{n_atoms}",
        positions=rng.uniform(0.0, length, (n_atoms, 3)),
        cell=[length] * 3,
        pbc=True,
    )


@pytest.mark.parametrize(
    ("atoms", "symbol", "number"),
    [
        (bulk("Si", "diamond", a=5.431, cubic=True), "Fd-3m", 227),
        (bulk("Cu", "fcc", a=3.61, cubic=True), "Fm-3m", 225),
        (bulk("Fe", "bcc", a=2.87, cubic=True), "Im-3m", 229),
        (bulk("NaCl", "rocksalt", a=5.64), "Fm-3m", 225),
    ],
)
def test_known_crystals(atoms, symbol, number):
    assert space_group(atoms) == (symbol, number)
    result = crystallinity(atoms)
    assert result.crystalline == [True]


def test_amorphous_cells_are_p1(diamond_si):
    rattled = diamond_si.repeat(2)
    rattled.rattle(0.3, seed=0)
    result = crystallinity([rattled, random_cell(64, 10.9, seed=1)])
    assert isinstance(result, CrystallinityResult)
    assert result.number == [1, 1]
    assert result.spacegroup == ["P1", "P1"]
    assert result.crystalline == [False, False]


def test_symprec_sets_the_tolerance(diamond_si):
    noisy = diamond_si.repeat(2)
    noisy.rattle(0.005, seed=2)
    assert crystallinity(noisy, symprec=0.1).number == [227]
    assert crystallinity(noisy, symprec=1e-4).number == [1]


def test_ghosts_ignored_and_set_fraction(diamond_si):
    ghosted = diamond_si + Atoms("X", positions=[[0.3, 1.1, 2.7]])
    result = crystallinity([ghosted, random_cell(16, 6.0, seed=3)])
    assert result.number == [227, 1]
    assert result.crystalline_fraction == pytest.approx(0.5)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["spacegroup"] == ["Fd-3m", "P1"]
    assert data["crystalline_fraction"] == pytest.approx(0.5)


def test_bad_input(diamond_si):
    overlapping = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0.01]], cell=[5.0] * 3, pbc=True)
    with pytest.raises(StructureError, match="spglib"):
        crystallinity(overlapping)
    with pytest.raises(ValueError, match="symprec"):
        crystallinity(diamond_si, symprec=0.0)
    slab = diamond_si.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(StructureError, match="periodic"):
        crystallinity(slab)
