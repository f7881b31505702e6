"""Locating the maximum of a sampled curve (a histogram of g(r), P(theta), S(q)) to better
than its grid: Gaussian smoothing of a set width, and the vertex of the parabola through
the highest point and its two neighbours."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def smoothed(y: ArrayLike, sigma: float) -> np.ndarray:
    """`y` convolved with a unit-area Gaussian of standard deviation `sigma` (in grid
    steps), the ends extended with their edge values; `y` itself when `sigma` <= 0.

    Returns:
        Array of the shape of `y`.
    """
    y = np.asarray(y, dtype=float)
    if not sigma > 0:
        return y
    half = int(np.ceil(4.0 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return np.convolve(np.pad(y, half, mode="edge"), kernel / kernel.sum(), mode="valid")


def vertex(x: ArrayLike, y: ArrayLike, k: int) -> float:
    """Position of the maximum near grid point `k` of a curve on an even grid `x`: the
    vertex of the parabola through points k - 1, k, k + 1 (kept within half a step of
    x[k]); x[k] itself at an end of the grid or where the three points are not concave."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not 0 < k < len(y) - 1:
        return float(x[k])
    curvature = y[k - 1] - 2.0 * y[k] + y[k + 1]
    if not curvature < 0:
        return float(x[k])
    shift = float(np.clip(0.5 * (y[k - 1] - y[k + 1]) / curvature, -0.5, 0.5))
    return float(x[k] + shift * (x[1] - x[0]))
