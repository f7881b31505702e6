"""Distribution RMSD and target/measured property errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amtoolkit.analysis.metrics import (
    PropertyErrors,
    distribution_rmsd,
    excess_rmsd,
    property_errors,
    rmsd_standard_error,
    sampling_rmsd,
)

TOL = 1e-12


def test_rmsd_known_values():
    a = np.array([0.0, 1.0, 2.0, 3.0])
    assert distribution_rmsd(a, a) == 0.0
    assert distribution_rmsd(a, a + 0.5) == pytest.approx(0.5, abs=TOL)
    # (1^2 + 0 + 1^2 + 0) / 4 -> sqrt(0.5)
    assert distribution_rmsd(a, [1.0, 1.0, 1.0, 3.0]) == pytest.approx(np.sqrt(0.5), abs=TOL)
    assert distribution_rmsd([1.0, 2.0], [2.0, 4.0]) == distribution_rmsd([2.0, 4.0], [1.0, 2.0])


def test_rmsd_rejects_mismatched_or_bad_input():
    with pytest.raises(ValueError, match="different lengths: 3 and 4"):
        distribution_rmsd(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        distribution_rmsd([np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        distribution_rmsd([], [])


def test_sampling_rmsd_matches_the_standard_error_of_two_means():
    # iid unit noise per bin: the two set means differ by N(0, 1/n_a + 1/n_b) per bin
    population = np.random.default_rng(0).normal(size=(4000, 400))
    for n_a, n_b in ((8, 8), (32, 11)):
        expected = np.sqrt(1.0 / n_a + 1.0 / n_b)
        assert sampling_rmsd(population, n_a, n_b, repeats=50) == pytest.approx(expected, rel=0.03)
    assert sampling_rmsd(population, 64, 64) < sampling_rmsd(population, 8, 8)


def test_sampling_rmsd_of_identical_structures_is_zero_and_needs_two():
    assert sampling_rmsd(np.ones((5, 10)), 3, 4) == 0.0
    assert sampling_rmsd(np.ones((1, 10)), 3, 4) is None
    with pytest.raises(ValueError, match=r"\[n_structures, nbins\]"):
        sampling_rmsd(np.ones(10), 3, 4)
    with pytest.raises(ValueError, match="set sizes and repeats >= 1, got 0, 4 and 200"):
        sampling_rmsd(np.ones((5, 10)), 0, 4)


def _sets(rng, offset, n_a, n_b, nbins=20000):
    """Per-structure curves of two sets: unit noise per bin, the second shifted."""
    return rng.normal(size=(n_a, nbins)), offset + rng.normal(size=(n_b, nbins))


def test_excess_rmsd_recovers_the_distance_of_the_population_means():
    rng = np.random.default_rng(1)
    for n_a, n_b in ((8, 64), (32, 98)):
        a, b = _sets(rng, 0.2, n_a, n_b)
        raw = distribution_rmsd(a.mean(axis=0), b.mean(axis=0))
        assert raw == pytest.approx(np.sqrt(0.04 + 1 / n_a + 1 / n_b), rel=0.05)
        assert excess_rmsd(a, b) == pytest.approx(0.2, rel=0.1)  # the set sizes drop out
    same_a, same_b = _sets(rng, 0.0, 16, 16)
    assert distribution_rmsd(same_a.mean(axis=0), same_b.mean(axis=0)) > 0.3
    assert excess_rmsd(same_a, same_b) < 0.05
    assert excess_rmsd(same_a, same_a) == 0.0


def test_excess_rmsd_needs_two_structures_and_the_same_bins():
    assert excess_rmsd(np.ones((1, 10)), np.ones((5, 10))) is None
    with pytest.raises(ValueError, match=r"same bins, got shapes \(5, 10\) and \(5, 9\)"):
        excess_rmsd(np.ones((5, 10)), np.ones((5, 9)))


def test_property_errors_known_values():
    targets = [10.0, 20.0, 40.0]
    measured = [11.0, 18.0, 40.0]
    result = property_errors(targets, measured)
    assert isinstance(result, PropertyErrors)
    assert result.n == 3
    assert result.mae == pytest.approx(1.0, abs=TOL)
    assert result.rmse == pytest.approx(np.sqrt(5.0 / 3.0), abs=TOL)
    assert result.mape == pytest.approx(100.0 * (0.1 + 0.1 + 0.0) / 3.0, abs=TOL)
    assert json.loads(json.dumps(result.to_dict()))["n"] == 3


def test_property_errors_drop_nan_pairs():
    result = property_errors([10.0, np.nan, 20.0, 5.0], [12.0, 3.0, 20.0, np.nan])
    reference = property_errors([10.0, 20.0], [12.0, 20.0])
    assert result == reference
    assert result.n == 2 and result.mae == pytest.approx(1.0)


def test_property_errors_all_nan_and_zero_targets():
    empty = property_errors([np.nan], [1.0])
    assert empty.n == 0 and np.isnan(empty.mae) and np.isnan(empty.rmse)
    zero = property_errors([0.0, 0.0], [1.0, -1.0])
    assert zero.mae == 1.0 and np.isnan(zero.mape)  # MAPE undefined for zero targets


def test_property_errors_length_mismatch_names_both():
    with pytest.raises(ValueError, match="3 targets, 2 measured"):
        property_errors([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="1D"):
        property_errors(np.ones((2, 2)), np.ones((2, 2)))


def _smooth_sets(rng, offset, n_a, n_b, nbins=100):
    """Two sets of smooth curves (neighbouring bins correlated over ~4 bins, as in an
    RDF), the first shifted by `offset` times a sine of unit RMS."""
    x = np.arange(nbins)
    kernel = np.exp(-(((x[:, None] - x[None, :]) / 4.0) ** 2) / 2)
    root = np.linalg.cholesky(kernel + 1e-6 * np.eye(nbins))
    sd = 0.15 * (1 + np.sin(x / 7) ** 2)
    shift = offset * np.sqrt(2) * np.sin(x / 5)
    return (
        shift + sd * (rng.normal(size=(n_a, nbins)) @ root.T),
        sd * (rng.normal(size=(n_b, nbins)) @ root.T),
    )


@pytest.mark.parametrize("offset, n_a, n_b", [(0.05, 32, 98), (0.03, 16, 98), (0.0, 32, 98)])
def test_rmsd_standard_error_matches_the_scatter_of_repeated_draws(offset, n_a, n_b):
    rng = np.random.default_rng(2)
    rmsds, errors = [], []
    for _ in range(300):
        a, b = _smooth_sets(rng, offset, n_a, n_b)
        rmsds.append(distribution_rmsd(a.mean(axis=0), b.mean(axis=0)))
        errors.append(rmsd_standard_error(a, b))
    scatter = np.std(rmsds)
    # within 20% where the sets differ; errs high (never low) where they cannot be told apart
    assert np.mean(errors) == pytest.approx(scatter, rel=0.2 if offset else 0.35)
    assert np.mean(errors) > 0.9 * scatter


def test_rmsd_standard_error_falls_with_set_size_and_needs_three_structures():
    rng = np.random.default_rng(3)
    small = rmsd_standard_error(*_smooth_sets(rng, 0.05, 8, 16))
    large = rmsd_standard_error(*_smooth_sets(rng, 0.05, 128, 256))
    assert large < small / 3  # ~ 1 / sqrt(n): 16x the structures, 4x smaller
    assert rmsd_standard_error(np.ones((5, 10)), np.ones((4, 10))) == 0.0
    assert rmsd_standard_error(np.ones((2, 10)), np.ones((5, 10))) is None
    with pytest.raises(ValueError, match=r"same bins, got shapes \(5, 10\) and \(5, 9\)"):
        rmsd_standard_error(np.ones((5, 10)), np.ones((5, 9)))
