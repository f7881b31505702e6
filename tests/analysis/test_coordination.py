"""Coordination numbers: known crystals, brute-force reference, cutoff specifications."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from amtoolkit.analysis.bonds import COVALENT_FACTOR, bonded_pairs, cutoff_table
from amtoolkit.analysis.coordination import coordination, coordination_numbers


def beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite: Si on a diamond lattice, O at the Si-Si bond midpoints."""
    si = bulk("Si", "diamond", a=a, cubic=True)
    fcc = si.get_scaled_positions()[::2]
    directions = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / 8.0
    oxygen = (fcc[:, None, :] + directions[None]).reshape(-1, 3) % 1.0
    return si + Atoms("O16", scaled_positions=oxygen, cell=si.cell, pbc=True)


def random_sio2(seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = [[9.0, 0, 0], [1.0, 9.5, 0], [-0.5, 0.8, 9.2]]
    return Atoms("Si16O32", scaled_positions=rng.random((48, 3)), cell=cell, pbc=True)


def test_diamond_is_fourfold(diamond_si):
    result = coordination(diamond_si, 2.7)
    assert result.distribution == {"Si": {4: 1.0}}
    assert result.mean == {"Si": 4.0}
    assert result.per_structure == [{"Si": 4.0}]


def test_cristobalite_si4_o2_with_pair_cutoffs():
    atoms = beta_cristobalite()
    for cutoffs in ({("Si", "O"): 2.0}, {("O", "Si"): 2.0}, {"Si-O": 2.0}, None):
        result = coordination(atoms, cutoffs)
        assert result.distribution == {"O": {2: 1.0}, "Si": {4: 1.0}}, cutoffs
    # a float cutoff that reaches O-O (2.53 Å) and Si-Si (3.10 Å) counts them too
    assert coordination(atoms, 3.2).mean == {"O": 2 + 6, "Si": 4 + 4}


def test_matches_brute_force_neighbour_count():
    atoms = random_sio2(4)
    cutoffs = {("Si", "O"): 2.1, ("O", "O"): 2.6}
    i, j, d = ase_neighbor_list("ijd", atoms, 2.6)
    zi, zj = atoms.numbers[i], atoms.numbers[j]
    si_o = (zi != zj) & (d < 2.1)
    o_o = (zi == 8) & (zj == 8) & (d < 2.6)
    expected = np.bincount(i[si_o | o_o], minlength=len(atoms))
    np.testing.assert_array_equal(coordination_numbers(atoms, cutoffs), expected)
    result = coordination(atoms, cutoffs)
    for element, z in (("Si", 14), ("O", 8)):
        cn = expected[atoms.numbers == z]
        assert result.mean[element] == pytest.approx(cn.mean())
        for value, fraction in result.distribution[element].items():
            assert fraction == pytest.approx(np.mean(cn == value))
        assert sum(result.distribution[element].values()) == pytest.approx(1.0)


def test_distribution_is_pooled_over_the_set(diamond_si):
    broken = diamond_si.copy()
    broken.positions[0] += [0.0, 0.0, 0.9]  # stretch bonds of atom 0 and neighbours
    one = coordination_numbers(broken, 2.7)
    result = coordination([diamond_si, broken], 2.7)
    pooled = np.concatenate([np.full(8, 4), one])
    assert result.mean["Si"] == pytest.approx(pooled.mean())
    assert result.per_structure[1]["Si"] == pytest.approx(one.mean())
    assert result.distribution["Si"][4] == pytest.approx(np.mean(pooled == 4))
    json.dumps(result.to_dict())


def test_default_rule_is_covalent(diamond_si):
    table = cutoff_table(None, np.array([14]))
    assert table[14, 14] == pytest.approx(COVALENT_FACTOR * 2 * 1.11)
    (d,) = bonded_pairs(diamond_si, None, "d")
    assert len(d) == 32 and d.max() < table[14, 14]


def test_default_rule_in_oxides_bonds_cations_to_oxygen_only():
    table = cutoff_table(None, np.array([8, 14]))
    assert table[14, 8] == table[8, 14] == pytest.approx(COVALENT_FACTOR * (1.11 + 0.66))
    assert table[14, 14] == 0.0 and table[8, 8] == 0.0


def test_oxynitride_nitrogen_bonds_to_the_cations_as_oxygen_does():
    from ase.spacegroup import crystal

    cristobalite = crystal(
        ["Si", "O"],
        basis=[(0, 0, 0), (0.125, 0.125, 0.125)],
        spacegroup=227,
        cellpar=[7.16] * 3 + [90] * 3,
    )
    symbols = cristobalite.get_chemical_symbols()
    symbols[symbols.index("O")] = "N"  # one bridging O made N: the network is unchanged
    cristobalite.set_chemical_symbols(symbols)
    result = coordination(cristobalite, None)
    assert result.distribution == {"N": {2: 1.0}, "O": {2: 1.0}, "Si": {4: 1.0}}
    table = cutoff_table(None, np.array([7, 8, 9, 14]))
    assert table[7, 8] == table[8, 9] == table[7, 7] == 0.0  # anions do not bond
    assert table[14, 7] > 0 and table[14, 9] > 0


@pytest.mark.parametrize(
    ("cutoffs", "message"),
    [
        ({("Si", "O"): 2.0, ("O", "Si"): 2.2}, "conflicting"),
        ({("Si", "Xx"): 2.0}, "unknown element"),
        ({"SiO": 2.0}, "element pair"),
        ({("Si", "O"): -1.0}, "non-negative"),
        (-2.0, "positive"),
    ],
)
def test_bad_cutoffs_raise(diamond_si, cutoffs, message):
    with pytest.raises(ValueError, match=message):
        coordination(diamond_si, cutoffs)


def test_cutoffs_naming_no_pair_present_warn(diamond_si):
    with pytest.warns(UserWarning, match="name Ge-Ge, but the structure holds only Si"):
        result = coordination(diamond_si, {"Ge-Ge": 2.8})
    assert result.mean == {"Si": 0.0}


def test_cutoffs_naming_one_pair_present_do_not_warn(diamond_si, recwarn):
    result = coordination(diamond_si, {"Si-Si": 2.5, "Si-O": 2.0})
    assert result.mean == {"Si": 4.0}
    assert not [w for w in recwarn if "cutoffs name" in str(w.message)]


def test_silica_si_is_fourfold(dm2_sio2_path):
    from ase.io import read

    glass = read(dm2_sio2_path, format="lammps-data", atom_style="charge", units="real")
    for cutoff in (2.0, 2.3):
        result = coordination(glass, {("Si", "O"): cutoff})
        assert result.distribution["Si"][4] > 0.99
        # every Si-O bond is seen from both ends and there are twice as many O as Si
        assert result.mean["O"] == pytest.approx(result.mean["Si"] / 2)
