"""Periodic radius graphs of flat batches (docs/models.md, *Denoiser architecture*).

The neighbour search runs once per forward pass, outside autograd, with vesin on each
system (a loop over systems in numpy is allowed: it is not part of the network). It
returns integer cell shifts, so that the edge vectors can be rebuilt differentiably
from positions *and* cell: ``d = x[dst] - x[src] + shifts @ cell``. Positions stay
unwrapped; the search wraps them into the cell and folds the wrap into the shifts.
"""

from __future__ import annotations

import numpy as np
import torch
from vesin import NeighborList

from amtoolkit.errors import StructureError


def _check_graph_inputs(
    positions: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor
) -> None:
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [n_atoms, 3], got {tuple(positions.shape)}")
    if cell.ndim != 3 or cell.shape[1:] != (3, 3):
        raise ValueError(f"cell must have shape [n_systems, 3, 3], got {tuple(cell.shape)}")
    if system_idx.shape != (positions.shape[0],):
        raise ValueError(
            f"system_idx must have shape [{positions.shape[0]}], got {tuple(system_idx.shape)}"
        )
    if system_idx.dtype != torch.long:
        raise TypeError(f"system_idx must be a long tensor, got {system_idx.dtype}")
    if system_idx.numel():
        if bool((system_idx[1:] < system_idx[:-1]).any()):
            raise ValueError("system_idx must be sorted ascending")
        if int(system_idx[0]) < 0 or int(system_idx[-1]) >= cell.shape[0]:
            raise ValueError(
                f"system_idx must lie in [0, {cell.shape[0]}), "
                f"got [{int(system_idx[0])}, {int(system_idx[-1])}]"
            )


def periodic_edges(
    positions: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All directed pairs within `cutoff` under periodic boundary conditions (full list).

    Every pair appears as src -> dst and dst -> src; an atom is paired with its own
    periodic images when they lie within the cutoff, and a pair appears once per image,
    so cutoffs larger than half the cell width are handled (including triclinic cells).
    Computed without gradients (the shifts are integers); use `edge_vectors` for
    differentiable vectors.

    Args:
        positions: Cartesian positions, Å, unwrapped. [n_atoms, 3]
        cell: cell vectors as rows, Å. [n_systems, 3, 3]
        system_idx: system of each atom, sorted ascending. [n_atoms] (long)
        cutoff: radius, Å.

    Returns:
        src: source atom of each edge (global index). [n_edges] (long)
        dst: destination atom of each edge. [n_edges] (long)
        cell_shifts: integer-valued lattice shifts (dtype of `positions`), such that
            ``positions[dst] - positions[src] + cell_shifts @ cell[system]`` is the edge
            vector, of length < cutoff. [n_edges, 3]

    Raises:
        StructureError: a system with atoms has a singular cell or non-finite positions.

    References:
        vesin cell-list neighbour search (Luthaus & Fraux, github.com/Luthaf/vesin).
    """
    _check_graph_inputs(positions, cell, system_idx)
    if not (float(cutoff) > 0.0 and np.isfinite(cutoff)):
        raise ValueError(f"cutoff must be a positive finite number of Å, got {cutoff!r}")
    device, dtype = positions.device, positions.dtype
    n_systems = cell.shape[0]
    with torch.no_grad():
        x_all = positions.detach().cpu().double().numpy()
        cells = cell.detach().cpu().double().numpy()
        counts = torch.bincount(system_idx.detach().cpu(), minlength=n_systems).numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    src_parts, dst_parts, shift_parts = [], [], []
    for s in range(n_systems):
        if counts[s] == 0:
            continue
        x = x_all[starts[s] : starts[s + 1]]
        box = cells[s]
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(box)):
            raise StructureError(f"system {s}: non-finite positions or cell")
        volume = abs(np.linalg.det(box))
        if not volume > 1e-8 * np.abs(box).max() ** 3:
            raise StructureError(f"system {s}: singular cell (volume {volume:.3g} Å^3)")
        # wrap into the cell (vesin is faster there) and remember the lattice image
        image = np.floor(np.linalg.solve(box.T, x.T).T)  # [n, 3]
        wrapped = x - image @ box
        i, j, shifts = nl.compute(
            points=np.ascontiguousarray(wrapped),
            box=np.ascontiguousarray(box),
            periodic=True,
            quantities="ijS",
            copy=True,
        )
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        # wrapped_j - wrapped_i + S C = x_j - x_i + (S + image_i - image_j) C
        shifts = np.asarray(shifts, dtype=np.float64) + image[i] - image[j]
        src_parts.append(i + starts[s])
        dst_parts.append(j + starts[s])
        shift_parts.append(shifts)
    if not src_parts:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty.clone(), torch.zeros(0, 3, dtype=dtype, device=device)
    src = torch.from_numpy(np.concatenate(src_parts)).to(device)
    dst = torch.from_numpy(np.concatenate(dst_parts)).to(device)
    cell_shifts = torch.from_numpy(np.concatenate(shift_parts)).to(device=device, dtype=dtype)
    return src, dst, cell_shifts


def lattice_offsets(
    cell: torch.Tensor, system_idx: torch.Tensor, src: torch.Tensor, cell_shifts: torch.Tensor
) -> torch.Tensor:
    """Cartesian periodic offset of each edge, ``cell_shifts @ cell[system]``, Å. [n_edges, 3]"""
    edge_cell = torch.index_select(cell, 0, torch.index_select(system_idx, 0, src))  # [E, 3, 3]
    return torch.einsum("ea,eab->eb", cell_shifts.to(cell.dtype), edge_cell)


def edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_idx: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    cell_shifts: torch.Tensor,
) -> torch.Tensor:
    """Edge vectors ``x_dst - x_src + cell_shifts @ cell[system]``, Å. [n_edges, 3]

    Differentiable in `positions` and `cell` (the shifts are fixed integers).

    Args:
        positions: Cartesian positions, Å, unwrapped. [n_atoms, 3]
        cell: cell vectors as rows, Å. [n_systems, 3, 3]
        system_idx: system of each atom. [n_atoms] (long)
        src, dst, cell_shifts: from `periodic_edges`. [n_edges], [n_edges], [n_edges, 3]
    """
    vectors = torch.index_select(positions, 0, dst) - torch.index_select(positions, 0, src)
    return vectors + lattice_offsets(cell, system_idx, src, cell_shifts)
