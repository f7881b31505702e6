"""Distances between distributions and errors between target and measured properties."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from amtoolkit.analysis._result import Result, new_axes


def distribution_rmsd(a: ArrayLike, b: ArrayLike) -> float:
    """Root-mean-square difference between two binned distributions.

    ``sqrt(mean over bins of (a - b)^2)``; average each set over its structures first
    (e.g. ``RDFResult.g``). Both must be sampled on the same bins.

    Args:
        a: distribution values, shape ``[nbins]``.
        b: distribution values on the same bins, shape ``[nbins]``.

    Returns:
        The RMSD, in the units of the distributions.

    Raises:
        ValueError: shapes differ (both lengths named), empty or non-finite input.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(
            f"distributions have different lengths: {a.shape[0] if a.ndim else a.shape} "
            f"and {b.shape[0] if b.ndim else b.shape} (shapes {a.shape} and {b.shape})"
        )
    if a.size == 0:
        raise ValueError("distributions are empty")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("distributions contain NaN or inf")
    return float(np.sqrt(np.mean((a - b) ** 2)))


def sampling_rmsd(
    per_structure: ArrayLike, n_a: int, n_b: int, repeats: int = 200, seed: int = 0
) -> float | None:
    """Expected `distribution_rmsd` between two sets of `n_a` and `n_b` structures drawn
    from the same population: the floor a set comparison can reach with these sizes.

    Two sets are resampled with replacement from `per_structure` (one distribution per
    structure, e.g. ``RDFResult.per_structure`` of a reference set), each averaged, and
    their RMSD taken; the mean over `repeats` draws is returned. A generated set whose
    RMSD to the reference is at this level is as close as the set sizes can show.

    Args:
        per_structure: distributions of the population, shape ``[n_structures, nbins]``.
        n_a: size of the first set (e.g. the generated set).
        n_b: size of the second set (e.g. the reference set).
        repeats: number of resampled pairs.
        seed: seed of the resampling.

    Returns:
        The mean RMSD, or None when the population has fewer than 2 structures (its
        spread is unknown).

    Raises:
        ValueError: not a 2-D array, a set size below 1 or `repeats` below 1.
    """
    curves = np.asarray(per_structure, dtype=float)
    if curves.ndim != 2:
        raise ValueError(f"per_structure must be [n_structures, nbins], got shape {curves.shape}")
    if min(n_a, n_b) < 1 or repeats < 1:
        raise ValueError(f"need set sizes and repeats >= 1, got {n_a}, {n_b} and {repeats}")
    if len(curves) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = [
        distribution_rmsd(
            curves[rng.integers(len(curves), size=n_a)].mean(axis=0),
            curves[rng.integers(len(curves), size=n_b)].mean(axis=0),
        )
        for _ in range(repeats)
    ]
    return float(np.mean(draws))


def excess_rmsd(per_a: ArrayLike, per_b: ArrayLike) -> float | None:
    """The RMSD between the population averages of two sets, with the noise of their
    finite sizes taken out: what more structures on both sides would converge to.

    The squared `distribution_rmsd` of the two set averages has the expectation
    D^2 + mean_bins(var_a) / n_a + mean_bins(var_b) / n_b, where D is the RMSD between the
    population averages and var the per-bin variance across each set's structures.
    Subtracting the noise terms (sample variances) gives an unbiased estimate of D^2,
    whose square root is returned (0 where the estimate is negative: the sets cannot be
    told apart). Unlike the RMSD itself, it does not fall as the sets grow, so sets of
    different sizes can be compared by it.

    Args:
        per_a: distributions of the first set's structures, ``[n_a, nbins]`` (e.g.
            ``rdf(frames).per_structure``).
        per_b: distributions of the second set's structures, ``[n_b, nbins]``.

    Returns:
        The estimate, or None when a set has fewer than 2 structures (its spread is
        unknown).

    Raises:
        ValueError: not two 2-D arrays on the same bins.
    """
    a, b = _two_sets(per_a, per_b)
    if min(len(a), len(b)) < 2:
        return None
    squared = np.mean((a.mean(axis=0) - b.mean(axis=0)) ** 2)
    noise = np.mean(a.var(axis=0, ddof=1)) / len(a) + np.mean(b.var(axis=0, ddof=1)) / len(b)
    return float(np.sqrt(max(squared - noise, 0.0)))


def rmsd_standard_error(per_a: ArrayLike, per_b: ArrayLike) -> float | None:
    """Standard error of `distribution_rmsd` between two set averages: how much the
    RMSD would scatter if both sets were drawn again at the same sizes (another seed of
    a generator, another reference set).

    The per-bin difference of the set means d has the covariance
    S = C_a / n_a + C_b / n_b across bins (C: the covariance of the structures'
    curves), so X = RMSD^2 = |d|^2 / K has the variance (4 D.S.D + 2 tr S^2) / K^2 for
    population difference D. tr S^2 is estimated without bias from the sample
    covariances, D.S.D as d.S.d - tr S^2, and X is matched to a scaled chi-square
    (Satterthwaite) whose square root gives the error. Bins are not assumed
    independent: an RDF's neighbouring bins move together, which a per-bin formula or
    a bootstrap gets wrong by 20-50% at these set sizes (the bootstrap doubles the
    noise it resamples). Against the scatter of repeated disjoint draws of a-Si RDFs
    (benchmarks/bench_rmsd_error.py, sets of 16/48 and 32/98 cells) it came within 16%
    where the sets differ and 13-31% high where they cannot be told apart.

    Args:
        per_a: distributions of the first set's structures, ``[n_a, nbins]``.
        per_b: distributions of the second set's structures, ``[n_b, nbins]``.

    Returns:
        The standard error, in the units of the distributions, or None when a set has
        fewer than 3 structures (too few to estimate its covariance).

    Raises:
        ValueError: not two 2-D arrays on the same bins.
    """
    a, b = _two_sets(per_a, per_b)
    n_a, n_b, nbins = len(a), len(b), a.shape[1]
    if min(n_a, n_b) < 3:
        return None
    cov_a, cov_b = (np.atleast_2d(np.cov(x, rowvar=False)) for x in (a, b))
    cov = cov_a / n_a + cov_b / n_b
    trace_sq = max(
        _trace_of_square(cov_a, n_a) / n_a**2
        + 2.0 * np.sum(cov_a * cov_b) / (n_a * n_b)
        + _trace_of_square(cov_b, n_b) / n_b**2,
        0.0,
    )
    d = a.mean(axis=0) - b.mean(axis=0)
    mean_x = float(np.mean(d**2))
    # D estimated as d shrunk to the excess RMSD's length (its noise taken out)
    shrink = max(1.0 - np.trace(cov) / (nbins * mean_x), 0.0) if mean_x > 0.0 else 0.0
    var_x = (4.0 * shrink * (d @ cov @ d) + 2.0 * trace_sq) / nbins**2
    if mean_x <= 0.0 or var_x <= 0.0:
        return 0.0
    dof, scale = 2.0 * mean_x**2 / var_x, var_x / (2.0 * mean_x)
    mean_root_sq = 2.0 * scale * np.exp(2.0 * (gammaln((dof + 1) / 2) - gammaln(dof / 2)))
    return float(np.sqrt(max(scale * dof - mean_root_sq, 0.0)))


def _two_sets(per_a: ArrayLike, per_b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of per-structure distributions as float arrays on the same bins."""
    a, b = (np.asarray(x, dtype=float) for x in (per_a, per_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"need two [n_structures, nbins] arrays on the same bins, got shapes "
            f"{a.shape} and {b.shape}"
        )
    return a, b


def _trace_of_square(cov: np.ndarray, n: int) -> float:
    """Unbiased estimate of tr(C^2) from the sample covariance `cov` of `n` draws
    (Wishart moments: E tr S^2 = (1 + 1/m) tr C^2 + (tr C)^2 / m, m = n - 1)."""
    m = n - 1
    return m**2 / ((m - 1) * (m + 2)) * (float(np.sum(cov * cov)) - np.trace(cov) ** 2 / m)


@dataclasses.dataclass(frozen=True)
class PropertyErrors(Result):
    """Errors of measured properties against their design targets.

    Attributes:
        mae: mean absolute error, units of the property.
        rmse: root-mean-square error, units of the property.
        mape: mean absolute percentage error, % (over pairs with a non-zero target;
            NaN when there is none).
        n: number of (target, measured) pairs used (pairs with a NaN are dropped).
    """

    mae: float
    rmse: float
    mape: float
    n: int


@dataclasses.dataclass(frozen=True)
class TargetCheck(Result):
    """A property measured on structures made for design targets, frame by frame.

    Attributes:
        name: the property (e.g. ``"shear_modulus"``).
        target: the target of each frame (NaN where it had none), shape ``[n]``.
        measured: the measured value of each frame, shape ``[n]``.
        errors: `property_errors` of the pairs.
    """

    name: str
    target: np.ndarray
    measured: np.ndarray
    errors: PropertyErrors

    def plot(self, ax=None):
        """Measured against target, one point per frame, with the line measured = target;
        returns the Axes."""
        from amtoolkit.data.properties import label_of

        ax = new_axes(ax)
        keep = ~(np.isnan(self.target) | np.isnan(self.measured))
        t, m = self.target[keep], self.measured[keep]
        ax.plot(t, m, "o", color="C0")
        if len(t):
            low, high = float(min(t.min(), m.min())), float(max(t.max(), m.max()))
            pad = 0.05 * (high - low) or 0.05 * max(abs(high), 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=0.8)
        label = label_of(self.name).replace("_", " ")
        ax.set_xlabel(f"target {label}")
        ax.set_ylabel(f"measured {label}")
        e = self.errors
        ax.text(
            0.04,
            0.96,
            f"MAE {e.mae:.3g}, RMSE {e.rmse:.3g} (n {e.n})",
            transform=ax.transAxes,
            va="top",
        )
        return ax


def target_check(name: str, targets: ArrayLike, measured: ArrayLike) -> TargetCheck:
    """`TargetCheck` of property `name` from per-frame targets and measured values."""
    t = np.asarray(targets, dtype=float)
    m = np.asarray(measured, dtype=float)
    return TargetCheck(name=name, target=t, measured=m, errors=property_errors(t, m))


def property_errors(targets: ArrayLike, measured: ArrayLike) -> PropertyErrors:
    """MAE, RMSE and MAPE between targets and measured values, NaN-safe.

    Pairs where either value is NaN are dropped (e.g. a structure whose property could
    not be measured); with no pair left every error is NaN and ``n == 0``.

    Args:
        targets: target property values, shape ``[n]``.
        measured: measured values for the same structures, shape ``[n]``.

    Returns:
        PropertyErrors(mae, rmse, mape in %, n).

    Raises:
        ValueError: the two inputs have different lengths (both named) or are not 1D.
    """
    t = np.atleast_1d(np.asarray(targets, dtype=float))
    m = np.atleast_1d(np.asarray(measured, dtype=float))
    if t.ndim != 1 or m.ndim != 1:
        raise ValueError(f"targets and measured must be 1D, got shapes {t.shape} and {m.shape}")
    if len(t) != len(m):
        raise ValueError(
            f"targets and measured have different lengths: {len(t)} targets, {len(m)} measured"
        )
    keep = ~(np.isnan(t) | np.isnan(m))
    t, m = t[keep], m[keep]
    n = int(len(t))
    if n == 0:
        nan = float("nan")
        return PropertyErrors(mae=nan, rmse=nan, mape=nan, n=0)
    error = m - t
    nonzero = t != 0
    mape = (
        float(100.0 * np.mean(np.abs(error[nonzero] / t[nonzero])))
        if nonzero.any()
        else float("nan")
    )
    return PropertyErrors(
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error**2))),
        mape=mape,
        n=n,
    )
