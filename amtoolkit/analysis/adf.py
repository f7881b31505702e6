"""Bond-angle distribution functions (ADF), vectorised over all neighbour pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._options import integer, positive
from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.bonds import Cutoffs, bonded_pairs


@dataclasses.dataclass(frozen=True)
class ADFResult(Result):
    """Distribution of angles j-i-k (degrees) over neighbour pairs of each centre i.

    Attributes:
        theta: bin centres, degrees, shape ``[nbins]`` over [0, 180].
        p: normalised distribution (``sum(p) * dtheta == 1``, 1/degree), mean over the
            structures that have at least one angle, shape ``[nbins]``.
        by_center: the same per central element, e.g. ``by_center["Si"]`` for O-Si-O.
        per_structure: ``p`` of each structure, shape ``[n_structures, nbins]`` (zeros
            for a structure without angles).
        n_angles: number of angles counted in each structure.
        by_triplet: the same per element triplet (j, i, k) with i the centre and j, k
            ordered by atomic number, e.g. ``by_triplet[("Si", "O", "Si")]``, the Si-O-Si angle of
            a silicate apart from the Li-O-Si and Ca-O-Ca angles at the same O.
    """

    theta: np.ndarray
    p: np.ndarray
    by_center: dict[str, np.ndarray]
    per_structure: np.ndarray
    n_angles: list[int]
    by_triplet: dict[tuple[str, str, str], np.ndarray] = dataclasses.field(default_factory=dict)

    def plot(self, ax=None, by_center: bool = True):
        """Plot the ADF (and per-centre curves when `by_center`); returns the Axes."""
        ax = new_axes(ax)
        ax.plot(self.theta, self.p, color="k", lw=1.5, label="all")
        if by_center and len(self.by_center) > 1:
            for element, curve in self.by_center.items():
                ax.plot(self.theta, curve, lw=1.0, label=f"centre {element}")
        ax.set_xlabel("angle (deg)")
        ax.set_ylabel("P(θ) (1/deg)")
        ax.set_xlim(0.0, 180.0)
        ax.legend(frameon=False)
        return ax


def bond_angles(i: np.ndarray, vectors: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """All angles j-i-k between distinct neighbours j, k of each centre i.

    Each unordered pair of neighbour entries of a centre gives one angle (periodic
    images of one atom are distinct neighbours).

    Args:
        i: centre index of each neighbour entry, sorted ascending, shape ``[n_pairs]``.
        vectors: bond vectors from i to the neighbour, Å, shape ``[n_pairs, 3]``.
        n_atoms: number of atoms (centres).

    Returns:
        ``(center, angle)``: centre index and angle in degrees, shape ``[n_angles]`` each
        (NaN for an angle involving a zero-length bond vector).
    """
    first, second = angle_entries(i, n_atoms)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero-length bonds give NaN
        unit = vectors / np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]
        cos = np.einsum("ij,ij->i", np.take(unit, first, axis=0), np.take(unit, second, axis=0))
        angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.take(i, first), angle


def angle_entries(i: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """The two neighbour entries of every angle of `bond_angles`: indices into `i` (and
    its neighbour arrays), shape ``[n_angles]`` each, in the order `bond_angles` uses."""
    n_entries = len(i)
    n_neigh = np.bincount(i, minlength=n_atoms)  # [n_atoms]
    start = np.cumsum(n_neigh) - n_neigh
    # entry e with local rank a in its centre pairs with the n_i - 1 - a entries after it
    rank = np.arange(n_entries) - start[i]
    partners = n_neigh[i] - 1 - rank  # [n_entries]
    first = np.repeat(np.arange(n_entries), partners)  # [n_angles]
    offset = np.arange(n_entries) + 1 - (np.cumsum(partners) - partners)
    second = np.arange(len(first)) + np.repeat(offset, partners)  # [n_angles]
    return first, second


def _histograms(angle: np.ndarray, group: np.ndarray, n_groups: int, nbins: int) -> np.ndarray:
    """Angle counts per group (e.g. central species) in nbins over 0-180 deg, [n_groups, nbins]."""
    index = np.minimum((angle * (nbins / 180.0)).astype(np.intp), nbins - 1)
    counts = np.bincount(group * nbins + index, minlength=n_groups * nbins)
    return counts.reshape(n_groups, nbins).astype(float)


def adf(structures: Atoms | Iterable[Atoms], cutoff: Cutoffs = 3.0, nbins: int = 180) -> ADFResult:
    """Bond-angle distribution over neighbours within a cutoff, averaged over a set.

    For every atom i and every pair of its neighbours j, k (``d < cutoff``), the angle
    j-i-k is histogrammed in ``nbins`` bins over 0-180 degrees and normalised so that
    ``sum(p) * dtheta = 1``. Over a set, the per-structure distributions are averaged.

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        cutoff: float in Å (all pairs), a per-element-pair mapping such as
            ``{("Si", "O"): 2.3}`` (unlisted pairs are not neighbours), or None for the
            covalent rule (see ``amtoolkit.analysis.bonds``).
        nbins: number of angle bins.

    Returns:
        ADFResult with ``theta`` [nbins], ``p`` [nbins], ``by_center`` and
        ``per_structure`` [n_structures, nbins].

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: a cutoff length that is not a positive, finite number (or a bad
            mapping); nbins not an integer >= 1.

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), sec. 8.2.
    """
    if cutoff is not None and not isinstance(cutoff, Mapping):
        cutoff = positive("cutoff", cutoff, "length in Å")
    nbins = integer("nbins", nbins, 1)
    frames = prepare(structures)
    species = species_of(frames)
    per_structure = np.zeros((len(frames), nbins))
    center_sum = {s: np.zeros(nbins) for s in species}
    center_n = dict.fromkeys(species, 0)
    numbers = np.array([atomic_numbers[s] for s in species])
    lookup = np.zeros(numbers.max() + 1, dtype=np.intp)
    lookup[numbers] = np.arange(len(species))
    dtheta = 180.0 / nbins
    n_angles = []
    n = len(species)
    triplet_sum = np.zeros((n**3, nbins))
    triplet_n = np.zeros(n**3, dtype=int)
    for k, atoms in enumerate(frames):
        i, j, vectors = bonded_pairs(atoms, cutoff, "ijD")
        center, angle = bond_angles(i, vectors, len(atoms))
        first, second = angle_entries(i, len(atoms))
        defined = np.isfinite(angle)  # a neighbour at distance 0 has no direction
        if not defined.all():
            center, angle = center[defined], angle[defined]
            first, second = first[defined], second[defined]
        n_angles.append(len(angle))
        types = lookup[atoms.numbers]
        end_a, end_b = types[np.take(j, first)], types[np.take(j, second)]
        triplet = (np.minimum(end_a, end_b) * n + types[center]) * n + np.maximum(end_a, end_b)
        by_kind = _histograms(angle, triplet, n**3, nbins)  # [n^3, nbins]
        seen = by_kind.sum(axis=1) > 0
        triplet_sum[seen] += by_kind[seen] / (by_kind[seen].sum(axis=1, keepdims=True) * dtheta)
        triplet_n[seen] += 1
        # one histogram per central species in a single bincount: [n_species, nbins]
        center_type = lookup[np.take(atoms.numbers, center)]
        counts = _histograms(angle, center_type, len(species), nbins)
        total = counts.sum()
        if total > 0:
            per_structure[k] = counts.sum(axis=0) / (total * dtheta)
        for t, s in enumerate(species):
            n_t = counts[t].sum()
            if n_t > 0:
                center_sum[s] += counts[t] / (n_t * dtheta)
                center_n[s] += 1
    has_angles = np.asarray(n_angles) > 0
    p = per_structure[has_angles].mean(axis=0) if has_angles.any() else np.zeros(nbins)
    by_center = {s: center_sum[s] / center_n[s] for s in species if center_n[s] > 0}
    by_triplet = {
        (species[g // (n * n)], species[g // n % n], species[g % n]): triplet_sum[g] / triplet_n[g]
        for g in np.flatnonzero(triplet_n)
    }
    edges = np.linspace(0.0, 180.0, nbins + 1)
    return ADFResult(
        theta=0.5 * (edges[:-1] + edges[1:]),
        p=p,
        by_center=by_center,
        per_structure=per_structure,
        n_angles=n_angles,
        by_triplet=by_triplet,
    )
