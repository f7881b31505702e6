"""Ghost atoms: placeholder atoms that let a fixed-size model set the density.

For a target maximum density rho_max (atoms/Å^3) a cell of volume V holds
n_target = floor(rho_max V) atoms; a structure with n_real < n_target real atoms
gets n_target - n_real ghosts (atomic number 0, ASE symbol ``X``) at uniform random
positions. The model treats them as an ordinary class (index 0 of the element
vocabulary) and they are deleted after denoising, so the real density is set by how
many atoms end up as ghosts.

References:
    AMDEN (Amorphous Material DEnoising Network), section "ghost atoms"; docs/datasets.md,
    *Ghost atoms*.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from amtoolkit.errors import StructureError

GHOST_NUMBER = 0
"""Atomic number of a ghost atom."""

GHOST_SYMBOL = "X"
"""ASE chemical symbol of a ghost atom."""

MAX_DENSITY: dict[str, float] = {"a-sio2": 0.09, "meg": 0.11}
"""Default maximum number densities rho_max (atoms/Å^3) by material system (AMDEN)."""

_FLOOR_TOLERANCE = 1e-9
"""rho V within this of an integer from below counts as that integer (round-off guard)."""


def ghost_mask(atoms: Atoms) -> np.ndarray:
    """Boolean mask ``[n_atoms]``, True for ghost atoms (atomic number 0)."""
    return atoms.numbers == GHOST_NUMBER


def _volume(atoms: Atoms) -> float:
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if not np.isfinite(volume) or volume < 1e-6:
        raise StructureError("ghost atoms need a 3D cell with positive volume (cell volume is 0)")
    return volume


def n_target(atoms: Atoms, max_density: float) -> int:
    """Number of atoms (real + ghost) a cell holds at the maximum density.

    Args:
        atoms: structure with a 3D cell (volume V in Å^3).
        max_density: rho_max in atoms/Å^3 (e.g. ``MAX_DENSITY["a-sio2"]`` = 0.09).

    Returns:
        floor(rho_max V) (a product within 1e-9 below an integer counts as that integer).

    References:
        AMDEN ghost atoms; docs/datasets.md, *Ghost atoms*.
    """
    if not np.isfinite(max_density) or max_density <= 0:
        raise ValueError(f"max_density must be a positive number of atoms/Å^3, got {max_density}")
    return int(math.floor(max_density * _volume(atoms) + _FLOOR_TOLERANCE))


def add_ghosts(atoms: Atoms, max_density: float, rng: np.random.Generator | int) -> Atoms:
    """Return a copy of `atoms` padded with ghosts up to ``n_target(atoms, max_density)``.

    max(0, floor(rho_max V) - n_real) ghost atoms (Z = 0, symbol ``X``) are appended
    after the real atoms at positions drawn uniformly in the cell (fractional
    coordinates ~ U[0, 1)^3). Cell, pbc and ``info`` are kept; per-atom arrays other than
    numbers/positions are zero for the ghosts. The input is not modified.

    Args:
        atoms: structure without ghosts, 3D cell.
        max_density: rho_max in atoms/Å^3.
        rng: numpy Generator, or an int seed for ``np.random.default_rng``.

    Returns:
        New Atoms with ``n_real + n_ghost`` atoms.

    Raises:
        StructureError: if `atoms` already holds ghosts or its cell has no volume.

    References:
        AMDEN ghost atoms; docs/datasets.md, *Ghost atoms*.
    """
    n_ghosts_in = int(ghost_mask(atoms).sum())
    if n_ghosts_in:
        raise StructureError(
            f"structure already contains {n_ghosts_in} ghost atoms; call remove_ghosts first"
        )
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n_ghosts = max(0, n_target(atoms, max_density) - len(atoms))
    out = atoms.copy()
    if n_ghosts == 0:
        return out
    fractional = generator.random((n_ghosts, 3))  # [n_ghosts, 3] in [0, 1)
    ghosts = Atoms(
        numbers=np.full(n_ghosts, GHOST_NUMBER),
        positions=fractional @ atoms.cell.array + atoms.get_celldisp().reshape(3),
        cell=atoms.cell,
        pbc=atoms.pbc,
    )
    out.extend(ghosts)
    return out


def remove_ghosts(atoms: Atoms) -> Atoms:
    """Return a copy of `atoms` without its ghost atoms (the real atoms keep their order)."""
    return atoms[~ghost_mask(atoms)]
