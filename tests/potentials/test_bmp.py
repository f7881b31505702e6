"""BMP-shrm: LAMMPS set-up, independent numpy evaluation, finite differences, relaxed silica."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.neighborlist import neighbor_list

from amtoolkit.potentials import get_calculator, relax
from amtoolkit.potentials.bmp import ELEMENTS, lammps_commands, parameters
from tests.potentials import bmp_reference as ref
from tests.potentials.conftest import beta_cristobalite

EXACT_TOL = 1e-8  # eV/atom: same formula, double precision
# LAMMPS pair_style pedone shifts by [Morse(rc) - B/rc^12] instead of [Morse(rc) + B/rc^12]
# (sign of the r^-12 term in its offset), so each pair inside 7 Å differs by 2 B / rc^12.
PEDONE_OFFSET_PER_PAIR = 2 * 100.0 / 7.0**12  # eV, largest B (O-O)
ERFC_TOL = 1e-5  # eV/atom: exact erfc vs the A&S 7.1.26 polynomial LAMMPS coul/dsf uses
FD_STEP_FORCE = 1e-4  # Å
FD_STEP_STRAIN = 1e-5
# coul/dsf differentiates erfc exactly but evaluates it with A&S 7.1.26, so forces and
# energy derivatives differ by up to ~4e-5 eV/Å on these cells.
FD_FORCE_TOL = 2e-4  # eV/Å
FD_STRESS_TOL = 2e-5  # eV/Å^3
FORMAL_VALENCE = {
    "O": -2,
    "Si": 4,
    "P": 5,
    "Al": 3,
    "Ti": 4,
    "Li": 1,
    "K": 1,
    "Be": 2,
    "Ca": 2,
    "Ba": 2,
    "Zn": 2,
}


def multicomponent_cell(seed: int = 11) -> Atoms:
    """A random 36-atom periodic cell holding every BMP element (min distance 1.7 Å)."""
    symbols = (
        ["Si"] * 5 + ["P"] * 2 + ["Al", "Ti", "Li", "Li", "K", "Be", "Ca", "Ba", "Zn"] + ["O"] * 20
    )
    rng = np.random.default_rng(seed)
    cell = np.array([[8.6, 0.0, 0.0], [0.9, 8.4, 0.0], [-0.6, 0.7, 8.8]])
    atoms = Atoms(cell=cell, pbc=True)
    for symbol in symbols:
        while True:
            trial = atoms + Atoms(symbol, positions=[rng.random(3) @ cell])
            if len(trial) == 1 or neighbor_list("i", trial, 1.7).size == 0:
                atoms = trial
                break
    return atoms


def o_former_distances(atoms: Atoms) -> np.ndarray:
    i, j, d = neighbor_list("ijd", atoms, 4.0)
    symbols = np.array(atoms.get_chemical_symbols())
    return d[(symbols[i] == "O") & np.isin(symbols[j], ("Si", "P"))]


def pairs_within(atoms: Atoms, cutoff: float) -> int:
    return neighbor_list("i", atoms, cutoff).size // 2


# ------------------------------------------------------------------------ set-up


def test_charges_are_six_tenths_of_formal():
    charges = parameters().charges
    assert set(charges) == set(ELEMENTS) == set(FORMAL_VALENCE)
    for element, valence in FORMAL_VALENCE.items():
        assert charges[element] == pytest.approx(0.6 * valence)


def test_every_cation_has_an_o_pair_and_formers_repel():
    params = parameters()
    assert set(params.morse) == set(ELEMENTS)  # every X-O pair plus O-O
    assert {("Si", "Si"), ("P", "P"), ("P", "Si"), ("Al", "Si"), ("Al", "Al")} <= set(
        params.buckingham
    )
    for d, a, r0, b in params.morse.values():
        assert d >= 0 and a > 0 and r0 > 0 and b > 0


def test_commands_map_types_by_elements_present():
    # types by atomic number: Li=1, O=2, Si=3, Ca=4
    commands = lammps_commands(["Li", "O", "Si", "Ca"], three_body_file="F")
    assert (
        commands[0]
        == "pair_style hybrid/overlay coul/dsf 0.2 12.0 pedone 7.0 buck 7.0 nb3b/screened"
    )
    assert "pair_coeff 1 2 pedone 0.041556 1.758181 2.55136 1.0" in commands
    assert "pair_coeff 2 2 pedone 0.042395 1.379316 3.618701 100.0" in commands
    assert "pair_coeff 2 4 pedone 0.030211 2.241334 2.923245 5.0" in commands
    assert "pair_coeff 3 3 buck 7.093669 0.975598 0.0" in commands
    assert "pair_coeff * * nb3b/screened F NULL O Si NULL" in commands
    assert "set type 4 charge 1.2" in commands and "set type 2 charge -1.2" in commands
    # no former pair, no Si/P: neither buck nor the three-body style is declared
    lithia = lammps_commands(["Li", "O"])
    assert lithia[0] == "pair_style hybrid/overlay coul/dsf 0.2 12.0 pedone 7.0"
    assert not any("buck" in c or "nb3b" in c for c in lithia)
    assert not any("shift" in c for c in lammps_commands(["O", "Si"], shift=False))


# ------------------------------------------------------------- numpy reference


@pytest.mark.filterwarnings("ignore:the cell .* is not neutral:UserWarning")  # every element
@pytest.mark.parametrize(
    "make", [lambda: beta_cristobalite(), multicomponent_cell], ids=["silica", "all-elements"]
)
def test_energy_matches_independent_numpy_evaluation(make):
    atoms = make()
    atoms.rattle(0.05, seed=2)
    n = len(atoms)
    atoms.calc = get_calculator("bmp-glass", shift=False)
    assert atoms.get_potential_energy() / n == pytest.approx(
        ref.bmp_energy(atoms, shift=False) / n, abs=EXACT_TOL
    )
    # exact erfc instead of the polynomial: agreement to the polynomial's accuracy
    exact = ref.bmp_energy(atoms, shift=False, exact_erfc=True)
    assert atoms.get_potential_energy() / n == pytest.approx(exact / n, abs=ERFC_TOL)
    assert ref.three_body(atoms) > 0.1  # the three-body term is really exercised

    shifted = atoms.copy()
    shifted.calc = get_calculator("bmp-glass")
    allowance = pairs_within(atoms, 7.0) * PEDONE_OFFSET_PER_PAIR
    assert shifted.get_potential_energy() == pytest.approx(
        ref.bmp_energy(atoms), abs=allowance + 1e-9
    )

    two_body = atoms.copy()
    two_body.calc = get_calculator(
        "bmp-glass", shift=False, three_body=False, coulomb_cutoff=9.0, alpha=0.25
    )
    expected = ref.bmp_energy(
        atoms, shift=False, with_three_body=False, coulomb_cutoff=9.0, alpha=0.25
    )
    assert two_body.get_potential_energy() / n == pytest.approx(expected / n, abs=EXACT_TOL)


@pytest.mark.filterwarnings("ignore:the cell .* is not neutral:UserWarning")  # every element
def test_forces_and_stress_match_finite_differences_all_elements():
    atoms = multicomponent_cell(seed=5)
    # a T-O distance within 1e-3 Å of the 3.3 Å three-body cutoff would put a jump inside
    # the finite-difference stencil (nb3b/screened is not smooth there)
    assert np.min(np.abs(o_former_distances(atoms) - ref.THREE_BODY_CUTOFF)) > 1e-3
    atoms.calc = get_calculator("bmp-glass")
    forces = atoms.get_forces()
    np.testing.assert_allclose(
        forces, calculate_numerical_forces(atoms, eps=FD_STEP_FORCE), atol=FD_FORCE_TOL
    )
    np.testing.assert_allclose(
        atoms.get_stress(),
        calculate_numerical_stress(atoms, eps=FD_STEP_STRAIN),
        atol=FD_STRESS_TOL,
    )
    assert np.abs(forces).max() > 1.0


# ---------------------------------------------------------------- relaxed glass


def si_o_bond_lengths(atoms: Atoms, cutoff: float = 2.0) -> np.ndarray:
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    return d[(atoms.numbers[i] == 14) & (atoms.numbers[j] == 8)]


def density(atoms: Atoms) -> float:
    return atoms.get_masses().sum() / atoms.get_volume() * 1.66053907  # g/cm^3


def test_relaxed_silica_has_sane_bonds_and_density(cristobalite):
    relaxed = relax(cristobalite, "bmp-glass", fmax=0.01)
    assert relaxed.info["relax_converged"]
    bonds = si_o_bond_lengths(relaxed)
    assert len(bonds) == 4 * 8  # every Si four-fold
    assert 1.58 < bonds.mean() < 1.66  # Å; experiment ~1.61
    assert 2.0 < density(relaxed) < 2.5  # g/cm^3; beta-cristobalite 2.2, glass 2.2
    assert np.abs(relaxed.get_stress()).max() < 1e-3


def test_relaxed_lithium_silicate(cristobalite):
    a = cristobalite.cell[0, 0]
    extra = Atoms(
        "Li2O", positions=np.array([[0.5, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.0, 0.5]]) * a
    )
    li_silicate = cristobalite + extra  # Li2O . 8 SiO2, charge neutral
    assert sum(
        parameters().charges[s] for s in li_silicate.get_chemical_symbols()
    ) == pytest.approx(0.0)
    relaxed = relax(li_silicate, "bmp-glass", fmax=0.01)
    assert relaxed.info["relax_converged"]
    assert 1.55 < si_o_bond_lengths(relaxed).mean() < 1.68
    assert 2.0 < density(relaxed) < 2.8


def test_a_charged_cell_warns_and_a_neutral_one_does_not(recwarn):
    neutral = beta_cristobalite()
    neutral.calc = get_calculator("bmp-glass")
    neutral.get_potential_energy()
    assert not [w for w in recwarn if "not neutral" in str(w.message)]
    charged = multicomponent_cell()
    charged.calc = get_calculator("bmp-glass")
    with pytest.warns(UserWarning, match=r"is not neutral under 'bmp-glass': its charges sum to"):
        charged.get_potential_energy()
