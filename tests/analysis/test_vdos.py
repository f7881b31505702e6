"""Tests for amtoolkit.analysis.vdos: Gamma-point phonons and the broadened VDOS."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import _amu, _e
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)

from amtoolkit.analysis.vdos import VDOSResult, broadened_dos, gamma_frequencies, vdos
from amtoolkit.analyzer import Analyzer
from amtoolkit.potentials import get_calculator

ACOUSTIC_TOL = 1e-3  # THz, translational invariance at Gamma
REFERENCE_TOL = 5e-3  # THz, phonopy against a direct finite-difference Hessian
AREA_TOL = 1e-4  # unit-area normalisation of the DOS on the grid
SQRT_EV_PER_A2_AMU_IN_THZ = np.sqrt(_e / _amu) * 1e10 / (2 * np.pi) / 1e12  # 15.633 THz


@pytest.fixture
def sw():
    """SW Si on LAMMPS: the calculator under test."""
    return get_calculator("sw-si")


@pytest.fixture
def sw_reference():
    """matscipy's independent SW implementation, for the reference Hessian."""
    return Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))


def hessian_frequencies(atoms: Atoms, calc, step: float = 0.005) -> np.ndarray:
    """Independent reference: eigenfrequencies of the mass-weighted central-difference Hessian."""
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for k in range(3):
            forces = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, k] += sign * step
                moved.calc = calc
                forces.append(moved.get_forces().ravel())
            hessian[3 * i + k] = -(forces[0] - forces[1]) / (2 * step)
    hessian = 0.5 * (hessian + hessian.T)
    mass = np.repeat(atoms.get_masses(), 3)
    omega2 = np.linalg.eigvalsh(hessian / np.sqrt(np.outer(mass, mass)))
    return np.sign(omega2) * np.sqrt(np.abs(omega2)) * SQRT_EV_PER_A2_AMU_IN_THZ


def test_diamond_gamma_modes(diamond_si, sw, sw_reference):
    modes = gamma_frequencies(diamond_si, sw, symmetrize=False)
    assert modes.shape == (3 * len(diamond_si),)
    assert np.all(np.diff(modes) >= 0)
    # three acoustic modes at zero without imposing the sum rule: forces are
    # translation invariant
    assert np.all(np.abs(modes[:3]) < ACOUSTIC_TOL)
    assert modes[3] > 1.0
    # zone-centre optical mode of SW Si (triply degenerate, top of the spectrum)
    assert 15.0 < modes[-1] < 19.0
    np.testing.assert_allclose(modes[-3:], modes[-1], atol=1e-6)
    np.testing.assert_allclose(
        modes, hessian_frequencies(diamond_si, sw_reference), atol=REFERENCE_TOL
    )


def test_symmetry_free_cell_matches_reference(diamond_si, sw, sw_reference):
    rattled = diamond_si.copy()
    rattled.rattle(0.05, seed=4)  # P1: phonopy displaces every atom
    modes = gamma_frequencies(rattled, sw, symmetrize=False)
    np.testing.assert_allclose(
        modes, hessian_frequencies(rattled, sw_reference), atol=REFERENCE_TOL
    )


def test_heavier_atoms_scale_frequencies(diamond_si, sw):
    light = gamma_frequencies(diamond_si, sw)
    heavy_cell = diamond_si.copy()
    heavy_cell.set_masses(4.0 * diamond_si.get_masses())
    heavy = gamma_frequencies(heavy_cell, sw)
    np.testing.assert_allclose(heavy[3:], 0.5 * light[3:], rtol=1e-6)


def test_vdos_normalisation_and_shapes(diamond_si, sw):
    result = vdos(diamond_si, sw, sigma=0.2, nbins=300)
    assert isinstance(result, VDOSResult)
    assert result.frequency.shape == result.dos.shape == (300,)
    assert result.per_structure.shape == (1, 300)
    assert len(result.mode_frequencies) == 1 and result.mode_frequencies[0].shape == (24,)
    assert np.all(result.dos >= 0)
    assert np.trapezoid(result.dos, result.frequency) == pytest.approx(1.0, abs=AREA_TOL)
    # symmetrised force constants: acoustic sum rule holds exactly
    assert np.all(np.abs(result.mode_frequencies[0][:3]) < ACOUSTIC_TOL)
    # the grid covers all modes with margin; the DOS peaks near the optical mode
    assert result.frequency[0] < 0.0 and result.frequency[-1] > result.mode_frequencies[0][-1]
    data = json.loads(json.dumps(result.to_dict()))
    assert len(data["dos"]) == 300 and data["sigma"] == 0.2


def test_set_average_and_ghosts(diamond_si, sw):
    ghosted = diamond_si + Atoms("X", positions=[[1.0, 2.0, 0.5]])
    single = vdos(diamond_si, sw, frequency_range=(-1.0, 20.0), nbins=200, relax=False)
    both = vdos([diamond_si, ghosted], sw, frequency_range=(-1.0, 20.0), nbins=200, relax=False)
    assert both.mode_frequencies[1].shape == (24,)
    np.testing.assert_allclose(both.dos, single.dos, atol=1e-10)
    np.testing.assert_allclose(both.frequency, np.linspace(-1.0, 20.0, 200))


def test_broadened_dos_single_mode():
    sigma = 0.3
    grid = np.linspace(0.0, 10.0, 1001)
    dos = broadened_dos(np.array([4.0]), grid, sigma)
    assert grid[np.argmax(dos)] == pytest.approx(4.0)
    assert dos.max() == pytest.approx(1.0 / (sigma * np.sqrt(2 * np.pi)), rel=1e-12)
    half = dos.max() / 2
    width = np.ptp(grid[dos >= half])
    assert width == pytest.approx(2 * np.sqrt(2 * np.log(2)) * sigma, abs=0.02)
    two = broadened_dos(np.array([4.0, 6.0]), grid, sigma)
    np.testing.assert_allclose(two, 0.5 * (dos + broadened_dos(np.array([6.0]), grid, sigma)))


def test_plot_returns_axes(diamond_si, sw):
    result = vdos(diamond_si, sw, nbins=50)
    ax = result.plot()
    assert ax.get_xlabel() == "Frequency (THz)"
    assert len(ax.lines) == 1


def test_bad_arguments(diamond_si, sw):
    with pytest.raises(ValueError, match="sigma"):
        broadened_dos(np.array([1.0]), np.linspace(0, 2, 5), 0.0)
    with pytest.raises(ValueError, match="frequency_range"):
        vdos(diamond_si, sw, frequency_range=(5.0, 1.0), relax=False)
    with pytest.raises(ValueError, match="nbins"):
        vdos(diamond_si, sw, nbins=1)
    for bad in (0.0, -0.01, float("nan")):  # 0 gave every mode at 0 THz without a word
        with pytest.raises(ValueError, match="displacement must be a positive, finite length"):
            vdos(diamond_si, sw, displacement=bad, relax=False)


class NoForceCalls(Calculator):
    """A calculator that fails the test when asked for anything."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        raise AssertionError("a force call before the options were checked")


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("sigma", 0, "0"),  # failed after the 6N force calls
        ("sigma", float("inf"), "inf"),
        ("nbins", 100.5, "100.5"),
        ("nbins", 1, "1"),
        ("frequency_range", (5.0, 1.0), "(5.0, 1.0)"),
        ("frequency_range", (0.0, float("inf")), "(0.0, inf)"),
        ("frequency_range", "0-20", "'0-20'"),
        ("displacement", float("inf"), "inf"),
        ("fmax", 0.0, "0.0"),
    ],
)
def test_bad_option_fails_before_any_force_call(diamond_si, option, value, shown):
    with pytest.raises(ValueError) as error:
        vdos(diamond_si, NoForceCalls(), **{option: value})
    message = str(error.value)
    assert message.startswith(f"{option} must be ") and message.endswith(f", got {shown}")
    with pytest.raises(ValueError, match=f"^{option} must be "):  # the Analyzer's way in
        Analyzer(NoForceCalls()).vdos(diamond_si, **{option: value})
