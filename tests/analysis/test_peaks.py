"""amtoolkit.analysis._peaks: the smoothing and parabola vertex behind every peak position."""

from __future__ import annotations

import numpy as np
import pytest

from amtoolkit.analysis._peaks import smoothed, vertex
from amtoolkit.analysis.structure_factor import StructureFactorResult

EXACT = 1e-12


def test_vertex_of_a_sampled_parabola_is_exact_and_stays_near_its_point():
    x = 0.1 * np.arange(20)
    y = -((x - 0.937) ** 2)
    k = int(np.argmax(y))
    assert vertex(x, y, k) == pytest.approx(0.937, abs=EXACT)
    assert vertex(x, y, 0) == x[0] and vertex(x, y, 19) == x[19]  # ends: the point itself
    assert vertex(x, x, 5) == x[5]  # a straight line has no vertex
    assert abs(vertex(x, -(np.abs(x - 0.5) ** 0.2), 5) - x[5]) <= 0.05 + EXACT  # half a step


def test_smoothing_keeps_constants_and_area_and_widens_a_spike():
    flat = np.full(50, 3.0)
    np.testing.assert_allclose(smoothed(flat, 2.5), flat, rtol=EXACT)
    spike = np.zeros(101)
    spike[50] = 1.0
    smooth = smoothed(spike, 3.0)
    assert smooth.shape == spike.shape
    assert smooth.sum() == pytest.approx(1.0, abs=EXACT)
    assert np.argmax(smooth) == 50 and smooth[50] < 0.2
    np.testing.assert_array_equal(smoothed(spike, 0.0), spike)


def test_sq_peak_position_is_not_bound_to_the_q_grid():
    q = 0.05 * np.arange(1, 200)
    s = 1.0 + 0.6 * np.exp(-((q - 1.532) ** 2) / (2 * 0.15**2))
    sq = StructureFactorResult(q=q, s=s, per_structure=s[None], rmax=20.0, window=True)
    assert sq.peak_position(1.0, 2.5) == pytest.approx(1.532, abs=0.005)  # grid: 1.55
