"""Ghost atoms: counts, positions inside the cell, exact removal."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from amtoolkit.data import (
    GHOST_NUMBER,
    MAX_DENSITY,
    add_ghosts,
    ghost_mask,
    n_target,
    remove_ghosts,
)
from amtoolkit.errors import StructureError

UNIFORM_SIGMAS = 5.0  # allowed deviation of a sample mean from 1/2, in standard errors


def _three_si(cell) -> Atoms:
    return Atoms(
        "Si3",
        scaled_positions=[[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.9, 0.1, 0.7]],
        cell=cell,
        pbc=True,
    )


def test_n_target_known_answer():
    atoms = _three_si(np.eye(3) * 10.0)  # V = 1000 Å^3
    assert n_target(atoms, 0.09) == 90
    assert n_target(atoms, 0.11) == 110
    assert n_target(atoms, 0.0905) == 90  # floor, not round


def test_add_ghosts_count_and_positions_inside_triclinic_cell():
    cell = np.array([[9.0, 0.0, 0.0], [2.5, 8.0, 0.0], [1.0, -1.5, 11.0]])
    atoms = _three_si(cell)
    atoms.info["shear_modulus"] = 31.0
    volume = abs(np.linalg.det(cell))
    rho = MAX_DENSITY["a-sio2"]
    out = add_ghosts(atoms, rho, rng=0)
    expected = int(np.floor(rho * volume)) - len(atoms)
    assert expected > 0
    mask = ghost_mask(out)
    assert mask.sum() == expected
    assert len(out) == int(np.floor(rho * volume))
    assert np.all(out.numbers[mask] == GHOST_NUMBER)
    assert set(out[mask].get_chemical_symbols()) == {"X"}
    frac = np.linalg.solve(cell.T, out.positions[mask].T).T
    assert np.all(frac >= 0.0) and np.all(frac < 1.0)
    # real atoms come first and are unchanged; the input is not modified
    np.testing.assert_array_equal(out.positions[: len(atoms)], atoms.positions)
    assert len(atoms) == 3
    assert out.info["shear_modulus"] == 31.0


def test_remove_ghosts_gives_back_the_original():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True) * (2, 1, 1)
    atoms.numbers[3] = 8  # two elements, to check order is kept
    out = remove_ghosts(add_ghosts(atoms, 0.11, rng=np.random.default_rng(3)))
    np.testing.assert_array_equal(out.numbers, atoms.numbers)
    np.testing.assert_array_equal(out.positions, atoms.positions)
    np.testing.assert_array_equal(out.cell.array, atoms.cell.array)
    np.testing.assert_array_equal(out.pbc, atoms.pbc)


def test_same_seed_same_ghosts_and_generator_accepted():
    atoms = _three_si(np.eye(3) * 8.0)
    a = add_ghosts(atoms, 0.09, rng=7)
    b = add_ghosts(atoms, 0.09, rng=np.random.default_rng(7))
    c = add_ghosts(atoms, 0.09, rng=8)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)


def test_ghost_positions_are_uniform():
    atoms = _three_si(np.eye(3) * 40.0)  # 64000 Å^3 -> 5757 ghosts at 0.09
    out = add_ghosts(atoms, 0.09, rng=1)
    frac = out.get_scaled_positions(wrap=False)[ghost_mask(out)]
    n = len(frac)
    standard_error = np.sqrt(1.0 / 12.0 / n)  # of the mean of U[0, 1)
    assert np.all(np.abs(frac.mean(axis=0) - 0.5) < UNIFORM_SIGMAS * standard_error)
    # a quarter of the points in each of four slabs along every axis
    for axis in range(3):
        counts = np.histogram(frac[:, axis], bins=4, range=(0, 1))[0]
        assert np.all(np.abs(counts - n / 4) < UNIFORM_SIGMAS * np.sqrt(n * 0.25 * 0.75))


def test_dense_structure_gets_no_ghosts():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)  # 8 atoms in 160 Å^3: 0.05/Å^3
    out = add_ghosts(atoms, 0.01, rng=0)  # n_target = 1 < 8
    assert len(out) == len(atoms)
    assert out is not atoms


def test_bad_inputs():
    atoms = _three_si(np.eye(3) * 10.0)
    with pytest.raises(StructureError, match="already contains 87 ghost"):
        add_ghosts(add_ghosts(atoms, 0.09, rng=0), 0.09, rng=0)
    with pytest.raises(StructureError, match="volume"):
        add_ghosts(Atoms("Si", positions=[[0, 0, 0]]), 0.09, rng=0)
    with pytest.raises(ValueError, match="max_density"):
        n_target(atoms, -1.0)
