"""The LAMMPS stage runner: data file, input script, thermo parsing, read-back to ASE."""

from __future__ import annotations

import tempfile
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from amtoolkit.analysis.energy import density
from amtoolkit.potentials import get_calculator
from amtoolkit.workflows.lammps_md import (
    LAMMPS_SEED_MAX,
    MDSettings,
    Stage,
    lammps_input,
    lammps_seed,
    md_stage,
    parse_thermo,
    run_stages,
    scratch_folder,
    write_lammps_data,
)

POSITION_TOL = 1e-9  # Å: a 0-step run must give back the structure it was given
THERMO_REL_TOL = 1e-6  # thermo prints 8 significant digits


def skewed_si() -> Atoms:
    """Diamond Si in a rotated, sheared (triclinic, non-LAMMPS-oriented) cell."""
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat((2, 1, 1))
    atoms.set_cell(atoms.cell.array + [[0, 0, 0], [0.7, 0, 0], [0.3, -0.4, 0]], scale_atoms=True)
    atoms.rotate(35, "z", rotate_cell=True)
    atoms.rotate(20, "x", rotate_cell=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def minimum_image_shift(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Largest |a - b| after removing whole lattice vectors, Å."""
    frac = np.linalg.solve(cell.T, (a - b).T).T
    frac -= np.round(frac)
    return float(np.abs(frac @ cell).max())


def test_data_file_is_read_back_by_ase_as_the_same_crystal(tmp_path):
    atoms = skewed_si()
    path = tmp_path / "start.data"
    write_lammps_data(path, atoms, ["Si"])
    back = ase.io.read(path, format="lammps-data", atom_style="atomic", Z_of_type={1: 14})
    assert len(back) == len(atoms)
    # same lattice up to a rotation: same lengths and angles, same volume
    np.testing.assert_allclose(back.cell.cellpar(), atoms.cell.cellpar(), atol=1e-9)
    # same interatomic distances (rotation-invariant)
    np.testing.assert_allclose(
        back.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-9
    )


def test_zero_step_run_returns_the_input_structure_in_its_own_frame():
    atoms = skewed_si()
    stages = [Stage("velocity", "v", t_start=300.0), md_stage("nvt", "still", 0.0, 300, None, 1.0)]
    run = run_stages(atoms, "sw-si", stages, MDSettings(), seed=1)
    np.testing.assert_allclose(run.atoms.cell.array, atoms.cell.array, atol=POSITION_TOL)
    assert minimum_image_shift(run.atoms.positions, atoms.positions, atoms.cell.array) < (
        POSITION_TOL
    )
    np.testing.assert_array_equal(run.atoms.numbers, atoms.numbers)
    # the parsed thermo energy is the calculator's energy of the same structure
    reference = atoms.copy()
    reference.calc = get_calculator("sw-si")
    [table] = [t for t in run.thermo if t]
    assert table["PotEng"][-1] == pytest.approx(
        reference.get_potential_energy(), rel=THERMO_REL_TOL
    )


def test_scratch_folder_holds_the_run_files(tmp_path, monkeypatch):
    made = []
    temporary = tempfile.TemporaryDirectory

    def recorded(**kwargs):
        folder = temporary(**kwargs)
        made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recorded)
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    with scratch_folder(tmp_path):
        run_stages(atoms, "sw-si", [], MDSettings(), seed=1)
    run_stages(atoms, "sw-si", [], MDSettings(), seed=1)
    assert made[0].parent == tmp_path and made[0].name.startswith("amt-mq-")
    assert made[1].parent == Path(tempfile.gettempdir())  # outside the block: the system's
    assert not list(tmp_path.iterdir())  # removed after the run


def test_thermo_tables_match_the_final_snapshot_and_stage_lengths():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat((2, 2, 2))
    settings = MDSettings(timestep=1.0, thermo_every=50)
    stages = [
        Stage("velocity", "v", t_start=1500.0),
        md_stage("npt", "hot", 0.2, 1500.0, None, settings.timestep),
        md_stage("npt", "ramp", 0.1, 1500.0, 500.0, settings.timestep),
        Stage("minimize", "min", steps=100, fmax=1e-3, relax_cell=True),
    ]
    run = run_stages(atoms, "sw-si", stages, settings, seed=3)
    assert run.md_steps == 300
    velocity, hot, ramp, minimised = run.thermo
    assert velocity == {}
    assert hot["Step"][0] == 0 and hot["Step"][-1] == 200 and len(hot["Step"]) == 5
    assert ramp["Step"][-1] - ramp["Step"][0] == 100
    assert minimised["PotEng"][-1] <= minimised["PotEng"][0]  # a minimiser goes downhill
    final = run.atoms
    assert minimised["Volume"][-1] == pytest.approx(final.get_volume(), rel=THERMO_REL_TOL)
    assert minimised["Density"][-1] == pytest.approx(density(final), rel=THERMO_REL_TOL)
    summary = run.summary()
    assert [s["name"] for s in summary] == ["v", "hot", "ramp", "min"]
    assert summary[1]["final"]["Temp"] == pytest.approx(hot["Temp"][-1])


def test_same_seed_same_trajectory_other_seed_other_trajectory():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat((2, 2, 2))
    stages = [Stage("velocity", "v", t_start=2000.0), md_stage("nvt", "md", 0.1, 2000, None, 1.0)]
    a = run_stages(atoms, "sw-si", stages, MDSettings(), seed=5).atoms
    b = run_stages(atoms, "sw-si", stages, MDSettings(), seed=5).atoms
    c = run_stages(atoms, "sw-si", stages, MDSettings(), seed=6).atoms
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.abs(a.positions - c.positions).max() > 1e-3


def test_input_script_holds_the_protocol(tmp_path):
    settings = MDSettings(timestep=2.0, tdamp=0.1, pdamp=1.0, pressure=0.5, thermo_every=10)
    stages = [
        Stage("velocity", "v1", t_start=3000.0),
        md_stage("npt", "cool", 1.0, 3000.0, 300.0, settings.timestep),
        Stage("velocity", "v2", t_start=300.0),
    ]
    text = lammps_input(tmp_path / "x.data", ["O", "Si"], "tersoff-sio2", stages, settings, 41)
    lines = text.splitlines()
    assert "units metal" in lines and "atom_style atomic" in lines
    assert "timestep 0.002" in lines
    assert "fix amt_md all npt temp 3000.0 300.0 0.1 iso 5000.0 5000.0 1.0" in lines
    assert "run 500" in lines  # 1 ps of 2 fs steps
    assert any(line.startswith("pair_coeff * *") and line.endswith("O Si") for line in lines)
    creates = [line for line in lines if line.startswith("velocity all create")]
    assert [c.split()[4] for c in creates] == [str(lammps_seed(41)), str(lammps_seed(42))]


def test_parse_thermo_splits_runs_and_keeps_a_cut_short_table():
    log = """LAMMPS (22 Jul 2025)
   Step          Temp          PotEng
         0   300           -10.5
        10   290           -10.4
Loop time of 0.01 on 1 procs for 10 steps with 8 atoms
WARNING: something
   Step          Temp          PotEng
        10   290           -10.4
WARNING: Pair style restartinfo set but has no restart support (src/pair.cpp:65)
        20   280           -10.3
        30   270
"""
    first, second = parse_thermo(log)
    np.testing.assert_array_equal(first["Step"], [0, 10])
    # a warning inside a table is skipped; the torn last row is dropped
    np.testing.assert_array_equal(second["PotEng"], [-10.4, -10.3])
    assert parse_thermo("no thermo here") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "nve", "name": "x"}, "stage kind must be one of"),
        ({"kind": "npt", "name": "x", "steps": 10}, "temperatures must be > 0 K"),
        ({"kind": "nvt", "name": "x", "steps": -1, "t_start": 1, "t_stop": 1}, "steps must be"),
        ({"kind": "velocity", "name": "x"}, "velocity temperature"),
        ({"kind": "minimize", "name": "x", "fmax": 0.0}, "fmax must be > 0"),
        ({"kind": "nvt", "name": "x", "steps": 2e9, "t_start": 1, "t_stop": 1}, "more than 1e"),
        ({"kind": "nvt", "name": "x", "steps": 1, "t_start": 1, "t_stop": 2e5}, "above 100000 K"),
        ({"kind": "velocity", "name": "x", "t_start": float("nan")}, "nan K is above"),
    ],
)
def test_bad_stages_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Stage(**kwargs)


def test_lammps_seed_range():
    assert lammps_seed(0) == 1
    assert lammps_seed(LAMMPS_SEED_MAX - 1) == LAMMPS_SEED_MAX
    assert lammps_seed(LAMMPS_SEED_MAX) == 1


def test_non_periodic_and_uncovered_structures_are_refused(tmp_path):
    cluster = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    with pytest.raises(ValueError, match="periodic in all three directions"):
        write_lammps_data(tmp_path / "c.data", cluster, ["Si"])
    water = Atoms("OH2", positions=np.eye(3), cell=[5, 5, 5], pbc=True)
    with pytest.raises(ValueError, match="not covered by potential 'sw-si'"):
        run_stages(water, "sw-si", [], MDSettings(), seed=0)
