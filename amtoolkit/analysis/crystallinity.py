"""Crystallinity check: the space group of each structure (spglib); P1 means amorphous."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable

from ase import Atoms

from amtoolkit.analysis._result import Result
from amtoolkit.analysis._structures import prepare
from amtoolkit.errors import StructureError

#: space group number of P1, the group of a cell with no symmetry beyond translations
P1 = 1


@dataclasses.dataclass(frozen=True)
class CrystallinityResult(Result):
    """Space groups of a set of structures.

    Attributes:
        spacegroup: international (Hermann-Mauguin) symbol per structure, e.g. "Fd-3m".
        number: space group number per structure (1 = P1).
        crystalline: True where the space group is higher than P1.
        symprec: distance tolerance used by spglib, Å.
    """

    spacegroup: list[str]
    number: list[int]
    crystalline: list[bool]
    symprec: float

    @property
    def crystalline_fraction(self) -> float:
        """Fraction of the set with a space group above P1."""
        return sum(self.crystalline) / len(self.crystalline)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["crystalline_fraction"] = self.crystalline_fraction
        return out


def space_group(atoms: Atoms, symprec: float = 0.1) -> tuple[str, int]:
    """Space group symbol and number of a periodic structure.

    Args:
        atoms: periodic structure (ghost atoms already removed).
        symprec: distance tolerance for symmetry search, Å.

    Returns:
        (international symbol, space group number).

    Raises:
        StructureError: if spglib cannot analyse the cell (e.g. overlapping atoms).

    References:
        A. Togo, K. Shinohara, I. Tanaka, Sci. Technol. Adv. Mater. Meth. 4,
        2384822 (2024) (spglib).
    """
    import spglib

    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    try:
        with warnings.catch_warnings():
            # spglib 2.x announces its switch from None-returns to exceptions on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception as err:  # newer spglib raises SpglibError instead of returning None
        raise StructureError(f"spglib could not find the space group: {err}") from err
    if dataset is None:
        raise StructureError(
            "spglib could not find the space group (atoms closer than symprec"
            f" = {symprec} Å, or a degenerate cell)"
        )
    if isinstance(dataset, dict):  # spglib < 2.5 returns a plain dict
        return str(dataset["international"]), int(dataset["number"])
    return str(dataset.international), int(dataset.number)


def crystallinity(structures: Atoms | Iterable[Atoms], symprec: float = 0.1) -> CrystallinityResult:
    """Space group of each structure; anything above P1 counts as crystalline.

    Pass relaxed structures: thermal noise hides the symmetry of a crystal that a
    relaxation would restore (at `symprec` 0.1 Å, rattles of ~0.01 Å are tolerated).
    Ghost atoms are dropped first.

    Args:
        structures: one periodic Atoms or a sequence of them.
        symprec: distance tolerance for the symmetry search, Å.

    Returns:
        CrystallinityResult with symbols, numbers and crystalline flags per structure.
    """
    if not symprec > 0:
        raise ValueError(f"symprec must be positive, got {symprec}")
    frames = prepare(structures)
    groups = [space_group(atoms, symprec) for atoms in frames]
    return CrystallinityResult(
        spacegroup=[symbol for symbol, _ in groups],
        number=[number for _, number in groups],
        crystalline=[number > P1 for _, number in groups],
        symprec=float(symprec),
    )
