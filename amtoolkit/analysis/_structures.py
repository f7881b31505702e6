"""Validation and normalisation of the structures every analysis function receives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms

from amtoolkit.errors import StructureError

GHOST_NUMBER = 0


def as_structure_list(structures: Atoms | Iterable[Atoms]) -> list[Atoms]:
    """Return `structures` as a non-empty list of Atoms (one Atoms becomes a list of one)."""
    if isinstance(structures, Atoms):
        return [structures]
    try:
        out = list(structures)
    except TypeError:
        raise StructureError(
            f"expected an ase.Atoms or a sequence of them, got {type(structures).__name__}"
        ) from None
    if not out:
        raise StructureError("no structures given")
    for k, a in enumerate(out):
        if not isinstance(a, Atoms):
            raise StructureError(f"frame {k}: expected ase.Atoms, got {type(a).__name__}")
    return out


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """Distances between the opposite faces of a cell (rows a, b, c), Å, shape ``[3]``:
    the volume over the area of the face that each lattice vector leaves."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(float(np.linalg.det(cell)))
    return volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def frame_digest(atoms: Atoms) -> str:
    """SHA-256 (hex, 16 characters) of a frame's elements, cell and positions (rounded
    to 1e-6 Å): what identifies a frame to a resumed dataset run (its sample records
    carry it) and to the per-frame analysis cache."""
    import hashlib

    digest = hashlib.sha256(atoms.numbers.astype(np.int64).tobytes())
    for array in (atoms.cell.array, atoms.positions):
        digest.update((np.round(np.asarray(array, dtype=np.float64), 6) + 0.0).tobytes())
    return digest.hexdigest()[:16]


def real_atoms(atoms: Atoms) -> Atoms:
    """Return `atoms` without ghost atoms (atomic number 0); the input is not modified."""
    mask = atoms.numbers != GHOST_NUMBER
    if mask.all():
        return atoms
    return atoms[mask]


def atom_name(atoms: Atoms, index: int) -> str:
    """``"atom 10"`` (0-based, as in ASE), with the file's own id when it has one (LAMMPS:
    ``"atom 10 (id 11)"``)."""
    ids = atoms.arrays.get("id")
    return f"atom {index}" + (f" (id {int(ids[index])})" if ids is not None else "")


MAX_NUMBER_DENSITY = 0.5
"""Atoms per Å^3 above which a periodic structure is refused: no solid comes near (diamond
0.18), and a cell written in nm reads 1000 times denser (an a-Si file in nm analysed as
2426 g/cm3 with a coordination of 5239; a cell 1000 times too small held the neighbour
search for minutes)."""


def check_structure(atoms: Atoms, *, periodic: bool = True, frame: int | None = None) -> None:
    """Raise StructureError naming the problem if `atoms` cannot be analysed.

    Checks: at least one atom, finite positions, and (when `periodic`) a 3D-periodic
    cell with positive volume holding at most `MAX_NUMBER_DENSITY` atoms per Å^3.
    """
    where = f"frame {frame}: " if frame is not None else ""
    if len(atoms) == 0:
        raise StructureError(f"{where}structure has no atoms")
    pos = atoms.positions
    if not np.all(np.isfinite(pos)):
        bad = int(np.argwhere(~np.isfinite(pos))[0, 0])
        raise StructureError(f"{where}non-finite position (NaN or inf) on {atom_name(atoms, bad)}")
    if periodic:
        if not all(atoms.pbc):
            hint = ""
            if not atoms.cell.any():  # e.g. read from plain XYZ, which carries no cell
                hint = "; it has no cell: use extended XYZ (Lattice=...) or a format with one"
            raise StructureError(
                f"{where}cell is not periodic in all three directions (pbc={atoms.pbc.tolist()})"
                + hint
            )
        volume = abs(np.linalg.det(atoms.cell.array))
        if not np.isfinite(volume) or volume < 1e-6:
            raise StructureError(f"{where}cell has zero volume")
        per_a3 = len(atoms) / volume
        if per_a3 > MAX_NUMBER_DENSITY:
            raise StructureError(
                f"{where}{len(atoms)} atoms in {volume:.3g} Å^3 is {per_a3:.3g} atoms/Å^3, "
                f"above any solid (diamond: 0.18): are the lengths in nm or bohr, not Å?"
            )


def prepare(structures: Atoms | Iterable[Atoms], *, periodic: bool = True) -> list[Atoms]:
    """Validate a structure or set and return the real-atom (ghost-free) list."""
    frames = as_structure_list(structures)
    out = []
    for k, a in enumerate(frames):
        frame = k if len(frames) > 1 else None
        check_structure(a, periodic=periodic, frame=frame)
        real = real_atoms(a)
        if len(real) == 0:
            where = f"frame {k}: " if frame is not None else ""
            raise StructureError(f"{where}structure has only ghost atoms")
        out.append(real)
    return out


def species_of(frames: Sequence[Atoms]) -> list[str]:
    """Sorted element symbols present in any of `frames` (by atomic number)."""
    numbers = sorted({int(z) for a in frames for z in np.unique(a.numbers)})
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in numbers]
