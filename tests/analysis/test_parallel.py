"""Potential-based analyses shared out over worker processes (`Analyzer(workers=N)`)."""

from __future__ import annotations

import numpy as np
import pytest

from amtoolkit import Analyzer
from amtoolkit.analysis.parallel import _frame_task
from amtoolkit.analyzer import frame_error
from amtoolkit.potentials import get_calculator
from tests.known_values import SW_DIAMOND_ENERGY

ENERGY_TOL = 1e-6  # eV/atom: relaxations agree to round-off, whichever process runs them
MODULUS_TOL = 1e-2  # GPa


@pytest.fixture
def rattled_cells(diamond_si):
    cells = []
    for seed in range(3):
        atoms = diamond_si.copy()
        atoms.rattle(0.05, seed=seed)
        cells.append(atoms)
    return cells


def test_energy_in_workers_equals_one_process(rattled_cells):
    serial = Analyzer("sw-si").energy(rattled_cells)
    pooled = Analyzer("sw-si", workers=2).energy(rattled_cells)
    assert np.allclose(pooled.energy_per_atom, serial.energy_per_atom, atol=ENERGY_TOL, rtol=0)
    assert np.allclose(pooled.density, serial.density, atol=1e-6, rtol=0)
    assert pooled.n_atoms.tolist() == [8, 8, 8] and pooled.relaxed


def test_elastic_in_workers_equals_one_process(rattled_cells):
    options = {"n_steps": 3, "fmax": 1e-3}
    serial = Analyzer("sw-si").elastic(rattled_cells[:2], **options)
    pooled = Analyzer("sw-si", workers=2).elastic(rattled_cells[:2], **options)
    assert np.allclose(pooled.C_per_structure, serial.C_per_structure, atol=MODULUS_TOL, rtol=0)
    assert np.allclose(pooled.C, pooled.C_per_structure.mean(axis=0))
    assert pooled.shear_modulus.shape == (2,) and pooled.n_steps == 3


@pytest.mark.parametrize("frequency_range", [None, (0.0, 25.0)])
def test_vdos_in_workers_equals_one_process(rattled_cells, frequency_range):
    options = {"relax": False, "nbins": 50, "frequency_range": frequency_range}
    serial = Analyzer("sw-si").vdos(rattled_cells[:2], **options)
    pooled = Analyzer("sw-si", workers=2).vdos(rattled_cells[:2], **options)
    assert np.allclose(pooled.frequency, serial.frequency)
    assert np.allclose(pooled.dos, serial.dos, atol=1e-8)
    if frequency_range is not None:
        assert (pooled.frequency[0], pooled.frequency[-1]) == pytest.approx(frequency_range)


def test_report_in_workers_keeps_frame_order(rattled_cells, diamond_si):
    frames = [*rattled_cells, diamond_si]
    pooled = Analyzer("sw-si", workers=2).report(frames, ["energy"])
    serial = Analyzer("sw-si").report(frames, ["energy"])
    assert pooled.labels == serial.labels
    a, b = pooled.results["energy"], serial.results["energy"]
    assert np.allclose(a.energy_per_atom, b.energy_per_atom, atol=ENERGY_TOL, rtol=0)
    assert a.energy_per_atom[-1] == pytest.approx(SW_DIAMOND_ENERGY, abs=1e-4)


@pytest.mark.parametrize("workers", [1, 2])
def test_per_frame_keeps_going_past_a_failing_frame(workers, diamond_si):
    from ase.build import bulk

    from amtoolkit.errors import CoverageError

    sic = bulk("SiC", "zincblende", a=4.36, cubic=True)
    results = Analyzer("sw-si", workers=workers).per_frame("energy", [diamond_si, sic, diamond_si])
    assert isinstance(results[1], CoverageError) and "'C'" in str(results[1])
    assert [r.energy_per_atom[0] for r in (results[0], results[2])] == pytest.approx(
        [SW_DIAMOND_ENERGY] * 2, abs=1e-4
    )
    with pytest.raises(ValueError, match="not 'rdf'"):
        Analyzer("sw-si").per_frame("rdf", [diamond_si])


def test_a_failing_frame_comes_back_as_its_error(diamond_si):
    bad = _frame_task("sw-si", {}, [("energy", {"fmax": -1.0})], diamond_si)
    assert isinstance(bad, Exception)
    good = _frame_task("sw-si", {}, [("energy", {})], diamond_si)
    assert good["energy"].energy_per_atom[0] == pytest.approx(SW_DIAMOND_ENERGY, abs=1e-4)
    named = frame_error(3, ValueError("fmax must be positive"))
    assert isinstance(named, ValueError) and str(named) == "structure 3: fmax must be positive"


def test_bad_worker_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        Analyzer("sw-si", workers=0)
    with pytest.raises(ValueError, match="needs a potential name"):
        Analyzer(get_calculator("sw-si"), workers=2)
    assert repr(Analyzer("sw-si", workers=2)) == "Analyzer(potential='sw-si', workers=2)"


def test_rings_of_a_report_run_frame_by_frame_without_a_potential(tmp_path, diamond_si):
    """Rings share out over workers and land in the cache (no potential needed); the
    summed counts equal the set's, and a set mixing silica and silicon is refused."""
    from amtoolkit.analysis.rings import rings
    from tests.analysis.test_rings import beta_cristobalite

    silica = [beta_cristobalite(), beta_cristobalite(7.2) * (1, 1, 2)]
    whole = rings(silica, count_species="Si")
    pooled = Analyzer(workers=2, cache=tmp_path).report(silica, ["rings"]).results["rings"]
    assert pooled.counts == whole.counts and pooled.per_structure == whole.per_structure
    again = Analyzer(cache=tmp_path)
    assert again.report(silica, ["rings"]).results["rings"].counts == whole.counts
    assert again.cache.hits == 2
    with pytest.raises(ValueError, match="counted in different atoms"):
        Analyzer().report([*silica, diamond_si], ["rings"])
