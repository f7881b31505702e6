"""Coordination numbers per element from bonded neighbours."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.bonds import Cutoffs, bonded_pairs


@dataclasses.dataclass(frozen=True)
class CoordinationResult(Result):
    """Coordination-number (CN) statistics per element.

    Attributes:
        distribution: element -> CN -> fraction of that element's atoms with that CN,
            pooled over all atoms of the set (fractions of one element sum to 1).
        mean: element -> mean CN over all its atoms in the set.
        per_structure: element -> mean CN, one dict per structure.
    """

    distribution: dict[str, dict[int, float]]
    mean: dict[str, float]
    per_structure: list[dict[str, float]]

    def plot(self, ax=None):
        """Grouped bar chart of the CN fractions per element; returns the Axes."""
        ax = new_axes(ax)
        elements = list(self.distribution)
        width = 0.8 / max(len(elements), 1)
        for k, element in enumerate(elements):
            cns = sorted(self.distribution[element])
            fractions = [self.distribution[element][c] for c in cns]
            ax.bar(
                np.asarray(cns) + (k - (len(elements) - 1) / 2) * width,
                fractions,
                width=width,
                label=element,
            )
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # CNs are whole numbers
        ax.set_xlabel("coordination number")
        ax.set_ylabel("fraction of atoms")
        ax.legend(frameon=False)
        return ax


def add_counts(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Two histograms of integer values (``np.bincount`` output) summed, the shorter
    padded with zeros."""
    size = max(len(total), len(counts))
    return np.pad(total, (0, size - len(total))) + np.pad(counts, (0, size - len(counts)))


def coordination_numbers(atoms: Atoms, cutoffs: Cutoffs) -> np.ndarray:
    """Number of bonded neighbours of every atom (periodic images count), shape ``[n_atoms]``.

    Args:
        atoms: periodic structure without ghosts.
        cutoffs: float (Å), per-element-pair mapping (unlisted pairs do not bond) or None
            for the covalent rule (see ``amtoolkit.analysis.bonds``).
    """
    (i,) = bonded_pairs(atoms, cutoffs, "i")
    return np.bincount(i, minlength=len(atoms))


def coordination(structures: Atoms | Iterable[Atoms], cutoffs: Cutoffs) -> CoordinationResult:
    """Coordination-number distributions per element, pooled over a set.

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        cutoffs: float in Å (any pair with d < cutoff bonds), a mapping such as
            ``{("Si", "O"): 2.3}`` (only listed pairs bond, symmetric), or None for
            ``d < 1.3 (r_cov,i + r_cov,j)``.

    Returns:
        CoordinationResult with per-element CN fractions, mean CN and per-structure means.

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: bad cutoff specification.
    """
    frames = prepare(structures)
    species = species_of(frames)
    histograms: dict[str, np.ndarray] = {s: np.zeros(0, dtype=np.int64) for s in species}
    per_structure = []
    for atoms in frames:
        cn = coordination_numbers(atoms, cutoffs)
        means = {}
        for s in species:
            cn_s = cn[atoms.numbers == atomic_numbers[s]]
            if len(cn_s) == 0:
                continue
            means[s] = float(cn_s.mean())
            histograms[s] = add_counts(histograms[s], np.bincount(cn_s))
        per_structure.append(means)
    distribution = {}
    mean = {}
    for s in species:
        h = histograms[s]
        n = h.sum()
        distribution[s] = {int(c): float(h[c] / n) for c in np.flatnonzero(h)}
        mean[s] = float(np.dot(np.arange(len(h)), h) / n)
    return CoordinationResult(distribution=distribution, mean=mean, per_structure=per_structure)
