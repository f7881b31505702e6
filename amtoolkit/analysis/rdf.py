"""Radial distribution functions g(r), total and partial, on the vesin neighbour list."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._options import integer, positive
from amtoolkit.analysis._peaks import smoothed, vertex
from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.neighbors import neighbor_list

_CUTOFF_SLACK = 1e-9
"""Relative slack on the neighbour-list cutoff: pairs at exactly rmax are binned, as in ASE."""


@dataclasses.dataclass(frozen=True)
class RDFResult(Result):
    """Radial distribution function of a structure or a set (averaged over the set).

    Attributes:
        r: bin centres, Å, shape ``[nbins]``.
        g: total g(r), mean over the set, shape ``[nbins]``.
        partial: partial g_ab(r) keyed by element pairs; both orders are present
            (``("O", "Si")`` and ``("Si", "O")`` hold equal arrays), shape ``[nbins]`` each.
        per_structure: total g(r) of each structure, shape ``[n_structures, nbins]``.
        rmax: upper edge of the last bin, Å.
    """

    r: np.ndarray
    g: np.ndarray
    partial: dict[tuple[str, str], np.ndarray]
    per_structure: np.ndarray
    rmax: float

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Distinct element pairs (each once, ordered by atomic number)."""
        return [p for p in self.partial if atomic_numbers[p[0]] <= atomic_numbers[p[1]]]

    def plot(self, ax=None, partial: bool = True):
        """Plot g(r) (and the distinct partials when `partial`); returns the Axes."""
        ax = new_axes(ax)
        ax.plot(self.r, self.g, color="k", lw=1.5, label="total")
        if partial and len(self.pairs) > 1:
            for pair in self.pairs:
                ax.plot(self.r, self.partial[pair], lw=1.0, label="-".join(pair))
        ax.axhline(1.0, color="0.6", lw=0.5)
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax.set_xlim(0.0, self.rmax)
        ax.legend(frameon=False)
        return ax


_PAIR_CHUNK = 1 << 22
"""Pairs binned at a time by `pair_histogram` (about 100 MB of temporaries)."""


def pair_histogram(
    atoms: Atoms, rmax: float, nbins: int, types: np.ndarray, n_types: int
) -> np.ndarray:
    """Counts of ordered pairs (i, j != i, all periodic images) per type pair and r bin.

    Bins are right-closed like ASE's: pair distance d falls in bin ``ceil(d / dr)``,
    ``dr = rmax / nbins``, bins 1..nbins kept (so bin k covers ((k-1) dr, k dr]).

    Args:
        atoms: periodic structure.
        rmax: largest distance, Å.
        nbins: number of bins.
        types: type index of each atom in ``[0, n_types)``, shape ``[n_atoms]``.
        n_types: number of types.

    Returns:
        Pair counts, shape ``[n_types, n_types, nbins]`` (float).
    """
    dr = float(rmax / nbins)
    # half list (each pair once): half the neighbour-list and histogram work; the
    # ordered-pair counts are the half-list counts plus their transpose. One element
    # needs only the distances (a third of the memory of i, j, d)
    found = neighbor_list(
        atoms, rmax * (1.0 + _CUTOFF_SLACK), "d" if n_types == 1 else "ijd", full_list=False
    )
    d = found[-1]
    size = n_types**2 * (nbins + 2)
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, len(d), _PAIR_CHUNK):  # binned in chunks: no array of every pair
        part = slice(start, start + _PAIR_CHUNK)
        # bin 0 takes d == 0, bin nbins + 1 what lies beyond rmax (the cutoff slack)
        index = np.minimum(np.ceil(d[part] / dr).astype(np.intp), nbins + 1)
        if n_types > 1:
            pair_type = types[found[0][part]] * n_types + types[found[1][part]]
            index += pair_type * (nbins + 2)
        counts += np.bincount(index, minlength=size)
    counts = counts.reshape(n_types, n_types, nbins + 2)[:, :, 1 : nbins + 1].astype(float)
    return counts + counts.transpose(1, 0, 2)


def shell_volumes(rmax: float, nbins: int) -> np.ndarray:
    """Exact volumes of the spherical shells of the r bins, Å^3, shape ``[nbins]``."""
    edges = np.linspace(0.0, rmax, nbins + 1)
    dr = float(rmax / nbins)
    lower = edges[:-1]
    # 4/3 pi ((r + dr)^3 - r^3), written as ASE writes it so that both agree to rounding
    return 4.0 * np.pi * dr * (lower**2 + lower * dr + dr**2 / 3.0)


MAX_RDF_PAIRS = 2e8
"""Most atom pairs one structure's RDF may count (N^2 / V 4/3 pi rmax^3 / 2), a few GB of
neighbour list: rmax = 10^6 Å ran for minutes; 20 Å on a 3000-atom glass is 7e6."""


def rdf(structures: Atoms | Iterable[Atoms], rmax: float = 5.0, nbins: int = 100) -> RDFResult:
    """Total and partial radial distribution functions, averaged over a set.

    g(r) is the pair-distance histogram over ``N * rho * V_shell`` (rho = N / V), as in
    ``ase.geometry.rdf.get_rdf``; partials g_ab(r) are normalised with ``N_a * N_b / V``,
    so g_ab = g_ba and g = sum_ab c_a c_b g_ab (ASE >= 3.27, LAMMPS ``compute rdf``).
    Over a set, the total (and each partial) is the plain mean of the per-structure
    curves, as ASE averages images; a partial is averaged over the structures that
    contain both elements. Unlike ASE, rmax may exceed half the cell width: all
    periodic images are counted.

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        rmax: largest distance, Å.
        nbins: number of bins over [0, rmax].

    Returns:
        RDFResult with bin centres ``r`` [nbins], total ``g`` [nbins], ``partial`` and
        ``per_structure`` [n_structures, nbins].

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions, no atoms.
        ValueError: rmax not a positive, finite number, or so large that one structure
            would count more than `MAX_RDF_PAIRS` pairs; nbins not an integer >= 1.

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), sec. 8.2;
        ase.geometry.rdf.get_rdf.
    """
    rmax = positive("rmax", rmax, "length in Å")
    nbins = integer("nbins", nbins, 1)
    frames = prepare(structures)
    for atoms in frames:
        pairs = len(atoms) ** 2 / atoms.get_volume() * 4.0 / 3.0 * np.pi * rmax**3 / 2.0
        if pairs > MAX_RDF_PAIRS:
            raise ValueError(
                f"rmax={rmax:g} Å would count about {pairs:.2g} pairs in a cell of "
                f"{len(atoms)} atoms (at most {MAX_RDF_PAIRS:.0e}): give a smaller rmax"
            )
    species = species_of(frames)
    numbers = np.array([atomic_numbers[s] for s in species])
    lookup = np.zeros(numbers.max() + 1, dtype=np.intp)
    lookup[numbers] = np.arange(len(species))
    n_types = len(species)
    shells = shell_volumes(rmax, nbins)

    totals = np.zeros((len(frames), nbins))
    partial_sum = np.zeros((n_types, n_types, nbins))
    partial_n = np.zeros((n_types, n_types))
    for k, atoms in enumerate(frames):
        types = lookup[atoms.numbers]
        counts = pair_histogram(atoms, rmax, nbins, types, n_types)
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        n_atoms = len(atoms)
        totals[k] = counts.sum(axis=(0, 1)) / (n_atoms * (n_atoms / volume) * shells)
        n_of_type = np.bincount(types, minlength=n_types).astype(float)
        norm = np.multiply.outer(n_of_type, n_of_type) / volume  # [n_types, n_types]
        present = norm > 0
        partial_sum[present] += counts[present] / (norm[present][:, None] * shells)
        partial_n += present

    edges = np.linspace(0.0, rmax, nbins + 1)
    partial: dict[tuple[str, str], np.ndarray] = {}
    for a, sa in enumerate(species):
        for b, sb in enumerate(species):
            partial[(sa, sb)] = partial_sum[a, b] / max(partial_n[a, b], 1.0)
    return RDFResult(
        r=0.5 * (edges[:-1] + edges[1:]),
        g=totals.mean(axis=0),
        partial=partial,
        per_structure=totals,
        rmax=float(rmax),
    )


RDF_PEAK_SMOOTHING = 0.02
"""Å: standard deviation of the Gaussian g(r) is smoothed with before `first_peak` looks
for its maximum. Without it, the first peak of the broad Si-Si partial of a DM2 silica
glass moved from 3.216 Å (100 bins to 5 Å) to 3.048 Å (500 bins) as noise bumps on its
rising edge passed for the peak; with it, 3.215-3.219 Å at 100 to 1000 bins."""


def first_peak(
    result: RDFResult, pair: tuple[str, str] | None = None, min_height: float = 0.5
) -> float:
    """Position of the first maximum of g(r) (or of a partial), Å.

    g(r) is smoothed with a Gaussian of `RDF_PEAK_SMOOTHING` Å; the first peak is the
    highest point of the first stretch of r where the smoothed g is at least
    ``min_height`` times its global maximum, refined by a parabola through that point
    and its two neighbours (kept within half a bin). The result does not depend on the
    bin width beyond the parabola's accuracy.

    Args:
        result: an RDFResult.
        pair: element pair such as ``("Si", "O")`` for a partial; None for the total.
        min_height: fraction of the global maximum the first peak's stretch starts at.

    Returns:
        Peak position in Å (NaN when g is zero everywhere or still rises at rmax).

    Raises:
        ValueError: `min_height` outside (0, 1].
        KeyError: no partial for `pair`.
    """
    if pair is None:
        g = np.asarray(result.g)
    else:
        key = (str(pair[0]), str(pair[1]))
        if key not in result.partial:
            raise KeyError(f"no partial g(r) for {key}; available: {result.pairs}")
        g = np.asarray(result.partial[key])
    if not 0.0 < min_height <= 1.0:
        raise ValueError(f"min_height must be a fraction in (0, 1], got {min_height}")
    r = np.asarray(result.r)
    step = float(r[1] - r[0]) if len(r) > 1 else 1.0
    g = smoothed(g, RDF_PEAK_SMOOTHING / step)
    top = float(np.max(g))
    if not top > 0:
        return float("nan")
    above = g >= min_height * top
    start = int(np.argmax(above))
    below = np.flatnonzero(~above[start:])
    stop = start + (int(below[0]) if len(below) else len(g) - start)
    k = start + int(np.argmax(g[start:stop]))
    if k == len(g) - 1:  # still rising at rmax: the peak lies beyond the range
        return float("nan")
    return vertex(r, g, k)
