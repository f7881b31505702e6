"""Static structure factor S(q) from the Fourier transform of g(r): number-weighted, or
weighted as neutrons (coherent scattering lengths) or X-rays (atomic form factors) see
the atoms, to compare with diffraction data (Faber-Ziman)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.geometry import minkowski_reduce

from amtoolkit.analysis._options import integer, positive, shown
from amtoolkit.analysis._peaks import vertex
from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare
from amtoolkit.analysis.rdf import pair_histogram, shell_volumes


@dataclasses.dataclass(frozen=True)
class StructureFactorResult(Result):
    """Static structure factor S(q), mean over a set.

    Attributes:
        q: scattering vector magnitudes, 1/Å, shape ``[nq]``.
        s: S(q), shape ``[nq]``: number-number (all atoms weighted equally), or the
            Faber-Ziman total of the `weighting`.
        per_structure: S(q) of each structure, shape ``[n_structures, nq]``.
        rmax: upper limit of the r integral, Å.
        window: whether the Lorch window was applied.
        weighting: "number", "neutron" or "xray" (`WEIGHTINGS`).
    """

    q: np.ndarray
    s: np.ndarray
    per_structure: np.ndarray
    rmax: float
    window: bool
    weighting: str = "number"

    def peak_position(self, qmin: float = 0.5, qmax: float | None = None) -> float:
        """Position (1/Å) of the largest S(q) in ``[qmin, qmax]`` (e.g. (1, 2.5) for the
        first sharp diffraction peak of silica), refined by a parabola through the
        largest point and its two neighbours (so not bound to the q grid: the FSDP of
        silica glasses cooled at different rates differs by less than one 0.05 1/Å step).

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
        return vertex(self.q, self.s, k)

    def plot(self, ax=None):
        """Plot S(q); returns the Axes."""
        ax = new_axes(ax)
        ax.plot(self.q, self.s, color="k", lw=1.5)
        ax.axhline(1.0, color="0.6", lw=0.5)
        ax.set_xlabel("q (1/Å)")
        ax.set_ylabel(
            "S(q)" if self.weighting == "number" else f"S(q), {WEIGHTING_NAMES[self.weighting]}"
        )
        ax.set_xlim(0.0, float(self.q[-1]))
        return ax


DEFAULT_QMAX = 20.0
"""Largest q of a computed S(q) by default, 1/Å."""

DEFAULT_NQ = 400
"""Points of a computed S(q) by default, on (0, qmax]."""

MIN_MEASURED_POINTS = 5
"""Fewest points of a measured S(q) inside the computed q range that are compared."""


@dataclasses.dataclass(frozen=True)
class SqAgreement(Result):
    """How a computed S(q) agrees with a measured one, on the measured q points.

    Attributes:
        label: what the measured curve is (its file name).
        q_range: the compared q range, 1/Å: the measured points inside the computed grid.
        n_points: measured points compared.
        rmsd: root-mean-square difference of S(q).
        r_factor: sqrt(sum (S_calc - S_meas)^2 / sum (S_meas - 1)^2): 0 for perfect
            agreement, 1 for a featureless S(q) = 1 (in the style of Wright's R_chi,
            on S(q) rather than T(r)).
    """

    label: str
    q_range: tuple[float, float]
    n_points: int
    rmsd: float
    r_factor: float


@dataclasses.dataclass(frozen=True)
class MeasuredSq(Result):
    """A measured structure factor (e.g. neutron or X-ray diffraction), to set beside a
    computed one of the same weighting.

    Attributes:
        label: what it is (the file name when read with `read`).
        q: scattering vector magnitudes, 1/Å, strictly increasing, shape ``[n]``.
        s: S(q), shape ``[n]``.

    References:
        A. C. Wright, J. Non-Cryst. Solids 159, 264 (1993) (the R_chi agreement factor).
    """

    label: str
    q: np.ndarray
    s: np.ndarray

    def __post_init__(self) -> None:
        where = self.label
        try:
            q = np.array(self.q, dtype=float)
            s = np.array(self.s, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: q and S(q) must be numbers ({err})") from None
        if q.ndim != 1 or q.shape != s.shape:
            raise ValueError(f"{where}: q and S(q) must be two columns of equal length")
        if len(q) < MIN_MEASURED_POINTS:
            raise ValueError(
                f"{where}: {len(q)} points; a measured S(q) needs at least {MIN_MEASURED_POINTS}"
            )
        bad = np.flatnonzero(~(np.isfinite(q) & np.isfinite(s)))
        if len(bad):
            raise ValueError(
                f"{where}: point {bad[0] + 1} is not finite (q={q[bad[0]]}, S={s[bad[0]]})"
            )
        if q[0] <= 0.0 or np.any(np.diff(q) <= 0.0):
            k = 0 if q[0] <= 0.0 else int(np.flatnonzero(np.diff(q) <= 0.0)[0]) + 1
            raise ValueError(
                f"{where}: q must be positive and strictly increasing (1/Å); point {k + 1} "
                f"has q = {q[k]:g}"
            )
        q.flags.writeable = False  # checked once: keep them as checked
        s.flags.writeable = False
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "s", s)

    @classmethod
    def read(cls, path: str | os.PathLike) -> MeasuredSq:
        """Two whitespace- or comma-separated columns, q (1/Å) and S(q); lines starting
        with ``#`` are comments, further columns (e.g. errors) are ignored.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not two numeric columns, fewer than 5 points, or q not positive
                and increasing (one line naming the file).
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a measured S(q) file")
        if not path.is_file():
            raise FileNotFoundError(f"no measured S(q) file {str(path)!r}")
        text = path.read_text(encoding="utf-8-sig", errors="replace")  # -sig: Excel's BOM
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("#", 1)[0].replace(",", " ").replace(";", " ").split()
            if not fields:
                continue
            try:
                values = [float(f) for f in fields[:2]]
            except ValueError:
                raise ValueError(
                    f"{path}: line {number} is not two numbers (q, S(q)): {line.strip()[:60]!r}"
                    " (start a header line with #; decimal points, not commas)"
                ) from None
            if len(values) < 2:
                raise ValueError(f"{path}: line {number} has one column; q and S(q) are needed")
            rows.append(values)
        data = np.array(rows, dtype=float).reshape(-1, 2)
        return cls(label=path.name, q=data[:, 0], s=data[:, 1])

    def inside(self, qmin: float, qmax: float) -> np.ndarray:
        """Mask of the measured points in ``[qmin, qmax]`` (a computed q grid's range).

        Raises:
            ValueError: fewer than 5 of them.
        """
        mask = (self.q >= qmin) & (self.q <= qmax)
        if np.count_nonzero(mask) < MIN_MEASURED_POINTS:
            raise ValueError(
                f"{self.label}: {np.count_nonzero(mask)} measured points lie in the computed "
                f"q range [{qmin:.3g}, {qmax:.3g}] 1/Å; at least {MIN_MEASURED_POINTS} are "
                "needed (are its q in 1/Å?)"
            )
        return mask

    def agreement(self, computed: StructureFactorResult) -> SqAgreement:
        """Compare with a computed S(q) on the measured points inside its q grid (the
        computed curve linearly interpolated).

        Raises:
            ValueError: fewer than 5 measured points inside the computed q range.
        """
        inside = self.inside(float(computed.q[0]), float(computed.q[-1]))
        q, measured = self.q[inside], self.s[inside]
        diff = np.interp(q, computed.q, computed.s) - measured
        signal = float(np.sum((measured - 1.0) ** 2))
        return SqAgreement(
            label=self.label,
            q_range=(float(q[0]), float(q[-1])),
            n_points=int(len(q)),
            rmsd=float(np.sqrt(np.mean(diff**2))),
            r_factor=float(np.sqrt(np.sum(diff**2) / signal)) if signal > 0 else float("inf"),
        )


MIN_SCATTERING_CONTRAST = 0.01
"""Smallest <w>^2 / <w^2> a weighted S(q) accepts: below it the mean scattering length
nearly cancels (Ti-Zr alloys for neutrons) and S(q) - 1 is amplified over 100-fold."""

WEIGHTINGS = ("number", "neutron", "xray")
"""How the atoms are weighted in S(q): all alike, by coherent neutron scattering length,
or by X-ray atomic form factor."""

WEIGHTING_NAMES = {"number": "number", "neutron": "neutron", "xray": "X-ray"}
"""The weightings in words, for reports and plots."""


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(
            f"weighting must be one of {', '.join(WEIGHTINGS)}, got {shown(weighting)}"
        )


def scattering_weights(elements: Sequence[str], q: np.ndarray, weighting: str) -> np.ndarray:
    """How strongly each element scatters at each q, shape ``[n_elements, nq]``.

    Args:
        elements: chemical symbols.
        q: scattering vector magnitudes, 1/Å.
        weighting: "number" (1 for every atom), "neutron" (the bound coherent scattering
            length b_c of the natural isotope mix, fm, the same at every q) or "xray"
            (the atomic form factor f(q) of the neutral atom, electrons; Cromer-Mann
            fit, q = 4 pi sin(theta) / lambda).

    Raises:
        ValueError: an unknown weighting, or an element without tabulated data.

    References:
        Scattering lengths and form factors as tabulated by the `periodictable`
        package (NIST): lengths after V. F. Sears, Neutron News 3, 26 (1992), with
        later values for some elements (Si 4.1507 and O 5.8037 fm where Sears lists
        4.1491 and 5.803; S(q) of silica moves by under 3e-4); form factors after D. T.
        Cromer and J. B. Mann, Acta Cryst. A 24, 321 (1968).
    """
    _check_weighting(weighting)
    q = np.asarray(q, dtype=float)
    if weighting == "number":
        return np.ones((len(elements), len(q)))
    import periodictable
    from periodictable import cromermann

    rows = []
    for symbol in elements:
        if weighting == "neutron":
            neutron = getattr(getattr(periodictable, symbol, None), "neutron", None)
            b = getattr(neutron, "b_c", None)
            if b is None or not np.isfinite(b):
                raise ValueError(f"no coherent neutron scattering length is tabulated for {symbol}")
            rows.append(np.full(len(q), float(b)))
        else:
            try:
                rows.append(np.asarray(cromermann.fxrayatq(symbol, q), dtype=float))
            except (KeyError, ValueError):
                raise ValueError(f"no X-ray form factor is tabulated for {symbol}") from None
    return np.array(rows).reshape(len(elements), len(q))


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
        g: g(r) at `r`, shape ``[nbins]``, or several curves ``[..., nbins]``.
        density: number density rho, 1/Å^3.
        q: scattering vector magnitudes (> 0), 1/Å, shape ``[nq]``.
        window: multiply by the Lorch window W(r) with rmax = r[-1] + dr/2.

    Returns:
        S(q), shape ``[nq]`` (``[..., nq]`` for several curves).

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), eq. 2.104;
        E. Lorch, J. Phys. C 2, 229 (1969).
    """
    r = np.asarray(r, dtype=float)
    q = np.asarray(q, dtype=float)
    dr = float(r[1] - r[0]) if len(r) > 1 else 2.0 * float(r[0])
    weight = r * (np.asarray(g) - 1.0) * dr  # [..., nbins]
    if window:
        weight = weight * lorch_window(r, float(r[-1] + 0.5 * dr))
    integral = weight @ np.sin(np.outer(r, q))  # [..., nq]: one sine table for all curves
    return 1.0 + 4.0 * np.pi * density * integral / q


def structure_factor(
    structures: Atoms | Iterable[Atoms],
    qmax: float = DEFAULT_QMAX,
    nq: int = DEFAULT_NQ,
    rmax: float | None = None,
    window: bool = True,
    dr: float = 0.01,
    weighting: str = "number",
) -> StructureFactorResult:
    """Static structure factor from the radial distribution functions.

    g(r) is computed on the vesin neighbour list up to `rmax` with bins of about `dr`
    (normalised as ``amtoolkit.analysis.rdf``) and Fourier transformed per structure
    with its own density; S(q) is averaged over the set. The Lorch window damps the
    truncation ripples (period about 2 pi / rmax) at the cost of broader peaks.

    With ``weighting="neutron"`` or ``"xray"`` the partial S_ab(q) are combined as a
    diffraction experiment sees them (Faber-Ziman):
    ``S(q) - 1 = sum_ab c_a c_b w_a(q) w_b(q) (S_ab(q) - 1) / (sum_a c_a w_a(q))^2``,
    with c the atomic fractions and w the scattering lengths or form factors
    (`scattering_weights`); for one element, or ``"number"`` (w = 1), this is the
    number-number S(q).

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        qmax: largest q, 1/Å.
        nq: number of q points, evenly spaced on (0, qmax] (``q = qmax k / nq``).
        rmax: upper limit of the r integral, Å; default half the shortest lattice vector
            of the smallest cell in the set (:func:`half_width`, the same for any way
            the cell is written).
        window: apply the Lorch window.
        dr: target bin width of g(r), Å.
        weighting: "number", "neutron" or "xray" (`WEIGHTINGS`).

    Returns:
        StructureFactorResult with ``q`` [nq], ``s`` [nq], ``per_structure``.

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: qmax, rmax or dr not a positive, finite number; nq not an integer
            >= 1; an unknown weighting, an element without tabulated scattering data, or
            a mean scattering length of zero (a null-scattering mixture).

    References:
        Allen & Tildesley, Computer Simulation of Liquids (2017), eq. 2.104;
        E. Lorch, J. Phys. C 2, 229 (1969); T. E. Faber and J. M. Ziman, Phil. Mag. 11,
        153 (1965); D. A. Keen, J. Appl. Cryst. 34, 172 (2001) (total scattering
        conventions).
    """
    _check_weighting(weighting)
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
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    weights = scattering_weights(elements, q, weighting)  # [n_elements, nq]
    per_structure = np.zeros((len(frames), len(q)))
    for k, atoms in enumerate(frames):
        n_atoms = len(atoms)
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        density = n_atoms / volume
        if weighting == "number":
            types = np.zeros(n_atoms, dtype=np.intp)
            counts = pair_histogram(atoms, rmax, nbins, types, 1)[0, 0]
            g = counts / (n_atoms * density * shells)
            per_structure[k] = sq_from_gr(r, g, density, q, window=window)
            continue
        present, types = np.unique(atoms.get_chemical_symbols(), return_inverse=True)
        n_types = len(present)
        w = weights[[elements.index(e) for e in present]]  # [n_types, nq]
        c = np.bincount(types, minlength=n_types) / n_atoms  # atomic fractions
        mean_w = c @ w  # [nq]
        contrast = mean_w**2 / (c @ w**2)  # <w>^2 / <w^2>: 1 for one element
        if np.any(contrast < MIN_SCATTERING_CONTRAST):
            raise ValueError(
                f"the {WEIGHTING_NAMES[weighting]} scattering of {atoms.get_chemical_formula()} "
                f"nearly averages to zero (<w>^2 / <w^2> = {contrast.min():.2g}, below "
                f"{MIN_SCATTERING_CONTRAST:g}: a null-scattering mixture), so its weighted "
                "S(q) is undefined or dominated by noise"
            )
        counts = pair_histogram(atoms, rmax, nbins, types, n_types)  # [a, b, nbins]
        # c_a c_b (g_ab(r) - 1), whose transform is c_a c_b (S_ab(q) - 1)
        h = counts / (n_atoms * density * shells) - np.outer(c, c)[:, :, None]
        partial = sq_from_gr(r, 1.0 + h, density, q, window=window) - 1.0  # [a, b, nq]
        weighted = np.einsum("aq,bq,abq->q", w, w, partial)
        per_structure[k] = 1.0 + weighted / mean_w**2
    return StructureFactorResult(
        q=q,
        s=per_structure.mean(axis=0),
        per_structure=per_structure,
        rmax=float(rmax),
        window=bool(window),
        weighting=weighting,
    )
