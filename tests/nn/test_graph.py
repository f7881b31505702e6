"""Periodic graphs: reference neighbour lists, small cells, unwrapped positions, gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from amtoolkit.errors import StructureError
from amtoolkit.nn.graph import edge_vectors, periodic_edges
from tests.nn.helpers import random_batch

VECTOR_ATOL = 1e-10  # Å, float64 edge vectors rebuilt from shifts
CUTOFFS = (3.5, 6.0)  # both > half the ~5 Å test cells: several images per pair


def edge_set(src, dst, shifts) -> set[tuple[int, int, int, int, int]]:
    shifts = np.rint(np.asarray(shifts)).astype(int)
    return {(int(i), int(j), *map(int, s)) for i, j, s in zip(src, dst, shifts, strict=True)}


def brute_force_edges(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> set:
    """All (i, j, n) with |x_j - x_i + n C| < cutoff by a direct sum over lattice images."""
    frac = np.linalg.solve(cell.T, positions.T).T
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)  # plane spacings, Å
    reach = int(np.ceil(cutoff / heights.min())) + int(np.ceil(np.abs(frac).max())) + 1
    images = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3)))
    offsets = images @ cell  # [n_images, 3]
    out = set()
    for i, j in itertools.product(range(len(positions)), repeat=2):
        d = np.linalg.norm(positions[j] - positions[i] + offsets, axis=1)
        for n in images[d < cutoff]:
            if i != j or np.any(n != 0):
                out.add((i, j, *map(int, n)))
    return out


def one_system(triclinic: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b = random_batch((5,), seed=seed, triclinic=triclinic)
    return b.positions, b.cell, b.system_idx


@pytest.mark.parametrize("cutoff", CUTOFFS)
@pytest.mark.parametrize("triclinic", [False, True])
def test_matches_ase_and_brute_force_in_small_cells(triclinic, cutoff):
    positions, cell, system_idx = one_system(triclinic)
    src, dst, shifts = periodic_edges(positions, cell, system_idx, cutoff)
    ours = edge_set(src, dst, shifts)

    # positions are unwrapped by up to two cells: ASE handles that itself
    atoms = Atoms("Si5", positions=positions.numpy(), cell=cell[0].numpy(), pbc=True)
    i, j, s = ase_neighbor_list("ijS", atoms, cutoff)
    assert ours == edge_set(i, j, s)
    assert ours == brute_force_edges(positions.numpy(), cell[0].numpy(), cutoff)
    # cutoff > L/2: some pairs appear with several images
    pairs = list(zip(src.tolist(), dst.tolist(), strict=True))
    assert len(pairs) > len(set(pairs))
    if cutoff > float(cell[0, 0].norm()):  # a lattice vector is shorter: self-images
        assert any(a == b for a, b in pairs)


def test_edge_vectors_are_short_and_match_ase():
    positions, cell, system_idx = one_system(triclinic=True)
    cutoff = 6.0
    src, dst, shifts = periodic_edges(positions, cell, system_idx, cutoff)
    vectors = edge_vectors(positions, cell, system_idx, src, dst, shifts)
    assert vectors.shape == (len(src), 3)
    assert shifts.dtype == positions.dtype
    assert torch.equal(shifts, torch.round(shifts))
    assert float(vectors.norm(dim=1).max()) < cutoff

    atoms = Atoms("Si5", positions=positions.numpy(), cell=cell[0].numpy(), pbc=True)
    i, j, ase_vectors = ase_neighbor_list("ijD", atoms, cutoff)
    order_ours = np.lexsort(np.c_[vectors.numpy(), dst, src].T[::-1])
    order_ase = np.lexsort(np.c_[ase_vectors, j, i].T[::-1])
    np.testing.assert_allclose(
        vectors.numpy()[order_ours], ase_vectors[order_ase], rtol=0, atol=VECTOR_ATOL
    )


def test_batched_systems_get_global_indices():
    b = random_batch((5, 3, 4), seed=3)
    src, dst, shifts = periodic_edges(b.positions, b.cell, b.system_idx, 3.5)
    assert torch.equal(b.system_idx[src], b.system_idx[dst])
    starts = [0, 5, 8]
    for s, start in enumerate(starts):
        mask = b.system_idx == s
        sub = periodic_edges(b.positions[mask], b.cell[s : s + 1], b.system_idx[mask] * 0, 3.5)
        in_s = b.system_idx[src] == s
        got = edge_set(src[in_s] - start, dst[in_s] - start, shifts[in_s])
        assert got == edge_set(*sub)


def test_wrapping_and_cell_basis_give_the_same_vectors():
    """Moving atoms by lattice vectors or choosing another basis of the same lattice
    changes shifts, not the multiset of edge vectors of each atom pair."""
    positions, cell, system_idx = one_system(triclinic=True, seed=5)
    cutoff = 6.0

    def vectors_by_pair(pos, c):
        src, dst, shifts = periodic_edges(pos, c, system_idx, cutoff)
        vec = edge_vectors(pos, c, system_idx, src, dst, shifts).numpy()
        keys = np.c_[src, dst, np.round(vec, 8)]
        return keys[np.lexsort(keys.T[::-1])]

    reference = vectors_by_pair(positions, cell)
    moves = torch.as_tensor(np.random.default_rng(1).integers(-3, 4, (5, 3)), dtype=torch.double)
    moved = positions + moves @ cell[0]
    unimodular = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]).double()
    assert abs(float(torch.det(unimodular))) == 1.0
    np.testing.assert_allclose(vectors_by_pair(moved, cell), reference, atol=1e-7)
    np.testing.assert_allclose(vectors_by_pair(positions, unimodular @ cell), reference, atol=1e-7)


def test_edge_vectors_gradients_in_positions_and_cell():
    positions, cell, system_idx = one_system(triclinic=True)
    src, dst, shifts = periodic_edges(positions, cell, system_idx, 3.5)
    positions = positions.clone().requires_grad_(True)
    cell = cell.clone().requires_grad_(True)

    def lengths(pos, c):
        return edge_vectors(pos, c, system_idx, src, dst, shifts).norm(dim=1)

    assert torch.autograd.gradcheck(lengths, (positions, cell))


def test_empty_systems_and_batches():
    b = random_batch((4,), seed=2)
    cell = torch.cat([b.cell, b.cell])  # system 1 has no atoms
    src, dst, shifts = periodic_edges(b.positions, cell, b.system_idx, 3.0)
    assert len(src) > 0 and shifts.shape == (len(src), 3)
    src, dst, shifts = periodic_edges(
        torch.zeros(0, 3), cell, torch.zeros(0, dtype=torch.long), 3.0
    )
    assert src.shape == dst.shape == (0,) and shifts.shape == (0, 3)


def test_bad_input_is_named():
    positions, cell, system_idx = one_system(triclinic=False)
    with pytest.raises(ValueError, match="cutoff"):
        periodic_edges(positions, cell, system_idx, -1.0)
    with pytest.raises(ValueError, match="sorted"):
        periodic_edges(
            torch.cat([positions, positions]),
            torch.cat([cell, cell]),
            torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
            3.0,
        )
    with pytest.raises(ValueError, match="shape"):
        periodic_edges(positions[:, :2], cell, system_idx, 3.0)
    with pytest.raises(StructureError, match="singular"):
        periodic_edges(positions, torch.zeros(1, 3, 3, dtype=torch.double), system_idx, 3.0)
    with pytest.raises(StructureError, match="non-finite"):
        periodic_edges(positions * float("nan"), cell, system_idx, 3.0)
