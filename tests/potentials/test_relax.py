"""relax() and run_md(): known answers, engine agreement, reproducibility, conservation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read
from ase.neighborlist import neighbor_list
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)

from amtoolkit.errors import StructureError
from amtoolkit.potentials import get_calculator, relax, run_md
from tests.known_values import SW_DIAMOND_ENERGY, SW_LATTICE

FMAX = 0.01  # eV/Å
LATTICE_TOL = 2e-3  # Å
ENGINE_TOL = 1e-4  # eV/atom between LAMMPS and ASE relaxations of the same start
NVE_DRIFT_TOL = 2e-3  # eV/atom over 200 steps of 1 fs at 600 K


@pytest.fixture
def strained_si():
    """64-atom diamond Si, 2% expanded and rattled."""
    atoms = bulk("Si", "diamond", a=SW_LATTICE * 1.02, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    return atoms


def thermalize(atoms, temperature: float, seed: int) -> None:
    """Maxwell-Boltzmann momenta at `temperature` (K) with zero total momentum."""
    rng = np.random.default_rng(seed)
    masses = atoms.get_masses()[:, None]
    momenta = rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * temperature)
    atoms.set_momenta(momenta - masses * momenta.sum(axis=0) / masses.sum())


def cell_force_bound(atoms) -> float:
    """|stress| bound implied by fmax on FrechetCellFilter's cell forces (virial / n)."""
    return FMAX * len(atoms) / atoms.get_volume()


# --------------------------------------------------------------------------- relax


def test_relax_sw_reaches_the_diamond_minimum(strained_si):
    start = strained_si.copy()
    relaxed = relax(strained_si, "sw-si", fmax=FMAX)
    assert relaxed.info["relax_converged"] and relaxed.info["relax_method"] == "lammps"
    assert np.sqrt((relaxed.get_forces() ** 2).sum(axis=1)).max() <= FMAX
    assert np.abs(relaxed.get_stress()).max() <= cell_force_bound(relaxed)
    assert relaxed.get_potential_energy() / len(relaxed) == pytest.approx(
        SW_DIAMOND_ENERGY, abs=1e-5
    )
    lattice = np.cbrt(relaxed.get_volume()) / 2  # 2x2x2 cubic cells
    assert lattice == pytest.approx(SW_LATTICE, abs=LATTICE_TOL)
    np.testing.assert_array_equal(strained_si.positions, start.positions)  # input untouched
    assert strained_si.calc is None


def test_lammps_and_ase_engines_agree(strained_si):
    by_lammps = relax(strained_si, "sw-si", fmax=FMAX, method="lammps")
    by_ase = relax(strained_si, "sw-si", fmax=FMAX, method="ase")
    assert by_ase.info["relax_method"] == "ase" and by_ase.info["relax_converged"]
    n = len(strained_si)
    assert by_lammps.get_potential_energy() / n == pytest.approx(
        by_ase.get_potential_energy() / n, abs=ENGINE_TOL
    )


@pytest.mark.filterwarnings("ignore:.*nearer than:UserWarning")  # 10 steps: close pairs
def test_a_relaxation_does_not_depend_on_what_the_calculator_relaxed_before():
    """Generated cells sit where a minimisation turns round-off into another minimum:
    relaxing one after another with one calculator (a worker's) must give what a fresh
    calculator gives, exactly, or results would depend on frame order and workers."""
    import torch

    from amtoolkit import Generator

    with torch.random.fork_rng():
        frames = Generator.from_pretrained("a-si").generate(2, steps=10, seed=0, progress=False)
    shared = get_calculator("sw-si")
    in_turn = [relax(a, shared).get_potential_energy() for a in frames]
    fresh = [relax(a, get_calculator("sw-si")).get_potential_energy() for a in frames]
    assert in_turn == fresh


@pytest.mark.filterwarnings("ignore:relax did not reach:RuntimeWarning")
def test_a_stalled_relaxation_hands_back_its_best_point(diamond_si, monkeypatch):
    """A minimiser that stalls further out than it has been (BMP's sharp three-body cutoff
    left a strained quartz cell at 0.0052 eV/Å under fmax 1e-5, against 0.001 under
    1e-3) must hand back the best point it reached, not its last."""
    from ase.optimize import FIRE

    def worse(self, fmax=0.05, steps=100):  # a stall that drifts uphill
        self.optimizable.atoms.positions += 0.05 * np.random.default_rng(0).standard_normal(
            (len(self.optimizable.atoms), 3)
        )
        self.nsteps += steps
        return False

    monkeypatch.setattr(FIRE, "run", worse)
    start = diamond_si.copy()
    start.rattle(0.02, seed=3)
    start.calc = get_calculator("sw-si")
    before = np.linalg.norm(start.get_forces(), axis=1).max()
    out = relax(start, "sw-si", fmax=1e-6, cell=False, method="ase", steps=50)
    assert np.linalg.norm(out.get_forces(), axis=1).max() == pytest.approx(before)


def test_relax_with_any_ase_calculator(diamond_si):
    atoms = diamond_si.copy()
    atoms.set_cell(atoms.cell * 0.99, scale_atoms=True)
    atoms.rattle(0.03, seed=2)
    relaxed = relax(atoms, Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si)), fmax=FMAX)
    assert relaxed.info["relax_method"] == "ase" and relaxed.info["relax_converged"]
    assert relaxed.get_potential_energy() / 8 == pytest.approx(SW_DIAMOND_ENERGY, abs=1e-5)


def test_relax_positions_only_keeps_cell(strained_si):
    relaxed = relax(strained_si, get_calculator("sw-si"), fmax=FMAX, cell=False)
    np.testing.assert_array_equal(relaxed.cell.array, strained_si.cell.array)
    assert np.sqrt((relaxed.get_forces() ** 2).sum(axis=1)).max() <= FMAX
    assert np.all(relaxed.get_stress()[:3] > 0.01)  # still under tension: cell was not relaxed


def test_relax_to_target_pressure(strained_si):
    pressure = 5.0  # GPa
    at_zero = relax(strained_si, "sw-si", fmax=FMAX)
    squeezed = relax(strained_si, "sw-si", fmax=FMAX, pressure=pressure)
    stress = squeezed.get_stress() / units.GPa
    bound = cell_force_bound(squeezed) / units.GPa
    np.testing.assert_allclose(stress[:3], -pressure, atol=bound)
    np.testing.assert_allclose(stress[3:], 0.0, atol=bound)
    assert squeezed.get_volume() < at_zero.get_volume()


def test_relaxed_tersoff_silica_bond_length(cristobalite):
    relaxed = relax(cristobalite, "tersoff-sio2", fmax=FMAX)
    assert relaxed.info["relax_converged"]
    i, j, d = neighbor_list("ijd", relaxed, 2.0)
    si_o = (relaxed.numbers[i] == 14) & (relaxed.numbers[j] == 8)
    assert np.all(np.bincount(i[si_o], minlength=len(relaxed))[relaxed.numbers == 14] == 4)
    assert d[si_o].mean() == pytest.approx(1.6, abs=0.05)  # Å (Munetoh: 1.61-1.64)


def test_relax_rejects_bad_arguments(diamond_si):
    with pytest.raises(ValueError, match="method must be one of"):
        relax(diamond_si, "sw-si", method="bfgs")
    with pytest.raises(ValueError, match="needs a LammpsCalculator"):
        relax(
            diamond_si,
            Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si)),
            method="lammps",
        )
    with pytest.raises(TypeError, match="name or an ASE Calculator"):
        relax(diamond_si, 42)
    for bad in (-1.0, 0.0, float("nan")):  # -1 reached LAMMPS as "Illegal minimize ..."
        with pytest.raises(ValueError, match="fmax must be a positive force in eV/Å"):
            relax(diamond_si, "sw-si", fmax=bad)


def test_the_box_relaxes_even_when_a_fire_run_spends_its_budget():
    # 216-atom a-Si 3% expanded: the first FIRE uses its 100 steps; the box relaxation
    # must still run (it was skipped, and 200 steps left a-Si unconverged)
    from amtoolkit import examples

    atoms = examples.load("a-si")[0].copy()
    atoms.set_cell(atoms.cell * 1.03, scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    result = relax(atoms, "sw-si", fmax=FMAX, steps=100)
    assert result.info["relax_converged"] and result.info["relax_steps"] > 100
    assert np.abs(result.get_stress()).max() <= cell_force_bound(result) * 1.0001


def test_unconverged_relax_warns(strained_si):
    with pytest.warns(RuntimeWarning, match="did not reach fmax"):
        result = relax(strained_si, "sw-si", fmax=1e-9, steps=3)
    assert not result.info["relax_converged"]


# -------------------------------------------------------------------------- run_md


def test_nvt_is_reproducible_and_seeded(strained_si):
    first = run_md(strained_si, "sw-si", temperature=600.0, steps=100, seed=3)
    again = run_md(strained_si, "sw-si", temperature=600.0, steps=100, seed=3)
    other = run_md(strained_si, "sw-si", temperature=600.0, steps=100, seed=4)
    np.testing.assert_array_equal(first.positions, again.positions)
    np.testing.assert_array_equal(first.get_velocities(), again.get_velocities())
    assert np.abs(first.positions - other.positions).max() > 1e-3
    assert first.info["md_steps"] == 100 and first.info["md_ensemble"] == "nvt"
    assert 100.0 < first.info["md_temperature"] < 1500.0
    assert np.all(first.get_scaled_positions() < 1.0 + 1e-12)  # wrapped
    assert strained_si.get_momenta().max() == 0.0  # input untouched


def test_initial_velocities_follow_temperature(strained_si):
    start = run_md(strained_si, "sw-si", temperature=900.0, steps=0, ensemble="nve", seed=1)
    dof = 3 * len(start)
    # LAMMPS sets T exactly over 3N - 3 degrees of freedom; ASE's temperature counts 3N.
    # LAMMPS' and ASE's k_B and mass units differ at the 1e-6 level.
    assert start.get_temperature() == pytest.approx(900.0 * (dof - 3) / dof, rel=1e-5)
    np.testing.assert_allclose(start.get_momenta().sum(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(start.positions, strained_si.get_positions(wrap=True), atol=1e-9)


def test_nve_conserves_energy_and_keeps_given_velocities(strained_si):
    atoms = strained_si.copy()
    thermalize(atoms, 600.0, seed=0)
    atoms.calc = get_calculator("sw-si")
    e_start = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    end = run_md(atoms, "sw-si", temperature=600.0, steps=200, timestep=1.0, ensemble="nve")
    e_end = end.get_potential_energy() + end.get_kinetic_energy()
    assert abs(e_end - e_start) / len(atoms) < NVE_DRIFT_TOL
    assert end.get_kinetic_energy() != pytest.approx(atoms.get_kinetic_energy())  # it moved


def test_npt_compresses_under_pressure(strained_si):
    squeezed = run_md(
        strained_si, "sw-si", temperature=300.0, steps=300, ensemble="npt", pressure=10.0, seed=0
    )
    assert squeezed.get_volume() < 0.97 * strained_si.get_volume()
    cluster = strained_si.copy()
    cluster.pbc = False
    with pytest.raises(ValueError, match="3D-periodic"):
        run_md(cluster, "sw-si", 300.0, 10, ensemble="npt")


def test_md_with_any_ase_calculator(diamond_si):
    calc = Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    atoms = diamond_si.copy()
    thermalize(atoms, 300.0, seed=1)
    atoms.calc = calc
    e_start = atoms.get_total_energy()
    end = run_md(atoms, calc, temperature=300.0, steps=20, ensemble="nve")
    assert end.get_total_energy() == pytest.approx(e_start, abs=NVE_DRIFT_TOL * len(atoms))
    assert np.abs(end.positions - atoms.get_positions(wrap=True)).max() > 1e-3


TRAJECTORY_TOL = 1e-9  # chunked against one LAMMPS run: round-off only; frame results


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_md_trajectory_frames_are_the_run_and_carry_their_own_results(
    strained_si, tmp_path, ensemble
):
    frames = []
    end = run_md(strained_si, "sw-si", 900.0, 250, ensemble=ensemble, seed=2, trajectory=frames)
    whole = run_md(strained_si, "sw-si", 900.0, 250, ensemble=ensemble, seed=2)
    np.testing.assert_allclose(end.positions, whole.positions, atol=TRAJECTORY_TOL)
    np.testing.assert_allclose(end.cell.array, whole.cell.array, atol=TRAJECTORY_TOL)
    assert [f.info["md_step"] for f in frames] == [0, 100, 200]
    assert [f.info["md_time"] for f in frames] == [0.0, 100.0, 200.0]  # fs
    start = run_md(strained_si, "sw-si", 900.0, 0, ensemble=ensemble, seed=2)
    np.testing.assert_allclose(frames[0].get_velocities(), start.get_velocities(), atol=1e-12)
    calc = get_calculator("sw-si")
    for frame in frames:  # each frame's energy, forces and stress are of its positions
        fresh = frame.copy()
        fresh.calc = calc
        assert frame.get_potential_energy() == pytest.approx(
            fresh.get_potential_energy(), abs=TRAJECTORY_TOL
        )
        np.testing.assert_allclose(frame.get_forces(), fresh.get_forces(), atol=TRAJECTORY_TOL)
        np.testing.assert_allclose(frame.get_stress(), fresh.get_stress(), atol=TRAJECTORY_TOL)
    assert frames[1].get_temperature() == pytest.approx(frames[1].info["md_temperature"])
    path = tmp_path / "md.extxyz"
    run_md(strained_si, "sw-si", 900.0, 250, ensemble=ensemble, seed=2, trajectory=path)
    written = read(path, ":")
    assert len(written) == 3
    np.testing.assert_allclose(written[2].positions, frames[2].positions, atol=1e-6)
    assert written[2].get_potential_energy() == pytest.approx(frames[2].get_potential_energy())


def test_md_trajectory_with_any_ase_calculator(diamond_si):
    calc = Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    frames = []
    run_md(diamond_si, calc, 600.0, 25, ensemble="nve", seed=1, trajectory=frames, interval=10)
    assert [f.info["md_step"] for f in frames] == [0, 10, 20]
    fresh = frames[2].copy()
    fresh.calc = calc
    np.testing.assert_allclose(frames[2].get_forces(), fresh.get_forces(), atol=TRAJECTORY_TOL)
    total = [f.get_total_energy() for f in frames]
    assert max(total) - min(total) < NVE_DRIFT_TOL * len(diamond_si)


def test_ctrl_c_stops_a_lammps_run_within_steps_and_the_calculator_runs_in_full_after(
    strained_si,
):
    import os
    import signal
    import threading

    calc = get_calculator("sw-si")
    long_run = 2_000_000  # minutes of MD: only an interrupt inside LAMMPS ends it early
    # Python's own handler, as in a terminal (a job started in the background ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            run_md(strained_si, calc, 600.0, long_run, seed=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 0 < calc.lammps.extract_global("ntimestep") < long_run
    after = run_md(strained_si, calc, 600.0, 200, seed=1)  # the soft stop is undone
    fresh = run_md(strained_si, get_calculator("sw-si"), 600.0, 200, seed=1)
    np.testing.assert_array_equal(after.positions, fresh.positions)


def test_md_rejects_bad_arguments(diamond_si):
    with pytest.raises(ValueError, match="ensemble must be one of"):
        run_md(diamond_si, "sw-si", 300.0, 10, ensemble="nph")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        run_md(diamond_si, "sw-si", 0.0, 10)
    with pytest.raises(ValueError, match="interval must be a positive number of steps"):
        run_md(diamond_si, "sw-si", 300.0, 10, trajectory=[], interval=0)


def test_relax_cluster_moves_positions_only():
    cluster = bulk("Si", "diamond", a=SW_LATTICE, cubic=True)
    cluster.pbc = False
    cluster.center(vacuum=6.0)
    cluster.rattle(0.05, seed=5)
    relaxed = relax(cluster, "sw-si", fmax=FMAX)
    assert relaxed.info["relax_converged"]
    assert np.sqrt((relaxed.get_forces() ** 2).sum(axis=1)).max() <= FMAX
    start = cluster.copy()
    start.calc = get_calculator("sw-si")
    assert relaxed.get_potential_energy() < start.get_potential_energy() - 0.05
    with pytest.raises(PropertyNotImplementedError):
        relaxed.get_stress()  # no stress for a cluster
    np.testing.assert_array_equal(relaxed.cell.array, cluster.cell.array)


@pytest.mark.slow
def test_relax_external_3000_atom_glass_with_tersoff(dm2_sio2_path):
    import ase.io

    glass = ase.io.read(dm2_sio2_path, format="lammps-data", atom_style="charge", units="real")
    assert sorted(set(glass.get_chemical_symbols())) == ["O", "Si"]
    relaxed = relax(glass, "tersoff-sio2", fmax=FMAX)
    assert relaxed.info["relax_converged"]
    i, j, d = neighbor_list("ijd", relaxed, 2.0)
    si_o = (relaxed.numbers[i] == 14) & (relaxed.numbers[j] == 8)
    assert d[si_o].mean() == pytest.approx(1.6, abs=0.05)
    density = relaxed.get_masses().sum() / relaxed.get_volume() * 1.66053907
    assert 1.9 < density < 2.5  # g/cm^3


def test_relax_keeps_the_callers_cell_basis(strained_si):
    a, b, c = strained_si.cell.array
    skewed = strained_si.copy()
    skewed.set_cell([a, b + a, c - b], scale_atoms=False)  # same lattice, tilted basis
    relaxed = relax(skewed, "sw-si", fmax=FMAX)
    assert relaxed.info["relax_converged"]
    # relaxed cell = the same tilted basis, uniformly shrunk by 2% (SW diamond minimum)
    np.testing.assert_allclose(relaxed.cell.array, skewed.cell.array / 1.02, atol=0.02)
    assert relaxed.get_potential_energy() / len(relaxed) == pytest.approx(
        SW_DIAMOND_ENERGY, abs=1e-5
    )


def test_a_failed_lammps_relaxation_does_not_break_the_next_structure(monkeypatch):
    """An error inside a minimisation (e.g. atoms lost) must not leave the shared LAMMPS
    instance broken; overlapping atoms are refused before LAMMPS runs."""
    calc = get_calculator("sw-si")
    good = bulk("Si", "diamond", SW_LATTICE, cubic=True)
    bad = good.copy()
    bad.positions[1] = bad.positions[0] + [0.01, 0.0, 0.0]
    with pytest.raises(StructureError, match="atoms 0 and 1 are 0.01 Å apart"):
        relax(bad, calc, cell=True)
    rattled = good.copy()
    rattled.rattle(0.05, seed=0)
    relax(good, calc, cell=True)  # LAMMPS holds a structure
    lmp = calc.lammps
    run_commands = lmp.commands_list

    def losing_atoms(commands):
        if any(line.startswith("minimize") for line in commands):
            run_commands(["group lost id 1", "delete_atoms group lost"])  # LAMMPS now holds 7
            raise RuntimeError("ERROR: Lost atoms: original 8 current 7")
        return run_commands(commands)

    monkeypatch.setattr(lmp, "commands_list", losing_atoms)
    with pytest.raises(RuntimeError, match="Lost atoms"):
        relax(rattled, calc, cell=True)
    monkeypatch.undo()
    relaxed = relax(good, calc, cell=True)
    relaxed.calc = calc
    assert np.isclose(relaxed.get_potential_energy() / len(relaxed), SW_DIAMOND_ENERGY, atol=1e-3)
    calc.close()


@pytest.mark.parametrize("distance", [0.15, 0.3, 0.45])
def test_lammps_relaxation_pushes_overlapping_atoms_apart(distance):
    """Atoms 0.1-0.5 Å apart (a rattled or generated start) relax: ASE FIRE separates
    them first, where LAMMPS's minimisers alone lose atoms under the huge forces."""
    atoms = bulk("Si", "diamond", SW_LATTICE, cubic=True) * (2, 2, 2)
    bond = atoms.positions[5] - atoms.positions[2]
    atoms.positions[5] = atoms.positions[2] + distance * bond / np.linalg.norm(bond)
    relaxed = relax(atoms, "sw-si", fmax=FMAX)
    assert relaxed.info["relax_converged"] and relaxed.info["relax_method"] == "lammps"
    assert len(neighbor_list("d", relaxed, 2.0)) == 0  # every pair at a bond length or more
    energy = relaxed.get_potential_energy() / len(relaxed)
    assert SW_DIAMOND_ENERGY - 1e-6 < energy < SW_DIAMOND_ENERGY + 0.2  # diamond or a defect


def test_a_stalled_ase_finish_stops_instead_of_spending_every_step():
    """Forces that no step lowers (here constant): the finish gives up after a chunk
    that does not improve the max force by 10 %, not after `steps`."""
    from ase.calculators.calculator import Calculator, all_changes

    from amtoolkit.potentials.relax import ASE_FINISH_CHUNK

    class Stuck(Calculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.full((len(self.atoms), 3), 0.05)}

    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    with pytest.warns(RuntimeWarning, match="did not reach fmax"):
        out = relax(atoms, Stuck(), cell=False, method="ase", steps=20 * ASE_FINISH_CHUNK)
    assert out.info["relax_steps"] == ASE_FINISH_CHUNK
