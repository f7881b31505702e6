"""Shortest-path ring statistics (Franzblau) on the bond network, via matscipy."""

from __future__ import annotations

import ctypes
import dataclasses
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._result import Result, new_axes, to_jsonable
from amtoolkit.analysis._structures import perpendicular_widths, prepare
from amtoolkit.analysis.bonds import Cutoffs, bonded_pairs


@dataclasses.dataclass(frozen=True)
class RingsResult(Result):
    """Shortest-path ring statistics of a structure or a set.

    Attributes:
        counts: ring size -> number of rings, summed over the set (sizes with a count).
        mean_size: mean ring size over all rings of the set (NaN when there are none).
        per_structure: ring size -> count for each structure.
        maxlength: largest ring size searched (inclusive).
        count_species: element(s) whose atoms define the ring size, or None when the
            size is the number of atoms (bonds) in the ring.
    """

    counts: dict[int, int]
    mean_size: float
    per_structure: list[dict[int, int]]
    maxlength: int
    count_species: tuple[str, ...] | None

    @property
    def mean_size_per_structure(self) -> np.ndarray:
        """Mean ring size of each structure (NaN for one without rings). [n_structures]"""
        return np.array([mean_ring_size(counts) for counts in self.per_structure])

    @property
    def fractions(self) -> dict[int, float]:
        """Ring size -> fraction of all rings in the set."""
        total = sum(self.counts.values())
        return {n: c / total for n, c in self.counts.items()} if total else {}

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus ``fractions`` and ``mean_size_per_structure`` (NaN as null)."""
        out = super().to_dict()
        out["fractions"] = to_jsonable(self.fractions)
        out["mean_size_per_structure"] = [
            None if not np.isfinite(m) else float(m) for m in self.mean_size_per_structure
        ]
        return out

    def plot(self, ax=None):
        """Bar chart of the fraction of rings per size; returns the Axes."""
        ax = new_axes(ax)
        sizes = sorted(self.fractions)
        ax.bar(sizes, [self.fractions[n] for n in sizes], color="C0")
        label = f"{'+'.join(self.count_species)} atoms" if self.count_species else "atoms"
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ring sizes are whole numbers
        ax.set_xlabel(f"ring size ({label})")
        ax.set_ylabel("fraction of rings")
        return ax


def mean_ring_size(counts: dict[int, int]) -> float:
    """Mean ring size of ring size -> count (NaN when there are no rings)."""
    total = sum(counts.values())
    return float(sum(n * c for n, c in counts.items()) / total) if total else float("nan")


MAX_RING_BONDS = 24
"""Largest ring searched, in bonds (``maxlength``, or twice it with ``count_species``):
silica's 12 Si atoms; beyond it the search cost explodes (216-atom a-Si, repeated 2x2x2,
takes 1 / 5 / 13 s at 12 / 16 / 18 bonds; an 8-atom diamond cell took over a minute at
20 and exhausted 23 GB at 50). `MAX_RING_PATHS` limits the search below this too."""


MAX_RING_COORDINATION = 8.0
"""Largest mean number of bonds per atom a ring search takes: shortest-path rings describe
covalent networks (a-Si 4, silica 2.7 per atom); a close-packed metal under the covalent
rule (rattled fcc Cu, 13.5) has a ring through nearly every pair of neighbours, and the
search took over 2 minutes and 3.8 GB on 108 atoms without finishing."""


MAX_RING_PATHS = 4.0e8
"""Largest estimated ring search, in paths walked (`ring_search_paths`). Measured on this
CPU: 216-atom a-Si (repeated 2x2x2) 1 s at 12 bonds (estimate 1.3e6), 13 s at 18 (8e7),
about a minute at 20 (3e8); stishovite 7 s at 16 bonds (2e7), 4 minutes at 20 (2e8).
Beyond the limit the search takes many minutes or exhausts memory and aborts the whole
process (rocksalt SiO at 24 bonds, 6 bonds per atom: 2e8 paths per atom)."""

MAX_RING_TABLE = 4.0e9
"""Largest graph-distance table of a ring search, bytes (matscipy's dense int32 table of
(N + 1)^2 entries: 2.3 GB at 24000 atoms, 26 GB at 81000, where it exhausts memory and
the process dies without a message)."""


def _replicas(atoms: Atoms, bonds_per_ring: int, bond_length: float) -> tuple[int, int, int]:
    """Repetitions that make each perpendicular width > bonds_per_ring * bond_length / 2
    (a width equal to it counts as too narrow)."""
    widths = perpendicular_widths(atoms.cell.array)
    need = 0.5 * bonds_per_ring * bond_length
    return tuple(int(np.floor(need / w * (1.0 + 1e-9))) + 1 for w in widths)


def _reduced(atoms: Atoms) -> Atoms:
    """The same structure in the Minkowski-reduced cell of its lattice (the widest
    perpendicular widths, so a skewed cell is not repeated more than its lattice needs)."""
    from ase.geometry import minkowski_reduce

    reduced, _ = minkowski_reduce(atoms.cell.array)
    out = atoms.copy()
    out.set_cell(reduced, scale_atoms=False)
    out.wrap()
    return out


def ring_search_paths(n_atoms: int, i: np.ndarray, j: np.ndarray, max_bonds: int) -> float:
    """Estimated paths a shortest-path ring search walks: ``n_atoms * b^(max_bonds / 2)``
    with b the branching per bond (the geometric mean of z_j - 1 over the directed bonds
    i -> j of atoms with z_j >= 2; 3 for a-Si, sqrt(3) for silica's Si-O network), as
    each atom's search runs half a ring deep."""
    z = np.bincount(i, minlength=n_atoms)
    onward = z[j] - 1
    onward = onward[onward >= 1]
    if not len(onward):
        return 0.0
    branching = float(np.exp(np.mean(np.log(onward))))
    return float(n_atoms * branching ** (0.5 * max_bonds))


def _network_bonds(
    atoms: Atoms, cutoff: Cutoffs, network: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    i, j, d, vectors = bonded_pairs(atoms, cutoff, "ijdD")
    if network is not None:
        keep = network[i] != network[j]
        i, j, d, vectors = i[keep], j[keep], d[keep], vectors[keep]
    return i, j, d, vectors


def _find_sp_rings(
    i: np.ndarray, j: np.ndarray, vectors: np.ndarray, dist: np.ndarray, maxlength: int
) -> np.ndarray:
    """matscipy's ``find_sp_rings``, giving back the references it keeps.

    matscipy 1.x takes a new reference to each array argument (``PyArray_FROMANY``) and
    never releases it, so every search kept its (N + 1)^2 graph-distance table alive:
    36 MB per frame of a 3000-atom silica glass, 36 GB over a 1000-frame trajectory.
    The references gained during the call are released here; a matscipy that releases
    them itself gains none, and nothing is released.
    """
    from matscipy.ffi import find_sp_rings

    arrays = (i, j, vectors, dist)
    before = [sys.getrefcount(a) for a in arrays]
    found = np.asarray(find_sp_rings(i, j, vectors, dist, maxlength))
    after = [sys.getrefcount(a) for a in arrays]  # counted exactly as before
    for array, extra in zip(arrays, np.subtract(after, before), strict=True):
        for _ in range(extra):
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(array))
    return found


def ring_histogram(
    atoms: Atoms, cutoff: Cutoffs, max_bonds: int, network: np.ndarray | None = None
) -> np.ndarray:
    """Histogram of shortest-path rings by number of bonds, ``hist[n]`` for n <= max_bonds.

    matscipy identifies ring vertices by atom index, so a cell not wider than the longest
    a ring can stretch (``max_bonds * longest_bond / 2``) can confuse a ring with
    periodic images of its own atoms (the 8-atom diamond cell shows no ring at all, the
    conventional rocksalt cell too few squares). Such a cell is taken to its
    Minkowski-reduced form and repeated until every perpendicular width exceeds that
    length, and the counts of the supercell are divided by the number of repetitions
    (each ring appears once per repetition). A search estimated past `MAX_RING_PATHS`
    (`ring_search_paths`) is refused before it starts.

    Args:
        atoms: periodic structure without ghosts.
        cutoff: bond cutoff specification (see ``amtoolkit.analysis.bonds``).
        max_bonds: largest ring, in bonds, to count (inclusive).
        network: optional boolean mask ``[n_atoms]``: when given, only bonds between a
            masked and an unmasked atom are kept (the bipartite X-Y-X network).

    Returns:
        Integer counts, shape ``[max_bonds + 1]``.

    References:
        D. S. Franzblau, Phys. Rev. B 44, 4925 (1991); matscipy.rings.
    """
    from matscipy.ffi import distances_on_graph

    mask = None if network is None else np.asarray(network, dtype=bool)
    hist = np.zeros(max_bonds + 1, dtype=np.int64)
    i, j, d, vectors = _network_bonds(atoms, cutoff, mask)
    if len(i) == 0:
        return hist
    per_atom = len(i) / len(atoms)  # every bond is listed from both ends
    if per_atom > MAX_RING_COORDINATION:
        raise ValueError(
            f"{atoms.get_chemical_formula()}: mean coordination {per_atom:.1f} under this "
            f"bond rule, above the {MAX_RING_COORDINATION:g} a ring search takes: "
            "shortest-path rings describe "
            "covalent networks, and in a close-packed structure the search does not end; "
            "give a shorter cutoff"
        )
    reps = _replicas(atoms, max_bonds, float(d.max()))
    if any(r > 1 for r in reps):
        atoms = _reduced(atoms)
        reps = _replicas(atoms, max_bonds, float(d.max()))
    n_rep = int(np.prod(reps))
    paths = ring_search_paths(len(atoms), i, j, max_bonds) * n_rep
    if paths > MAX_RING_PATHS:
        raise ValueError(
            f"{atoms.get_chemical_formula()}: a ring search to {max_bonds} bonds would walk "
            f"about {paths:.1e} paths "
            f"({len(atoms) * n_rep} atoms, {len(i) / len(atoms):.1f} bonds per atom), above "
            f"the {MAX_RING_PATHS:.0e} searched (minutes, or memory exhausted beyond); give a "
            "smaller maxlength or a shorter cutoff"
        )
    if n_rep > 1:
        atoms = atoms.repeat(reps)
        mask = None if mask is None else np.tile(mask, n_rep)
        i, j, d, vectors = _network_bonds(atoms, cutoff, mask)
    table = 4 * (len(atoms) + 1) ** 2  # bytes of matscipy's dense graph-distance table
    if table > MAX_RING_TABLE:
        raise ValueError(
            f"{atoms.get_chemical_formula()}: the ring search of {len(atoms)} atoms"
            f"{f' (the cell repeated {n_rep} times)' if n_rep > 1 else ''} needs a "
            f"{table / 1e9:.1f} GB table of graph distances (it grows as the atom count "
            f"squared), above the {MAX_RING_TABLE / 1e9:.0f} GB allowed; count rings in a "
            "smaller cell (ring statistics of a cell of 20000 atoms are those of the glass)"
        )
    # matscipy wants i sorted (bonded_pairs sorts it) and int32; its walkers encode
    # "returning" as a negative vertex, so vertex 0 is ambiguous: shift indices by one.
    i32 = (i + 1).astype(np.int32)
    j32 = (j + 1).astype(np.int32)
    dist = distances_on_graph(i32, j32)
    # matscipy's maxlength is exclusive
    found = _find_sp_rings(i32, j32, np.ascontiguousarray(vectors), dist, max_bonds + 1)
    n = min(len(found), max_bonds + 1)
    hist[:n] = found[:n]
    return hist // n_rep


def rings(
    structures: Atoms | Iterable[Atoms],
    cutoff: Cutoffs = None,
    maxlength: int = 12,
    count_species: str | Sequence[str] | None = None,
) -> RingsResult:
    """Shortest-path ring statistics, summed over a set.

    Without ``count_species``, a ring's size is its number of atoms, and every bond
    under ``cutoff`` is part of the network. With ``count_species="Si"`` (or several
    species, e.g. ``("Si", "Al")``), only bonds between those species and the other
    species are kept (the Si-O-Si network; homopolar bonds such as O-O or Si-Si are
    dropped), so every ring alternates and its size is its number of Si atoms (half
    its number of atoms). This is the usual ring size of silica (6 for
    beta-cristobalite).

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        cutoff: bond cutoff specification: None for d < 1.3 (r_cov,i + r_cov,j) (Si-O <
            2.30 Å), a float in Å, or a per-element-pair mapping.
        maxlength: largest ring size counted, INCLUSIVE (12 counts rings up to 12), in
            the same unit as the result (atoms of ``count_species`` when given).
        count_species: element symbol(s) defining the ring size, or None.

    Returns:
        RingsResult with counts per size, mean size and per-structure counts.

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: maxlength < 2 or over `MAX_RING_BONDS` bonds, unknown element,
            a structure made only of count_species atoms, count_species absent from a
            structure, a mean coordination above `MAX_RING_COORDINATION`, or a search
            estimated past `MAX_RING_PATHS` paths.

    References:
        D. S. Franzblau, Phys. Rev. B 44, 4925 (1991) (shortest-path rings);
        matscipy.rings.ring_statistics.
    """
    if (
        isinstance(maxlength, bool)
        or not isinstance(maxlength, (int, float, np.integer, np.floating))
        or not np.isfinite(maxlength)
        or int(maxlength) != maxlength
        or maxlength < 2
    ):
        raise ValueError(f"maxlength must be an integer >= 2, got {maxlength!r}")
    maxlength = int(maxlength)
    bonds = maxlength if count_species is None else 2 * maxlength
    if bonds > MAX_RING_BONDS:
        raise ValueError(
            f"maxlength {maxlength} means rings of {bonds} bonds, above the {MAX_RING_BONDS} "
            "searched: the shortest-path search grows steeply with ring size (216-atom a-Si "
            "5 s at 16 bonds, 13 s at 18; a crystalline cell past 30 exhausts memory)"
        )
    frames = prepare(structures)
    species: tuple[str, ...] | None = None
    if count_species is not None:
        species = (count_species,) if isinstance(count_species, str) else tuple(count_species)
        for s in species:
            if s not in atomic_numbers or atomic_numbers[s] == 0:
                raise ValueError(f"unknown element {s!r} in count_species")
        zs = [atomic_numbers[s] for s in species]
    per_structure: list[dict[int, int]] = []
    for k, atoms in enumerate(frames):
        if species is None:
            hist = ring_histogram(atoms, cutoff, maxlength)
            sizes = np.arange(len(hist))
        else:
            mask = np.isin(atoms.numbers, zs)
            if not mask.any():
                raise ValueError(f"structure {k} has no {'/'.join(species)} atoms to count")
            if mask.all():
                raise ValueError(
                    f"structure {k} holds only {'/'.join(species)} atoms: count_species counts "
                    f"rings of a network alternating {'/'.join(species)} with other atoms; "
                    "use count_species=None"
                )
            hist = ring_histogram(atoms, cutoff, 2 * maxlength, network=mask)
            # rings of a bipartite network have even length, half of the atoms counted
            sizes = np.arange(len(hist)) // 2
            hist = np.where(np.arange(len(hist)) % 2 == 0, hist, 0)
        per_structure.append({int(sizes[n]): int(hist[n]) for n in np.flatnonzero(hist)})
    return rings_of_set(per_structure, maxlength, species)


def rings_of_set(
    per_structure: Sequence[dict[int, int]], maxlength: int, count_species: tuple[str, ...] | None
) -> RingsResult:
    """The RingsResult of a set from each structure's ring size -> count (summed, sizes
    in order)."""
    counts: dict[int, int] = {}
    for ps in per_structure:
        for n, c in ps.items():
            counts[n] = counts.get(n, 0) + c
    counts = dict(sorted(counts.items()))
    return RingsResult(
        counts=counts,
        mean_size=mean_ring_size(counts),
        per_structure=list(per_structure),
        maxlength=maxlength,
        count_species=count_species,
    )
