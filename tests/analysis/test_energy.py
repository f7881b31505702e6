"""Tests for amtoolkit.analysis.energy: energy, density and pressure after relaxation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.units import GPa, _amu
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)

from amtoolkit.analysis.energy import EnergyResult, density, energy, pressure, relax_structure
from amtoolkit.errors import StructureError
from amtoolkit.potentials import get_calculator
from tests.known_values import SW_DIAMOND_ENERGY

SW_LATTICE_CONSTANT = 5.431  # Å, SW 1985 diamond Si
ENERGY_TOL = 1e-4  # eV/atom
DENSITY_TOL = 1e-3  # g/cm^3
PRESSURE_TOL = 0.05  # GPa, residual pressure after a fmax=0.01 relaxation
FD_PRESSURE_TOL = 1e-3  # relative, pressure against -dE/dV by central differences


def sw_calculator(engine: str):
    if engine == "lammps":
        return get_calculator("sw-si")
    return Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))


@pytest.fixture(params=["lammps", "matscipy"])
def sw(request):
    """SW Si on LAMMPS (the production path) and matscipy's independent Python version."""
    return sw_calculator(request.param)


def _scaled(atoms: Atoms, factor: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell * factor, scale_atoms=True)
    return out


def test_diamond_known_answer(diamond_si, sw):
    result = energy(diamond_si, sw)
    assert isinstance(result, EnergyResult)
    assert result.relaxed
    assert result.energy_per_atom.shape == (1,)
    assert result.energy_per_atom[0] == pytest.approx(SW_DIAMOND_ENERGY, abs=ENERGY_TOL)
    expected_density = 8 * 28.0855 * _amu * 1e3 / (SW_LATTICE_CONSTANT * 1e-8) ** 3
    assert result.density[0] == pytest.approx(expected_density, abs=DENSITY_TOL)
    assert abs(result.pressure[0]) < PRESSURE_TOL
    assert result.n_atoms.tolist() == [8]


def test_relaxation_removes_strain_and_pressure(diamond_si, sw):
    compressed = _scaled(diamond_si, 0.97)
    rattled = diamond_si.copy()
    rattled.rattle(0.05, seed=1)
    frozen = energy([compressed, rattled], sw, relax=False)
    relaxed = energy([compressed, rattled], sw, relax=True)
    assert not frozen.relaxed
    # compression costs energy and pushes outwards (positive pressure)
    assert frozen.energy_per_atom[0] > SW_DIAMOND_ENERGY + 0.01
    assert frozen.pressure[0] > 1.0
    assert frozen.density[0] > relaxed.density[0]
    np.testing.assert_allclose(relaxed.energy_per_atom, SW_DIAMOND_ENERGY, atol=ENERGY_TOL)
    np.testing.assert_allclose(relaxed.pressure, 0.0, atol=PRESSURE_TOL)


def test_pressure_matches_volume_derivative_of_energy(diamond_si, sw):
    atoms = _scaled(diamond_si, 0.98)
    atoms.rattle(0.02, seed=3)  # non-equilibrium positions; pressure is still -dE/dV
    step = 1e-4
    plus, minus = _scaled(atoms, 1 + step), _scaled(atoms, 1 - step)
    energies = []
    for a in (plus, minus):
        a.calc = sw
        energies.append(a.get_potential_energy())
    dE_dV = (energies[0] - energies[1]) / (plus.get_volume() - minus.get_volume())
    atoms.calc = sw
    assert pressure(atoms) == pytest.approx(-dE_dV / GPa, rel=FD_PRESSURE_TOL)


def test_density_of_mixed_cell():
    atoms = Atoms("SiO2", positions=np.eye(3), cell=[5.0, 6.0, 7.0], pbc=True)
    grams = (28.0855 + 2 * 15.999) * _amu * 1e3
    assert density(atoms) == pytest.approx(grams / (5.0 * 6.0 * 7.0 * 1e-24), rel=1e-4)


def test_ghost_atoms_are_ignored(diamond_si, sw):
    with_ghosts = diamond_si + Atoms("X2", positions=[[1.0, 1.0, 1.0], [2.0, 3.0, 4.0]])
    plain = energy(diamond_si, sw, relax=False)
    ghosted = energy(with_ghosts, sw, relax=False)
    np.testing.assert_allclose(ghosted.energy_per_atom, plain.energy_per_atom, rtol=1e-12)
    np.testing.assert_allclose(ghosted.density, plain.density, rtol=1e-12)
    assert ghosted.n_atoms.tolist() == [8]


def test_set_statistics_and_json(diamond_si, sw):
    frames = [diamond_si, _scaled(diamond_si, 1.02), _scaled(diamond_si, 0.99)]
    result = energy(frames, sw, relax=False)
    assert result.energy_per_atom.shape == result.density.shape == result.pressure.shape == (3,)
    assert result.mean_energy == pytest.approx(np.mean(result.energy_per_atom))
    assert result.std_density == pytest.approx(np.std(result.density))
    assert result.std_density > 0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["relaxed"] is False
    assert data["mean_pressure"] == pytest.approx(result.mean_pressure)
    assert len(data["energy_per_atom"]) == 3


def test_relaxations_short_of_fmax_are_counted_and_noted(monkeypatch, diamond_si):
    from amtoolkit.analysis import energy as energy_module
    from amtoolkit.analysis.report import summary_rows

    real = energy_module.relax_structure

    def short_for_16_atoms(atoms, calculator, **options):
        relaxed = real(atoms, calculator, **options)
        relaxed.info["relax_converged"] = len(atoms) != 16
        return relaxed

    monkeypatch.setattr(energy_module, "relax_structure", short_for_16_atoms)
    frames = [diamond_si, diamond_si.repeat((2, 1, 1)), diamond_si]
    calc = get_calculator("sw-si")
    result = energy(frames, calc)
    assert result.unconverged.tolist() == [0, 1, 0]
    assert json.loads(json.dumps(result.to_dict()))["unconverged"] == [0, 1, 0]
    notes = [v for k, v in summary_rows("energy", result, None) if k == "note"]
    assert len(notes) == 1 and notes[0].startswith("1 of 3 structures")
    unrelaxed = energy(frames, calc, relax=False)  # nothing relaxed: nothing short
    assert unrelaxed.unconverged.tolist() == [0, 0, 0]
    assert not [k for k, _ in summary_rows("energy", unrelaxed, None) if k == "note"]


def test_relax_structure_returns_relaxed_copy(diamond_si, sw):
    start = _scaled(diamond_si, 1.03)
    before = start.positions.copy()
    relaxed = relax_structure(start, sw, fmax=0.01, cell=True)
    np.testing.assert_array_equal(start.positions, before)
    assert relaxed.cell[0, 0] == pytest.approx(SW_LATTICE_CONSTANT, abs=2e-3)
    fixed_cell = relax_structure(start, sw, fmax=0.01, cell=False)
    np.testing.assert_allclose(fixed_cell.cell.array, start.cell.array)


def test_bad_input_is_named(diamond_si, sw):
    molecule = diamond_si.copy()
    molecule.pbc = False
    with pytest.raises(StructureError, match="periodic"):
        energy(molecule, sw)
    with pytest.raises(StructureError, match="no structures"):
        energy([], sw)


def test_the_energy_plot_shows_every_structure_of_a_narrow_skewed_set():
    """Densities within 0.04 g/cm3 get a fixed-width axis; it must hold every point,
    also when one lies far from the others (4 generated a-Si cells, one denser)."""
    import matplotlib

    matplotlib.use("Agg")
    dens = np.array([2.550, 2.551, 2.552, 2.5867])
    result = EnergyResult(
        energy_per_atom=np.array([-4.07, -4.06, -4.07, -4.0487]),
        density=dens,
        pressure=np.zeros(4),
        relaxed=True,
        n_atoms=np.full(4, 216),
    )
    low, high = result.plot().get_xlim()
    assert low < dens.min() and dens.max() < high
