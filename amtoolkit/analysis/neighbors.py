"""The one neighbour-list entry point of the analysis code (vesin, periodic, full lists)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from vesin import NeighborList


def neighbor_list(atoms: Atoms, cutoff: float, quantities: str = "ijd") -> tuple[np.ndarray, ...]:
    """Full neighbour list of `atoms` within `cutoff` (Å): every pair appears as i-j and j-i.

    Args:
        atoms: structure (periodic directions from `atoms.pbc`).
        cutoff: cutoff radius in Å.
        quantities: any of "i", "j", "S" (cell shifts), "d" (distances), "D" (vectors j - i),
            as in ase.neighborlist.neighbor_list.

    Returns:
        One array per requested quantity, in order.
    """
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    out = nl.compute(
        points=np.ascontiguousarray(atoms.positions, dtype=np.float64),
        box=np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
        periodic=bool(np.all(atoms.pbc)),
        quantities=quantities,
        copy=True,
    )
    if len(quantities) == 1:
        return (out,) if not isinstance(out, (list, tuple)) else tuple(out)
    return tuple(out)
