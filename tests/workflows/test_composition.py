"""MEG composition sampler, oxide bookkeeping, melt-temperature rule and start structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import atomic_masses, atomic_numbers

from amtoolkit.potentials import POTENTIALS
from amtoolkit.potentials.bmp import parameters
from amtoolkit.workflows.composition import (
    FORMERS,
    MODIFIERS,
    OXIDES,
    composition_label,
    covered_oxides,
    element_counts,
    formula_units,
    melt_temperature,
    mole_fractions,
    parse_composition,
    sample_composition,
)
from amtoolkit.workflows.structures import cube_for_density, diamond_supercell, random_packing

N_DRAWS = 400
SUM_TOL = 1e-12
CHARGE_TOL = 1e-9  # e
G_PER_CM3_PER_AMU_A3 = 1.66053906660


def test_sampled_compositions_obey_the_meg_recipe():
    rng = np.random.default_rng(0)
    former_sets, modifiers_seen, n_modifiers = set(), set(), set()
    for _ in range(N_DRAWS):
        x = sample_composition(rng)
        assert sum(x.values()) == pytest.approx(1.0, abs=SUM_TOL)
        formers = {ox for ox in x if ox in FORMERS}
        modifiers = {ox for ox in x if ox in MODIFIERS}
        assert formers and set(x) == formers | modifiers
        assert 1 <= len(modifiers) <= 4
        assert all(0 < x[m] <= 0.4 for m in modifiers)
        assert sum(x[f] for f in formers) >= 0.3 - SUM_TOL
        former_sets.add(frozenset(formers))
        modifiers_seen |= modifiers
        n_modifiers.add(len(modifiers))
    assert former_sets == {frozenset({"SiO2"}), frozenset({"P2O5"}), frozenset(FORMERS)}
    assert modifiers_seen == set(MODIFIERS)
    assert n_modifiers == {1, 2, 3, 4}


def test_sampler_is_reproducible_and_respects_restrictions():
    a = sample_composition(np.random.default_rng(5))
    b = sample_composition(np.random.default_rng(5))
    assert a == b
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = sample_composition(rng, formers=("SiO2",), modifiers=("Li2O",), max_modifiers=1)
        assert set(x) == {"SiO2", "Li2O"} and x["Li2O"] <= 0.4


@pytest.mark.parametrize("n_atoms", [60, 200, 800])
def test_formula_units_are_charge_neutral_and_near_the_target_size(n_atoms):
    charges = parameters().charges  # BMP: 0.6 x formal
    rng = np.random.default_rng(n_atoms)
    for _ in range(100):
        units = formula_units(sample_composition(rng), n_atoms)
        counts = element_counts(units)
        assert sum(charges[el] * n for el, n in counts.items()) == pytest.approx(0, abs=CHARGE_TOL)
        total = sum(counts.values())
        # rounding moves each oxide by at most half a formula unit (<= 7 atoms) ...
        assert abs(total - n_atoms) <= 3.5 * len(units) + 1
        assert list(counts)[-1] == "O" and all(u >= 1 for u in units.values())


def test_element_counts_and_mole_fractions_known_answer():
    units = {"SiO2": 7, "Li2O": 3}
    assert element_counts(units) == {"Si": 7, "Li": 6, "O": 17}
    assert mole_fractions(units) == {"SiO2": 0.7, "Li2O": 0.3}
    assert composition_label({"SiO2": 0.7, "Li2O": 0.3}) == "SiO2:70,Li2O:30"


@pytest.mark.parametrize(
    ("fractions", "kelvin"),
    [
        ({"SiO2": 1.0}, 4000.0),
        ({"SiO2": 0.7, "Li2O": 0.3}, 3550.0),
        ({"P2O5": 0.5, "CaO": 0.5}, 2500.0),
        ({"SiO2": 0.5, "Al2O3": 0.2, "CaO": 0.3}, 3450.0),
        ({"SiO2": 0.61, "K2O": 0.39}, 3400.0),  # 3415 K, rounded to a multiple of 50 K
    ],
)
def test_melt_temperature_rule(fractions, kelvin):
    assert melt_temperature(fractions) == kelvin


def test_all_meg_oxides_are_covered_by_bmp_glass():
    covered = covered_oxides(POTENTIALS["bmp-glass"].elements, OXIDES)
    assert set(covered) == set(OXIDES)
    assert covered_oxides(("Si", "O"), OXIDES) == ("SiO2",)


def test_bad_compositions_are_rejected():
    with pytest.raises(ValueError, match="unknown oxide"):
        formula_units({"Na2O": 1.0}, 100)
    with pytest.raises(ValueError, match="at least one network former"):
        sample_composition(np.random.default_rng(0), formers=())
    with pytest.raises(ValueError, match="finite and >= 0"):
        formula_units({"SiO2": float("inf"), "Li2O": 0.3}, 100)  # was a NaN-to-int error
    with pytest.raises(ValueError, match="finite and >= 0"):
        melt_temperature({"SiO2": 0.7, "Li2O": -0.3})  # was 5100 K
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"max_modifier_fraction must be a mole fraction"):
        sample_composition(rng, max_modifier_fraction=1.5)
    with pytest.raises(ValueError, match=r"max_modifiers must be an integer >= 0"):
        sample_composition(rng, max_modifiers=-1)


def test_max_modifiers_zero_draws_formers_alone():
    rng = np.random.default_rng(3)
    for _ in range(20):  # was numpy's "low >= high"
        assert set(sample_composition(rng, max_modifiers=0)) <= set(FORMERS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SiO2:70,Li2O:30", {"SiO2": 0.7, "Li2O": 0.3}),
        ("SiO2:0.7, Li2O:0.3", {"SiO2": 0.7, "Li2O": 0.3}),
        ({"SiO2": 50, "Al2O3": 20, "CaO": 30}, {"SiO2": 0.5, "Al2O3": 0.2, "CaO": 0.3}),
        ("SiO2:60,Li2O:20", {"SiO2": 0.75, "Li2O": 0.25}),  # proportions: normalised
        ("SiO2:100,Li2O:0", {"SiO2": 1.0}),
    ],
)
def test_parse_composition(text, expected):
    parsed = parse_composition(text)
    assert list(parsed) == list(expected)
    assert parsed == pytest.approx(expected, abs=SUM_TOL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SiO2=70", "is not OXIDE:AMOUNT"),
        ("SiO2:70,", "is not OXIDE:AMOUNT"),
        ("SiO2:lots", "'lots' of SiO2 is not a number"),
        ("SiO2:70,Na2O:30", r"unknown oxide\(s\) in composition: \['Na2O'\]"),
        ("SiO2:70,SiO2:30", "name SiO2 more than once"),
        ("SiO2:-70,Li2O:30", "finite and >= 0"),
        ("SiO2:0", "positive sum"),
    ],
)
def test_bad_composition_texts_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_composition(text)


def test_random_packing_keeps_the_minimum_distance_and_density():
    symbols = ["Si"] * 40 + ["O"] * 80
    atoms = random_packing(symbols, 2.2, 1.5, np.random.default_rng(3))
    assert atoms.get_chemical_symbols() == symbols
    d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert d.min() >= 1.5
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)
    rho = mass / atoms.get_volume() * G_PER_CM3_PER_AMU_A3
    assert rho == pytest.approx(2.2, rel=1e-12)
    assert atoms.cell.cellpar()[0] == pytest.approx(cube_for_density(symbols, 2.2))
    again = random_packing(symbols, 2.2, 1.5, np.random.default_rng(3))
    np.testing.assert_array_equal(atoms.positions, again.positions)


def test_random_packing_refuses_an_impossible_packing():
    with pytest.raises(ValueError, match="could not place atom"):
        random_packing(["Si"] * 50, 2.2, 4.0, np.random.default_rng(0))


def test_diamond_supercell_sizes():
    atoms = diamond_supercell(64, 5.431)
    assert len(atoms) == 64
    np.testing.assert_allclose(atoms.cell.lengths(), [2 * 5.431] * 3)
    with pytest.raises(ValueError, match="8 k\\^3.*64, 216"):
        diamond_supercell(100)
