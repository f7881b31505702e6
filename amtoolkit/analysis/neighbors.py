"""The one neighbour-list entry point of the analysis code (vesin, periodic, full lists)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from vesin import NeighborList


def neighbor_list(
    atoms: Atoms, cutoff: float, quantities: str = "ijd", *, full_list: bool = True
) -> tuple[np.ndarray, ...]:
    """Full neighbour list of `atoms` within `cutoff` (Å): every pair appears as i-j and j-i.

    Args:
        atoms: structure (periodic directions from `atoms.pbc`).
        cutoff: cutoff radius in Å.
        quantities: any of "i", "j", "S" (cell shifts), "d" (distances), "D" (vectors j - i),
            as in ase.neighborlist.neighbor_list.
        full_list: False gives a half list (each pair once), for pair histograms.

    Returns:
        One array per requested quantity, in order.
    """
    periodic = bool(np.all(atoms.pbc))
    positions = atoms.positions
    if periodic and "S" not in quantities:
        # vesin is 2-3x faster with positions inside the cell (unwrapped MD output can lie
        # several cells away); i, j, d and D do not change, only the shifts S would
        positions = atoms.get_positions(wrap=True)
    nl = NeighborList(cutoff=float(cutoff), full_list=full_list)
    out = nl.compute(
        points=np.ascontiguousarray(positions, dtype=np.float64),
        box=np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
        periodic=periodic,
        quantities=quantities,
        copy=True,
    )
    if len(quantities) == 1:
        return (out,) if not isinstance(out, (list, tuple)) else tuple(out)
    return tuple(out)
