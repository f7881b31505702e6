"""LammpsCalculator: reference implementations, finite differences, frames, caching, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)
from scipy.spatial.transform import Rotation

from amtoolkit.errors import CoverageError, StructureError
from amtoolkit.potentials import (
    POTENTIALS,
    LammpsCalculator,
    check_elements,
    get_calculator,
    pair_commands,
)
from amtoolkit.potentials._lammps import lammps_frame, rotate_stress
from tests.known_values import SW_DIAMOND_ENERGY

REFERENCE_TOL = 1e-8  # eV, eV/Å, eV/Å^3: LAMMPS vs matscipy SW (same maths, double precision)
FRAME_TOL = 1e-9  # eV/atom, eV/Å: same structure in another frame or cell representation
FD_STEP_FORCE = 1e-4  # Å
FD_STEP_STRAIN = 1e-5
FD_FORCE_TOL = 1e-4  # eV/Å; central differences with h = 1e-4 Å
FD_STRESS_TOL = 1e-5  # eV/Å^3


def matscipy_sw() -> Manybody:
    return Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))


def primitive_si_supercell() -> Atoms:
    """A triclinic (fcc primitive) 2x2x2 Si supercell, rattled: 16 atoms."""
    atoms = bulk("Si", "diamond", a=5.431).repeat(2)
    atoms.rattle(0.04, seed=7)
    return atoms


# ---------------------------------------------------------------- registry / coverage


def test_registry_lists_the_three_potentials_with_json_specs():
    assert set(POTENTIALS) == {"sw-si", "tersoff-sio2", "bmp-glass"}
    assert POTENTIALS["sw-si"].elements == ("Si",)
    assert set(POTENTIALS["tersoff-sio2"].elements) == {"Si", "O"}
    assert set(POTENTIALS["bmp-glass"].elements) == {
        "Si",
        "P",
        "Al",
        "Li",
        "Be",
        "K",
        "Ca",
        "Ti",
        "Ba",
        "Zn",
        "O",
    }
    for spec in POTENTIALS.values():
        data = json.loads(json.dumps(spec.to_dict()))
        assert data["name"] == spec.name and data["reference"]


def test_uncovered_element_raises_coverage_error_naming_element_and_potential():
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.calc = get_calculator("sw-si")
    with pytest.raises(
        CoverageError, match=r"element 'Na' is not covered by potential 'sw-si' \(covers: Si\)"
    ):
        atoms.get_potential_energy()
    assert issubclass(CoverageError, ValueError)
    with pytest.raises(CoverageError, match="'Na'.*'bmp-glass'"):
        check_elements("bmp-glass", ["Si", "O", "Na"])
    check_elements("tersoff-sio2", ["O", "Si"])  # covered: no error


def test_ghost_atoms_are_an_error(diamond_si):
    atoms = diamond_si + Atoms("X", positions=[[1.0, 1.0, 1.0]])
    atoms.calc = get_calculator("sw-si")
    with pytest.raises(CoverageError, match="remove ghost atoms first"):
        atoms.get_forces()


def test_unknown_name_and_option():
    with pytest.raises(KeyError, match="unknown potential 'lj'.*sw-si"):
        get_calculator("lj")
    with pytest.raises(TypeError, match="unknown option.*'cutoff'.*'sw-si'"):
        get_calculator("sw-si", cutoff=3.0)
    with pytest.raises(TypeError, match="allowed: alpha"):
        get_calculator("bmp-glass", kappa=1.0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"coulomb_cutoff": -1.0}, ValueError, "coulomb_cutoff must be a positive number, got -1"),
        ({"alpha": float("nan")}, ValueError, "alpha must be a positive number"),
        ({"coulomb_cutoff": "x"}, TypeError, "coulomb_cutoff must be a number, got 'x'"),
        ({"three_body": "no"}, TypeError, "three_body must be true or false, got 'no'"),
    ],
)
def test_option_values_are_checked_when_the_calculator_is_made(options, error, message):
    with pytest.raises(error, match=message):
        get_calculator("bmp-glass", **options)


def test_mixed_periodicity_is_rejected(diamond_si):
    atoms = diamond_si.copy()
    atoms.pbc = [True, True, False]
    atoms.calc = get_calculator("sw-si")
    with pytest.raises(StructureError, match="mixed periodicity"):
        atoms.get_potential_energy()


# ------------------------------------------------------------ reference implementation


@pytest.mark.parametrize("make", [lambda: None, primitive_si_supercell], ids=["cubic", "triclinic"])
def test_sw_matches_matscipy(make, rattled_si):
    atoms = make() or rattled_si
    atoms.calc = get_calculator("sw-si")
    reference = atoms.copy()
    reference.calc = matscipy_sw()
    assert atoms.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), abs=REFERENCE_TOL
    )
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=REFERENCE_TOL)
    np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=REFERENCE_TOL)
    assert np.abs(atoms.get_stress()).max() > 1e-3  # the check is not trivially zero


def test_per_atom_energies_sum_to_total(cristobalite):
    for name in ("tersoff-sio2", "bmp-glass"):
        atoms = cristobalite.copy()
        atoms.calc = get_calculator(name)
        energies = atoms.get_potential_energies()
        assert energies.shape == (len(atoms),)
        assert energies.sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize(
    ("name", "structure"),
    [("sw-si", "rattled_si"), ("tersoff-sio2", "cristobalite"), ("bmp-glass", "cristobalite")],
)
def test_forces_and_stress_match_finite_differences(name, structure, request):
    atoms = request.getfixturevalue(structure).copy()
    atoms.calc = get_calculator(name)
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    assert np.abs(forces).max() > 0.1  # rattled: a non-trivial check
    numerical_forces = calculate_numerical_forces(atoms, eps=FD_STEP_FORCE)
    numerical_stress = calculate_numerical_stress(atoms, eps=FD_STEP_STRAIN)
    np.testing.assert_allclose(forces, numerical_forces, atol=FD_FORCE_TOL)
    np.testing.assert_allclose(stress, numerical_stress, atol=FD_STRESS_TOL)


def test_cluster_forces_and_no_stress():
    cluster = bulk("Si", "diamond", a=5.431, cubic=True)
    cluster.pbc = False
    cluster.center(vacuum=5.0)
    cluster.rattle(0.05, seed=3)
    cluster.calc = get_calculator("sw-si")
    reference = cluster.copy()
    reference.calc = matscipy_sw()
    assert cluster.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), abs=REFERENCE_TOL
    )
    np.testing.assert_allclose(cluster.get_forces(), reference.get_forces(), atol=REFERENCE_TOL)
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


# ------------------------------------------------------------------- frames and cells


def test_lammps_frame_is_lower_triangular_reduced_and_orthogonal():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cell = rng.normal(size=(3, 3)) * 4.0 + np.eye(3) * 6.0
        box, rotation = lammps_frame(cell)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.all(np.diag(box) > 0) and np.all(box[np.triu_indices(3, 1)] == 0.0)
        assert abs(box[1, 0]) <= box[0, 0] / 2 + 1e-12
        assert abs(box[2, 0]) <= box[0, 0] / 2 + 1e-12
        assert abs(box[2, 1]) <= box[1, 1] / 2 + 1e-12
        # same lattice: integer, unimodular change of basis
        change = np.linalg.solve((cell @ rotation).T, box.T).T
        np.testing.assert_allclose(change, np.round(change), atol=1e-9)
        assert abs(np.linalg.det(np.round(change))) == pytest.approx(1.0)


def test_rotate_stress_round_trip():
    rotation = Rotation.from_euler("zyx", [0.4, -0.2, 1.3]).as_matrix()
    sigma = np.array([[1.0, 0.2, -0.3], [0.2, -0.5, 0.7], [-0.3, 0.7, 2.0]])
    rotated = rotation.T @ sigma @ rotation  # into the frame v -> v @ rotation
    voigt = np.array(
        [rotated[0, 0], rotated[1, 1], rotated[2, 2], rotated[1, 2], rotated[0, 2], rotated[0, 1]]
    )
    back = rotate_stress(voigt, rotation)
    np.testing.assert_allclose(back, [1.0, -0.5, 2.0, 0.7, -0.3, 0.2], atol=1e-14)


def test_triclinic_cell_equivalent_representations_agree():
    atoms = primitive_si_supercell()
    atoms.calc = get_calculator("sw-si")
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    # 1. rigidly rotated copy: same energy, rotated forces and stress
    rotation = Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    rotated.calc = get_calculator("sw-si")
    assert rotated.get_potential_energy() == pytest.approx(energy, abs=FRAME_TOL)
    np.testing.assert_allclose(rotated.get_forces(), forces @ rotation.T, atol=FRAME_TOL)
    s = rotated.get_stress(voigt=False)
    np.testing.assert_allclose(
        s, rotation @ atoms.get_stress(voigt=False) @ rotation.T, atol=FRAME_TOL
    )
    # 2. same lattice, strongly skewed basis (b -> b + 2a, c -> c - a + b), atoms unwrapped
    skewed = atoms.copy()
    a, b, c = atoms.cell.array
    skewed.set_cell([a, b + 2 * a, c - a + b], scale_atoms=False)
    skewed.positions += 3 * a
    skewed.calc = get_calculator("sw-si")
    assert skewed.get_potential_energy() == pytest.approx(energy, abs=FRAME_TOL)
    np.testing.assert_allclose(skewed.get_forces(), forces, atol=FRAME_TOL)
    np.testing.assert_allclose(skewed.get_stress(), stress, atol=FRAME_TOL)
    # 3. left-handed cell (swap two cell vectors)
    mirrored = atoms.copy()
    mirrored.set_cell([b, a, c], scale_atoms=False)
    mirrored.calc = get_calculator("sw-si")
    assert mirrored.get_potential_energy() == pytest.approx(energy, abs=FRAME_TOL)
    np.testing.assert_allclose(mirrored.get_forces(), forces, atol=FRAME_TOL)


# -------------------------------------------------------------------------- caching


def test_instance_is_reused_and_rebuilt_only_when_needed(rattled_si, monkeypatch):
    calc = get_calculator("sw-si")
    builds = []
    original = LammpsCalculator._build
    monkeypatch.setattr(
        LammpsCalculator, "_build", lambda self, *a: builds.append(1) or original(self, *a)
    )
    atoms = rattled_si.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    instance = calc.lammps
    atoms.positions[0] += 0.1
    atoms.get_forces()
    atoms.set_cell(atoms.cell * 1.02, scale_atoms=True)
    strained = atoms.get_stress()
    e_strained = atoms.get_potential_energy()
    assert len(builds) == 1 and calc.lammps is instance
    fresh = atoms.copy()
    fresh.calc = matscipy_sw()
    np.testing.assert_allclose(strained, fresh.get_stress(), atol=REFERENCE_TOL)
    bigger = atoms.repeat((2, 1, 1))  # different number of atoms: rebuild, same instance
    bigger.calc = calc
    assert bigger.get_potential_energy() == pytest.approx(2 * e_strained, abs=1e-9)
    assert len(builds) == 2 and calc.lammps is instance


def test_changing_species_rebuilds_types(cristobalite):
    calc = get_calculator("tersoff-sio2")
    pure = cristobalite.copy()
    pure.numbers[:] = 14  # all Si: one atom type
    pure.calc = calc
    e_pure = pure.get_potential_energy()
    both = cristobalite.copy()
    both.calc = calc
    e_both = both.get_potential_energy()
    fresh = cristobalite.copy()
    fresh.calc = get_calculator("tersoff-sio2")
    assert e_both == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
    assert abs(e_both - e_pure) > 1.0


def test_set_parameters_rebuilds(cristobalite):
    atoms = cristobalite.copy()
    atoms.calc = get_calculator("bmp-glass")
    e_full = atoms.get_potential_energy()
    atoms.calc.set(three_body=False)
    e_two_body = atoms.get_potential_energy()
    fresh = cristobalite.copy()
    fresh.calc = get_calculator("bmp-glass", three_body=False)
    assert e_two_body == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
    assert e_full > e_two_body  # the angular penalty is positive for a rattled network


def test_bad_structures_raise_structure_error(diamond_si):
    broken = diamond_si.copy()
    broken.positions[3, 1] = np.nan
    broken.calc = get_calculator("sw-si")
    with pytest.raises(StructureError, match="non-finite position"):
        broken.get_potential_energy()
    flat = diamond_si.copy()
    flat.cell[2] = 0.0
    flat.calc = get_calculator("sw-si")
    with pytest.raises(StructureError, match="zero volume"):
        flat.get_potential_energy()
    overlap = diamond_si.copy()
    overlap.positions[5] = overlap.positions[2]  # LAMMPS: "Non-numeric atom coords"
    overlap.calc = broken.calc
    with pytest.raises(StructureError, match="atoms 2 and 5 are 0 Å apart .*: overlapping"):
        overlap.get_potential_energy()
    near = diamond_si.copy()
    near.positions[5] = near.positions[2] + [1e-3, 0.0, 0.0]  # LAMMPS: huge but finite
    near.calc = broken.calc
    with pytest.raises(StructureError, match=r"atoms 2 and 5 are 0.001 Å apart \(under 0.1 Å\)"):
        near.get_potential_energy()
    # the calculator recovers after an error
    good = diamond_si.copy()
    good.calc = broken.calc
    assert good.get_potential_energy() / len(good) == pytest.approx(SW_DIAMOND_ENERGY, abs=1e-4)


def test_pair_commands_define_the_named_potential_for_the_given_types():
    lines = pair_commands("tersoff-sio2", ["O", "Si"])
    assert any(line.startswith("pair_style tersoff") for line in lines)
    coeff = next(line for line in lines if line.startswith("pair_coeff"))
    assert coeff.split()[-2:] == ["O", "Si"]  # type order decides the element mapping
    with pytest.raises(CoverageError, match="'Na'.*'sw-si'"):
        pair_commands("sw-si", ["Na"])
