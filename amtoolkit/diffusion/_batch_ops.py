"""Per-system tensor operations on flat batches used by the diffusion code (internal)."""

from __future__ import annotations

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion.streams import Generator, random_rows


def system_mean(values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Mean of per-atom rows over each system (0 for a system without atoms).

    Args:
        values: per-atom values. [n_atoms, d]
        system_idx: system of each atom. [n_atoms] (long)
        n_systems: number of systems S.

    Returns:
        Per-system means. [S, d]
    """
    sums = values.new_zeros((n_systems, values.shape[-1])).index_add_(0, system_idx, values)
    counts = torch.bincount(system_idx, minlength=n_systems).clamp(min=1)
    return sums / counts.to(values.dtype).unsqueeze(-1)


def remove_system_mean(
    values: torch.Tensor, system_idx: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """`values` minus the mean of its system (translation-free position noise). [n_atoms, d]"""
    return values - system_mean(values, system_idx, n_systems)[system_idx]


def position_noise(batch: Batch, generator: Generator) -> torch.Tensor:
    """Standard normal position noise with the per-system mean removed (`Streams`: each
    system's from its own stream). [n_atoms, 3]"""
    z = random_rows(
        tuple(batch.positions.shape),
        generator,
        dtype=batch.positions.dtype,
        device=batch.positions.device,
        system_idx=batch.system_idx,
        n_systems=batch.n_systems,
    )
    return remove_system_mean(z, batch.system_idx, batch.n_systems)


def element_noise(batch: Batch, generator: Generator) -> torch.Tensor:
    """Standard normal element-embedding noise. [n_atoms, n_classes]"""
    return random_rows(
        tuple(batch.elements.shape),
        generator,
        dtype=batch.elements.dtype,
        device=batch.elements.device,
        system_idx=batch.system_idx,
        n_systems=batch.n_systems,
    )


def select_systems(batch: Batch, mask: torch.Tensor) -> Batch:
    """The systems where `mask` [S] (bool) is True, renumbered 0..k-1 in their order."""
    atom_mask = mask[batch.system_idx]
    new_index = torch.cumsum(mask.long(), 0) - 1  # old system -> new system
    return Batch(
        positions=batch.positions[atom_mask],
        elements=batch.elements[atom_mask],
        cell=batch.cell[mask],
        system_idx=new_index[batch.system_idx[atom_mask]],
        properties=batch.properties[mask],
    )


def put_systems(batch: Batch, mask: torch.Tensor, part: Batch) -> Batch:
    """`batch` with the systems where `mask` is True replaced by those of `part`.

    `part` must hold those systems in order, with the same numbers of atoms (as returned
    by a sampler run on ``select_systems(batch, mask)``).
    """
    atom_mask = mask[batch.system_idx]
    positions = batch.positions.clone()
    elements = batch.elements.clone()
    cell = batch.cell.clone()
    properties = batch.properties.clone()
    positions[atom_mask] = part.positions
    elements[atom_mask] = part.elements
    cell[mask] = part.cell
    properties[mask] = part.properties
    return batch.replace(positions=positions, elements=elements, cell=cell, properties=properties)


def concat_batches(first: Batch, second: Batch) -> Batch:
    """One batch holding the systems of `first` then those of `second`."""
    return Batch(
        positions=torch.cat([first.positions, second.positions]),
        elements=torch.cat([first.elements, second.elements]),
        cell=torch.cat([first.cell, second.cell]),
        system_idx=torch.cat([first.system_idx, second.system_idx + first.n_systems]),
        properties=torch.cat([first.properties, second.properties]),
    )
