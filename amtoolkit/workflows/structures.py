"""Start structures of melt-quench runs: a diamond supercell and random packings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers

from amtoolkit.analysis.energy import AMU_PER_A3_TO_G_PER_CM3

DIAMOND_ATOMS_PER_CELL = 8
MAX_PLACEMENT_TRIES = 2000  # random tries per atom before the packing gives up


def diamond_supercell(n_atoms: int, lattice_constant: float = 5.431, symbol: str = "Si") -> Atoms:
    """Diamond-structure cube of `n_atoms` = 8 k^3 atoms (k x k x k conventional cells).

    Args:
        n_atoms: 64, 216, 512, ... (8 k^3).
        lattice_constant: conventional cubic lattice constant (Å).
        symbol: element.

    Raises:
        ValueError: if `n_atoms` is not 8 k^3, naming the nearest valid sizes.
    """
    k = max(1, round((max(n_atoms, 1) / DIAMOND_ATOMS_PER_CELL) ** (1.0 / 3.0)))
    if isinstance(n_atoms, bool) or DIAMOND_ATOMS_PER_CELL * k**3 != n_atoms:
        nearest = sorted({DIAMOND_ATOMS_PER_CELL * j**3 for j in (max(1, k - 1), k, k + 1)})
        raise ValueError(
            f"a diamond supercell has 8 k^3 atoms (k x k x k conventional cells); "
            f"{n_atoms} is not one (nearest: {', '.join(map(str, nearest))})"
        )
    return bulk(symbol, "diamond", a=lattice_constant, cubic=True).repeat((k, k, k))


def cube_for_density(symbols: Sequence[str], density: float) -> float:
    """Edge (Å) of the cube holding `symbols` at mass `density` (g/cm^3)."""
    if not density > 0:
        raise ValueError(f"density must be > 0 g/cm^3, got {density}")
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)  # amu
    return float((mass * AMU_PER_A3_TO_G_PER_CM3 / density) ** (1.0 / 3.0))


PACKING_LIMIT = 0.3
"""Largest packing fraction of spheres of diameter min_distance that random sequential
addition is asked to reach (it jams near 0.38 in 3D, and slows long before)."""


def check_packing(n_per_volume: float, min_distance: float, what: str) -> None:
    """Raise ValueError when atoms at `n_per_volume` (1/Å^3) kept `min_distance` apart
    fill more than `PACKING_LIMIT` of space: random sequential addition cannot place them
    (`what` names the settings in the message)."""
    fraction = n_per_volume * math.pi / 6.0 * min_distance**3
    if fraction > PACKING_LIMIT:
        largest = (PACKING_LIMIT * 6.0 / (math.pi * n_per_volume)) ** (1.0 / 3.0)
        raise ValueError(
            f"{what}: spheres of min_distance {min_distance:g} Å would fill "
            f"{100 * fraction:.0f}% of the cell, more than random placement reaches "
            f"({100 * PACKING_LIMIT:.0f}%); give min_distance <= {largest:.2f} Å or a lower density"
        )


def random_packing(
    symbols: Sequence[str],
    density: float,
    min_distance: float,
    rng: np.random.Generator,
) -> Atoms:
    """Atoms placed one by one at uniform random positions in a periodic cube.

    Random sequential addition: a trial position closer than `min_distance` (minimum
    image) to an atom already placed is rejected and redrawn. The symbols are placed
    in a random order, so no element is favoured by the order of `symbols`.

    Args:
        symbols: element of each atom (the returned Atoms keeps this order).
        density: mass density of the cube (g/cm^3).
        min_distance: smallest allowed interatomic distance (Å).
        rng: random generator (positions and placement order).

    Returns:
        3D-periodic Atoms in a cube of edge `cube_for_density(symbols, density)`.

    Raises:
        ValueError: if an atom cannot be placed after MAX_PLACEMENT_TRIES tries
            (density or `min_distance` too large).

    References:
        J. Feder, J. Theor. Biol. 87, 237 (1980) (random sequential adsorption).
    """
    n = len(symbols)
    if n < 1:
        raise ValueError("random_packing needs at least one atom")
    if not min_distance >= 0:
        raise ValueError(f"min_distance must be >= 0 Å, got {min_distance}")
    edge = cube_for_density(symbols, density)
    positions = np.empty((n, 3))  # [n_atoms, 3] Å
    order = rng.permutation(n)
    placed = 0
    for atom in order:
        for _ in range(MAX_PLACEMENT_TRIES):
            trial = rng.random(3) * edge
            d = positions[order[:placed]] - trial
            d -= edge * np.round(d / edge)
            if placed == 0 or np.min(np.einsum("ij,ij->i", d, d)) >= min_distance**2:
                positions[atom] = trial
                placed += 1
                break
        else:
            raise ValueError(
                f"could not place atom {placed + 1} of {n} at least {min_distance} Å from the "
                f"others in a {edge:.2f} Å cube ({density} g/cm^3): lower the density or "
                "min_distance"
            )
    return Atoms(list(symbols), positions=positions, cell=[edge, edge, edge], pbc=True)
