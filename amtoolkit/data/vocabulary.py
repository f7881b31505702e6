"""Element vocabulary: the map between atomic numbers and model class indices.

One vocabulary per model, stored in its checkpoint; index 0 is always the ghost
class (atomic number 0, ASE symbol ``X``); see docs/datasets.md, *Element vocabulary*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from amtoolkit.data.ghosts import GHOST_NUMBER, GHOST_SYMBOL


class VocabularyError(ValueError):
    """An element or class index is not in an element vocabulary."""


def _as_number(element: int | str | np.integer) -> int:
    """Atomic number of a symbol or number; raise VocabularyError for unknown ones."""
    if isinstance(element, str):
        if element not in atomic_numbers:
            raise VocabularyError(f"unknown chemical symbol {element!r}")
        return int(atomic_numbers[element])
    if isinstance(element, (bool, np.bool_)) or not isinstance(element, (int, np.integer)):
        raise VocabularyError(
            f"element must be a chemical symbol or an atomic number, got {element!r}"
        )
    z = int(element)
    if not 0 <= z < len(chemical_symbols):
        raise VocabularyError(f"atomic number {z} is out of range 0..{len(chemical_symbols) - 1}")
    return z


@dataclasses.dataclass(frozen=True)
class ElementVocabulary:
    """Ordered element classes of a model; class 0 is the ghost (Z = 0, symbol ``X``).

    ``ElementVocabulary(["O", "Si"])`` (symbols or atomic numbers) gives the classes
    ``X, O, Si`` (indices 0, 1, 2): the ghost class is put first when it is not given.
    The order of the real elements is kept as given (it is part of a trained model);
    `from_structures` sorts them by atomic number.

    Attributes:
        numbers: atomic numbers by class index, ``numbers[0] == 0``.
    """

    numbers: tuple[int | str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.numbers, (str, int, np.integer)):
            raise VocabularyError(f"expected a list of elements, got {self.numbers!r}")
        numbers = [_as_number(e) for e in self.numbers]
        if not numbers or numbers[0] != GHOST_NUMBER:
            numbers.insert(0, GHOST_NUMBER)
        if GHOST_NUMBER in numbers[1:]:
            raise VocabularyError("the ghost class (X, Z=0) may only appear first")
        seen: set[int] = set()
        for z in numbers:
            if z in seen:
                raise VocabularyError(f"element {chemical_symbols[z]} (Z={z}) appears twice")
            seen.add(z)
        object.__setattr__(self, "numbers", tuple(numbers))
        lookup = np.full(len(chemical_symbols), -1, dtype=np.int64)  # Z -> class index
        lookup[numbers] = np.arange(len(numbers))
        object.__setattr__(self, "_lookup", lookup)

    @classmethod
    def from_elements(cls, elements: Iterable[int | str]) -> ElementVocabulary:
        """Vocabulary with the ghost class first, then `elements` in the given order.

        A leading ghost (``"X"`` or 0) in `elements` is accepted; a ghost elsewhere or a
        repeated element is an error.
        """
        return cls(tuple(elements))

    @classmethod
    def from_structures(cls, structures: Iterable) -> ElementVocabulary:
        """Vocabulary of every element present in `structures` (ase.Atoms), sorted by Z."""
        present: set[int] = set()
        for atoms in structures:
            present.update(int(z) for z in np.unique(atoms.numbers))
        present.discard(GHOST_NUMBER)
        return cls((GHOST_NUMBER, *sorted(present)))

    @property
    def symbols(self) -> list[str]:
        """Chemical symbols by class index (``"X"`` first)."""
        return [GHOST_SYMBOL if z == GHOST_NUMBER else chemical_symbols[z] for z in self.numbers]

    @property
    def elements(self) -> list[str]:
        """The real elements (without the ghost class), in class order."""
        return self.symbols[1:]

    @property
    def z_to_index(self) -> dict[int, int]:
        """Atomic number -> class index."""
        return {z: k for k, z in enumerate(self.numbers)}

    @property
    def index_to_z(self) -> np.ndarray:
        """Class index -> atomic number, ``[n_classes]`` int64."""
        return np.asarray(self.numbers, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.numbers)

    def __contains__(self, element: object) -> bool:
        try:
            return _as_number(element) in self.numbers  # type: ignore[arg-type]
        except VocabularyError:
            return False

    def encode(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Class indices of atomic numbers.

        Args:
            numbers: atomic numbers ``[n_atoms]`` (0 = ghost).

        Returns:
            Class indices ``[n_atoms]`` int64.

        Raises:
            VocabularyError: naming the first element that is not in the vocabulary.
        """
        z = np.asarray(numbers)
        if z.size == 0:
            return np.zeros(z.shape, dtype=np.int64)
        if not np.issubdtype(z.dtype, np.integer):
            raise VocabularyError(f"atomic numbers must be integers, got dtype {z.dtype}")
        bad = (z < 0) | (z >= len(chemical_symbols))
        if bad.any():
            raise VocabularyError(f"invalid atomic number {int(z[bad].flat[0])}")
        index = self._lookup[z]  # type: ignore[attr-defined]
        missing = index < 0
        if missing.any():
            zb = int(z[missing].flat[0])
            raise VocabularyError(
                f"element {chemical_symbols[zb]} (Z={zb}) is not in the vocabulary {self.symbols}"
            )
        return index.astype(np.int64)

    def decode(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Atomic numbers of class indices (``[n_atoms]`` int64; ghosts decode to 0).

        Raises:
            VocabularyError: naming the first index outside ``0..len(self) - 1``.
        """
        k = np.asarray(indices)
        if k.size == 0:
            return np.zeros(k.shape, dtype=np.int64)
        if not np.issubdtype(k.dtype, np.integer):
            raise VocabularyError(f"class indices must be integers, got dtype {k.dtype}")
        bad = (k < 0) | (k >= len(self.numbers))
        if bad.any():
            raise VocabularyError(
                f"class index {int(k[bad].flat[0])} is out of range 0..{len(self.numbers) - 1} "
                f"for the vocabulary {self.symbols}"
            )
        return self.index_to_z[k]

    def to_list(self) -> list[str]:
        """JSON-ready form: the symbols by class index, e.g. ``["X", "O", "Si"]``."""
        return self.symbols

    @classmethod
    def from_list(cls, symbols: Sequence[str | int]) -> ElementVocabulary:
        """Inverse of `to_list` (the list must start with the ghost ``"X"``)."""
        if not symbols or _as_number(symbols[0]) != GHOST_NUMBER:
            raise VocabularyError(
                f"a stored vocabulary must start with the ghost 'X', got {list(symbols)}"
            )
        return cls(tuple(symbols))
