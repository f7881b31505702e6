"""Small structures for the potential tests (all built in code, a few dozen atoms)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list


def beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite SiO2 (24 atoms): diamond Si with O at the Si-Si midpoints."""
    si = bulk("Si", "diamond", a=a, cubic=True)
    i, j, vec = neighbor_list("ijD", si, 1.05 * a * np.sqrt(3) / 4)
    first = i < j
    oxygen = si.positions[i[first]] + 0.5 * vec[first]
    return si + Atoms(f"O{len(oxygen)}", positions=oxygen)


@pytest.fixture
def cristobalite() -> Atoms:
    """Rattled beta-cristobalite SiO2, 24 atoms."""
    atoms = beta_cristobalite()
    atoms.rattle(0.05, seed=4)
    return atoms


@pytest.fixture
def rattled_si(diamond_si) -> Atoms:
    """Rattled 8-atom diamond Si, slightly expanded so that it is under stress."""
    atoms = diamond_si.copy()
    atoms.set_cell(atoms.cell * 1.01, scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    return atoms
