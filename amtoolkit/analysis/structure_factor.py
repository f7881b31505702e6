"""Static structure factor S(q) from the Fourier transform of the total g(r)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.geometry import minkowski_reduce

from amtoolkit.analysis._options import integer, positive
from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare
from amtoolkit.analysis.rdf import pair_histogram, shell_volumes


@dataclasses.dataclass(frozen=True)
class StructureFactorResult(Result):
    """Static structure factor S(q), mean over a set.

    Attributes:
        q: scattering vector magnitudes, 1/Å, shape ``[nq]``.
        s: S(q) (number-number, all atoms weighted equally), shape ``[nq]``.
        per_structure: S(q) of each structure, shape ``[n_structures, nq]``.
        rmax: upper limit of the r integral, Å.
        window: whether the Lorch window was applied.
    """

    q: np.ndarray
    s: np.ndarray
    per_structure: np.ndarray
    rmax: float
    window: bool

    def peak_position(self, qmin: float = 0.5, qmax: float | None = None) -> float:
        """Position (1/Å) of the largest S(q) in ``[qmin, qmax]`` (e.g. (1, 2.5) for the
        first sharp diffraction peak of silica).

        Raises:
            ValueError: no q point in the window, or no peak inside it: S(q) is largest
                at a window edge where it still rises towards the outside.
        """
        hi = float(self.q[-1]) if qmax is None else qmax
        inside = np.flatnonzero((self.q >= qmin) & (self.q <= hi))
        if not len(inside):
            raise ValueError(f"no q points in [{qmin}, {hi}] 1/Å")
        k = int(inside[np.argmax(self.s[inside])])
        rising_out = (k == inside[0] and (k == 0 or self.s[k - 1] > self.s[k])) or (
            k == inside[-1] and (k == len(self.q) - 1 or self.s[k + 1] > self.s[k])
        )
        if rising_out and len(inside) > 1:
            raise ValueError(
                f"S(q) has no peak inside [{qmin}, {hi}] 1/Å: it is largest at the edge "
                f"q = {self.q[k]:.3f} and rises beyond it; widen the window"
            )
        return float(self.q[k])

    def plot(self, ax=None):
        """Plot S(q); returns the Axes."""
        ax = new_axes(ax)
        ax.plot(self.q, self.s, color="k", lw=1.5)
        ax.axhline(1.0, color="0.6", lw=0.5)
        ax.set_xlabel("q (1/Å)")
        ax.set_ylabel("S(q)")
        ax.set_xlim(0.0, float(self.q[-1]))
        return ax


def half_width(atoms: Atoms) -> float:
    """Half the narrowest width of the Wigner-Seitz cell, i.e. half the shortest lattice
    vector, Å: the largest r within which no pair is counted through two periodic images.

    A property of the lattice: any cell of it gives the same value (perpendicular widths
    are not: they shrink as the cell is sheared, and those of a Minkowski-reduced cell
    still differ between equivalent reduced cells of an fcc lattice). For an orthogonal
    cell this is half its shortest perpendicular width.

    References:
        H. Minkowski, J. Reine Angew. Math. 129, 220 (1905) (the reduced basis holds the
        shortest lattice vector); ase.geometry.minkowski_reduce.
    """
    reduced, _ = minkowski_reduce(atoms.cell.array)  # [3, 3]
    return float(0.5 * np.linalg.norm(reduced, axis=1).min())


def lorch_window(r: np.ndarray, rmax: float) -> np.ndarray:
    """Lorch modification function sin(pi r / rmax) / (pi r / rmax), shape of `r`.

    References:
        E. Lorch, J. Phys. C 2, 229 (1969).
    """
    return np.sinc(np.asarray(r) / rmax)


def sq_from_gr(
    r: np.ndarray, g: np.ndarray, density: float, q: np.ndarray, window: bool = True
) -> np.ndarray:
    """S(q) = 1 + 4 pi rho / q * integral r (g(r) - 1) W(r) sin(q r) dr (midpoint rule).

    Args:
        r: equally spaced bin centres starting at dr/2, Å, shape ``[nbins]``.
        g: g(r) at `r`, shape ``[nbins]``.
        density: number density rho, 1/Å^3.
        q: scattering vector magnitudes (> 0), 1/Å, shape ``[nq]``.
        window: multiply by the Lorch window W(r) with rmax = r[-1] + dr/2.

    Returns:
        S(q), shape ``[nq]``.

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), eq. 2.104;
        E. Lorch, J. Phys. C 2, 229 (1969).
    """
    r = np.asarray(r, dtype=float)
    q = np.asarray(q, dtype=float)
    dr = float(r[1] - r[0]) if len(r) > 1 else 2.0 * float(r[0])
    weight = r * (np.asarray(g) - 1.0) * dr  # [nbins]
    if window:
        weight = weight * lorch_window(r, float(r[-1] + 0.5 * dr))
    integral = np.sin(np.outer(q, r)) @ weight  # [nq]
    return 1.0 + 4.0 * np.pi * density * integral / q


def structure_factor(
    structures: Atoms | Iterable[Atoms],
    qmax: float = 20.0,
    nq: int = 400,
    rmax: float | None = None,
    window: bool = True,
    dr: float = 0.01,
) -> StructureFactorResult:
    """Static structure factor from the total radial distribution function.

    g(r) is computed on the vesin neighbour list up to `rmax` with bins of about `dr`
    (normalised as ``amtoolkit.analysis.rdf``) and Fourier transformed per structure
    with its own density; S(q) is averaged over the set. The Lorch window damps the
    truncation ripples (period about 2 pi / rmax) at the cost of broader peaks.

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        qmax: largest q, 1/Å.
        nq: number of q points, evenly spaced on (0, qmax] (``q = qmax k / nq``).
        rmax: upper limit of the r integral, Å; default half the shortest lattice vector
            of the smallest cell in the set (:func:`half_width`, the same for any way
            the cell is written).
        window: apply the Lorch window.
        dr: target bin width of g(r), Å.

    Returns:
        StructureFactorResult with ``q`` [nq], ``s`` [nq], ``per_structure``.

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: qmax, rmax or dr not a positive, finite number; nq not an integer
            >= 1.

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), eq. 2.104;
        E. Lorch, J. Phys. C 2, 229 (1969).
    """
    qmax = positive("qmax", qmax, "wavenumber in 1/Å")
    nq = integer("nq", nq, 1)
    dr = positive("dr", dr, "length in Å")
    if rmax is not None:
        rmax = positive("rmax", rmax, "length in Å")
    frames = prepare(structures)
    if rmax is None:
        rmax = min(half_width(a) for a in frames)
    nbins = max(1, int(np.ceil(rmax / dr)))
    q = qmax * np.arange(1, nq + 1) / nq
    edges = np.linspace(0.0, rmax, nbins + 1)
    r = 0.5 * (edges[:-1] + edges[1:])
    shells = shell_volumes(rmax, nbins)
    per_structure = np.zeros((len(frames), len(q)))
    for k, atoms in enumerate(frames):
        n_atoms = len(atoms)
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        density = n_atoms / volume
        counts = pair_histogram(atoms, rmax, nbins, np.zeros(n_atoms, dtype=np.intp), 1)[0, 0]
        g = counts / (n_atoms * density * shells)
        per_structure[k] = sq_from_gr(r, g, density, q, window=window)
    return StructureFactorResult(
        q=q,
        s=per_structure.mean(axis=0),
        per_structure=per_structure,
        rmax=float(rmax),
        window=bool(window),
    )
