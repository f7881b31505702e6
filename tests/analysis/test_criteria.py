"""Structure criteria: known answers on crystals, parsing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from amtoolkit.analysis.criteria import (
    AllOf,
    BridgingFraction,
    ClosestPair,
    Coordinated,
    describe,
    parse_criterion,
)
from tests.test_analyzer import cristobalite

SI_BOND = 5.431 * np.sqrt(3.0) / 4.0  # Å


@pytest.fixture
def diamond():
    return bulk("Si", "diamond", a=5.431, cubic=True) * (2, 2, 2)


def test_diamond_si_is_four_fold_with_its_bond_as_closest_pair(diamond):
    assert Coordinated("Si", 4, 1.0)(diamond)
    assert not Coordinated("Si", 3, 0.01)(diamond)
    assert ClosestPair(SI_BOND - 1e-3)(diamond)
    assert not ClosestPair(SI_BOND + 1e-3)(diamond)
    assert not BridgingFraction(0.5)(diamond)  # no oxygen: nothing bridges
    assert not Coordinated("O", 2, 0.0)(diamond)  # no O to count


def test_a_vacancy_is_seen(diamond):
    broken = diamond.copy()
    del broken[0]  # its four neighbours keep three bonds: 59 of 63 atoms four-fold
    assert not Coordinated("Si", 4, 1.0)(broken)
    assert Coordinated("Si", 4, 59 / 63 - 1e-9)(broken)
    assert not Coordinated("Si", 4, 59 / 63 + 1e-9)(broken)
    assert Coordinated("Si", 3, 4 / 63 - 1e-9)(broken)


def test_cristobalite_bridges_every_oxygen():
    sio2 = cristobalite()
    assert BridgingFraction(1.0)(sio2)
    assert Coordinated("Si", 4, 1.0)(sio2) and Coordinated("O", 2, 1.0)(sio2)
    first_si = next(i for i, a in enumerate(sio2) if a.symbol == "Si")
    cut = sio2.copy()
    del cut[first_si]  # its four O keep one Si: non-bridging
    n_o = sum(a.symbol == "O" for a in cut)
    assert BridgingFraction((n_o - 4) / n_o - 1e-9)(cut)
    assert not BridgingFraction((n_o - 4) / n_o + 1e-9)(cut)


def test_parse_forms_and_descriptions(diamond):
    assert parse_criterion("closest>=2.1") == ClosestPair(2.1)
    assert parse_criterion(" bridging >= 0.9 ") == BridgingFraction(0.9)
    assert parse_criterion("Si4>=0.95") == Coordinated("Si", 4, 0.95)
    both = parse_criterion(["closest>=2.1", "Si4>=0.95"])
    assert both == parse_criterion("closest>=2.1,Si4>=0.95")
    assert isinstance(both, AllOf) and str(both) == "Si4>=0.95,closest>=2.1"
    assert both(diamond)
    assert describe(both) == "Si4>=0.95,closest>=2.1"

    def mine(atoms):
        return True

    assert describe(mine).endswith("mine")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "criterion 'foo': use closest>=D"),
        ("closest>2", "use closest>=D"),
        ("Si>=0.5", "use closest>=D"),
        ("Xx4>=0.5", "use closest>=D"),
        ("bridging>=1.5", "bridging>=1.5: the fraction must lie in"),
        ("closest>=0", "closest>=0: the distance must be a positive number"),
        ("closest>=1e", "'1e' is not a number"),
        (",", "no criterion given"),
    ],
)
def test_bad_text_is_one_line_naming_the_forms(text, message):
    with pytest.raises(ValueError, match=message):
        parse_criterion(text)


def test_bad_arguments_in_python():
    with pytest.raises(ValueError, match=r"Si4>='x': the fraction"):
        Coordinated("Si", 4, "x")
    with pytest.raises(ValueError, match="n must be an integer"):
        Coordinated("Si", 4.0, 0.5)
    with pytest.raises(ValueError, match="unknown anion element 'Q'"):
        BridgingFraction(0.5, anion="Q")
