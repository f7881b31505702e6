"""Flat batches of periodic structures for the models (docs/models.md).

A batch holds many systems at once without padding: per-atom tensors are concatenated
and `system_idx` says which system each atom belongs to; cells are per system. This is
the one structure that crosses from `data/` into `nn/` and `diffusion/`; conversion
from and to `ase.Atoms` happens only here (`from_atoms`, `to_atoms`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from ase import Atoms

from amtoolkit.data.vocabulary import ElementVocabulary


@dataclasses.dataclass(frozen=True)
class Batch:
    """Many periodic systems as flat tensors.

    Attributes:
        positions: Cartesian positions, Å, unwrapped. [n_atoms, 3]
        elements: element features, one-hot in data and continuous while diffusing.
            [n_atoms, n_classes]
        cell: cell vectors as rows, Å. [n_systems, 3, 3]
        system_idx: system index of each atom, sorted ascending. [n_atoms] (long)
        properties: normalised property targets, NaN = absent (null). [n_systems, n_properties]
    """

    positions: torch.Tensor
    elements: torch.Tensor
    cell: torch.Tensor
    system_idx: torch.Tensor
    properties: torch.Tensor

    @property
    def n_systems(self) -> int:
        return int(self.cell.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def atoms_per_system(self) -> torch.Tensor:
        """Number of atoms of each system. [n_systems] (long)"""
        return torch.bincount(self.system_idx, minlength=self.n_systems)

    def replace(self, **changes: torch.Tensor) -> Batch:
        """A new batch with some fields replaced (the others are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Batch:
        """Move to a device and/or cast the floating-point fields to `dtype`."""

        def move(x: torch.Tensor) -> torch.Tensor:
            if x.is_floating_point() and dtype is not None:
                return x.to(device=device, dtype=dtype)
            return x.to(device=device)

        return Batch(*(move(getattr(self, f.name)) for f in dataclasses.fields(self)))


def from_atoms(
    structures: Sequence[Atoms],
    vocabulary: ElementVocabulary,
    properties: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    property_names: Sequence[str] = (),
    normalisation: Mapping[str, tuple[float, float]] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """Build a Batch from Atoms (ghost atoms, Z = 0, are class 0 like any other element).

    Args:
        structures: periodic structures.
        vocabulary: the model's element vocabulary; an unknown element raises VocabularyError.
        properties: name -> per-structure values (raw units; NaN = absent). Names missing
            here but listed in `property_names` are taken from `atoms.info`, else NaN.
        property_names: the model's property columns, in order.
        normalisation: name -> (mean, std) applied to the property columns.
        dtype: floating-point dtype of positions, elements, cells and properties.
    """
    n = len(structures)
    numbers = np.concatenate([a.numbers for a in structures]) if n else np.zeros(0, int)
    classes = torch.as_tensor(vocabulary.encode(numbers), dtype=torch.long)
    positions = np.concatenate([a.positions for a in structures]) if n else np.zeros((0, 3))
    cells = np.stack([a.cell.array for a in structures]) if n else np.zeros((0, 3, 3))
    counts = torch.as_tensor([len(a) for a in structures], dtype=torch.long)
    table = np.full((n, len(property_names)), np.nan)
    for col, name in enumerate(property_names):
        if properties is not None and name in properties:
            values = np.asarray(properties[name], dtype=float)
            if values.shape != (n,):
                raise ValueError(f"property {name!r} has {values.size} values for {n} structures")
            table[:, col] = values
        else:
            table[:, col] = [float(a.info.get(name, np.nan)) for a in structures]
        if normalisation is not None and name in normalisation:
            mean, std = normalisation[name]
            table[:, col] = (table[:, col] - mean) / std
    return Batch(
        positions=torch.as_tensor(positions, dtype=dtype),
        elements=torch.nn.functional.one_hot(classes, len(vocabulary)).to(dtype),
        cell=torch.as_tensor(cells, dtype=dtype),
        system_idx=torch.repeat_interleave(torch.arange(n), counts),
        properties=torch.as_tensor(table, dtype=dtype),
    )


def to_atoms(
    batch: Batch, vocabulary: ElementVocabulary, *, keep_ghosts: bool = False, wrap: bool = True
) -> list[Atoms]:
    """Decode a batch into Atoms: elements by argmax, ghosts removed, positions wrapped.

    Args:
        batch: the batch (element features may be continuous; argmax decides the class).
        vocabulary: the model's element vocabulary.
        keep_ghosts: keep class-0 atoms (as Z = 0) instead of removing them.
        wrap: wrap positions into the cell (done only here, at output).
    """
    classes = batch.elements.argmax(dim=-1).cpu().numpy()
    numbers = vocabulary.decode(classes)
    positions = batch.positions.detach().cpu().double().numpy()
    cells = batch.cell.detach().cpu().double().numpy()
    counts = batch.atoms_per_system.cpu().numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for s in range(batch.n_systems):
        sl = slice(starts[s], starts[s + 1])
        atoms = Atoms(numbers=numbers[sl], positions=positions[sl], cell=cells[s], pbc=True)
        if not keep_ghosts:
            atoms = atoms[atoms.numbers != 0]
        if wrap:
            atoms.wrap()
        out.append(atoms)
    return out
