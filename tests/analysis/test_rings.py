"""Ring statistics: diamond, silica polymorphs in Si count, supercell consistency, limits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from ase.spacegroup import crystal
from ase.units import _Nav

from amtoolkit.analysis.rings import RingsResult, rings
from tests.known_values import QUARTZ_DENSITY, QUARTZ_SI_O_BONDS

QUARTZ_BOND_TOL = 1e-3  # Å, the published bond lengths are given to 3 decimals
QUARTZ_DENSITY_TOL = 0.01  # g/cm^3


def beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite: Si on a diamond lattice, O at the Si-Si bond midpoints."""
    si = bulk("Si", "diamond", a=a, cubic=True)
    fcc = si.get_scaled_positions()[::2]
    directions = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / 8.0
    oxygen = (fcc[:, None, :] + directions[None]).reshape(-1, 3) % 1.0
    return si + Atoms("O16", scaled_positions=oxygen, cell=si.cell, pbc=True)


def alpha_quartz() -> Atoms:
    """alpha-quartz, P3_221: Si 3a (x, 0, 2/3), O 6c (Levien et al., Am. Mineral. 65, 920;
    their z shifted by 2/3 to the origin of the International Tables)."""
    return crystal(
        ["Si", "O"],
        basis=[(0.4697, 0.0, 2 / 3), (0.4135, 0.2669, 0.1191 + 2 / 3)],
        spacegroup=154,
        cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
    )


def disordered_si() -> Atoms:
    """64-atom diamond cell rattled until bonds break: rings of many sizes."""
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.rattle(0.3, seed=2)
    return atoms


def test_diamond_has_only_sixrings_two_per_atom(diamond_si):
    # every atom of diamond lies on 12 six-rings -> 12 / 6 = 2 rings per atom; the
    # 8-atom cell is narrower than a ring and is repeated internally
    for atoms in (diamond_si, diamond_si.repeat(2)):
        result = rings(atoms)
        assert result.counts == {6: 2 * len(atoms)}
        assert result.mean_size == 6.0


def test_maxlength_is_inclusive(diamond_si):
    assert rings(diamond_si, maxlength=6).counts == {6: 16}
    assert rings(diamond_si, maxlength=5).counts == {}
    assert np.isnan(rings(diamond_si, maxlength=5).mean_size)


def test_cristobalite_rings_in_si_count():
    atoms = beta_cristobalite()
    n_si = 8
    assert rings(atoms, count_species="Si").counts == {6: 2 * n_si}
    # the same rings counted in atoms (Si + O) are 12-membered
    assert rings(atoms, maxlength=12).counts == {12: 2 * n_si}
    assert rings(atoms, count_species="Si", maxlength=5).counts == {}


def test_alpha_quartz_cell_has_the_published_bonds_and_density():
    # the cell used before had Si-O bonds of 1.295 and 1.871 Å
    atoms = alpha_quartz()
    assert atoms.get_chemical_formula() == "O6Si3"
    i, j, d = ase_neighbor_list("ijd", atoms, 2.0)  # Si-O bonds only: O-O is 2.6 Å
    assert np.all(atoms.numbers[i] != atoms.numbers[j])
    assert np.bincount(i, minlength=len(atoms)).tolist() == [4] * 3 + [2] * 6  # SiO4, O-Si2
    for si in range(3):
        np.testing.assert_allclose(
            np.sort(d[i == si]), np.repeat(QUARTZ_SI_O_BONDS, 2), rtol=0, atol=QUARTZ_BOND_TOL
        )
    density = atoms.get_masses().sum() / atoms.get_volume() * 1e24 / _Nav  # g/cm^3
    assert density == pytest.approx(QUARTZ_DENSITY, abs=QUARTZ_DENSITY_TOL)


def test_quartz_six_and_eight_rings():
    # alpha-quartz: each SiO4 is on six 6-rings and forty 8-rings (shortest-path rings)
    atoms = alpha_quartz()
    n_si = 3
    result = rings(atoms, count_species="Si")
    assert set(result.counts) == {6, 8}
    assert 6 * result.counts[6] / n_si == 6
    assert 8 * result.counts[8] / n_si == 40


def test_counts_scale_with_supercell():
    atoms = disordered_si()
    for maxlength in (8, 12):  # without and with the internal repetition
        small = rings(atoms, maxlength=maxlength).counts
        big = rings(atoms.repeat(2), maxlength=maxlength).counts
        assert len(small) > 3  # really disordered
        assert big == {n: 8 * c for n, c in small.items()}


def test_set_sums_and_per_structure(diamond_si):
    atoms = disordered_si()
    result = rings([atoms, diamond_si], maxlength=8)
    one = rings(atoms, maxlength=8).counts
    assert result.per_structure == [one, {6: 16}]
    expected = dict(one)
    expected[6] = expected.get(6, 0) + 16
    assert result.counts == dict(sorted(expected.items()))
    total = sum(expected.values())
    assert result.mean_size == pytest.approx(sum(n * c for n, c in expected.items()) / total)
    assert sum(result.fractions.values()) == pytest.approx(1.0)


def test_result_contract(diamond_si):
    result = rings(diamond_si)
    assert isinstance(result, RingsResult)
    assert result.maxlength == 12 and result.count_species is None
    data = result.to_dict()
    json.dumps(data)
    assert data["counts"] == {"6": 16}
    assert data["fractions"] == {"6": 1.0} and data["mean_size_per_structure"] == [6.0]
    empty = rings([diamond_si, diamond_si], cutoff=2.0).to_dict()  # no rings: null, not NaN
    assert empty["mean_size_per_structure"] == [None, None] and empty["fractions"] == {}
    assert result.plot() is not None


def test_cutoff_controls_the_network(diamond_si):
    assert rings(diamond_si, cutoff=2.0).counts == {}  # no bonds at all
    assert rings(diamond_si, cutoff={("Si", "Si"): 2.5}).counts == {6: 16}


def test_bad_arguments(diamond_si):
    with pytest.raises(ValueError, match="no O atoms"):
        rings(diamond_si, count_species="O")
    with pytest.raises(ValueError, match="unknown element"):
        rings(diamond_si, count_species="Qq")
    with pytest.raises(ValueError, match="maxlength"):
        rings(diamond_si, maxlength=1)
    for bad in (None, "12", float("nan"), True):
        with pytest.raises(ValueError, match=f"maxlength must be an integer >= 2, got {bad!r}"):
            rings(diamond_si, maxlength=bad)
    with pytest.raises(ValueError, match="maxlength 25 means rings of 25 bonds, above the 24"):
        rings(diamond_si, maxlength=25)  # refused before a search that would never end
    with pytest.raises(ValueError, match="maxlength 13 means rings of 26 bonds"):
        rings(diamond_si, maxlength=13, count_species="Si")
    with pytest.raises(ValueError, match="holds only Si atoms: .* use count_species=None"):
        rings(diamond_si, count_species="Si")  # it used to return no rings at all


def test_auto_species_refuses_a_set_mixing_silica_and_other_frames(diamond_si):
    from amtoolkit import Analyzer

    assert Analyzer().rings(diamond_si).counts == {6: 16}
    assert Analyzer().rings(beta_cristobalite()).counts == {6: 16}  # in Si atoms
    with pytest.raises(ValueError, match="this set mixes both; analyse them apart"):
        Analyzer().rings([diamond_si, beta_cristobalite()])


def test_silica_ring_sizes(dm2_sio2_path):
    from ase.io import read

    glass = read(dm2_sio2_path, format="lammps-data", atom_style="charge", units="real")
    result = rings(glass, count_species="Si")
    most_common = sorted(result.counts, key=result.counts.get)[-2:]
    assert sorted(most_common) == [6, 7]
    assert 6.0 < result.mean_size < 7.0
    assert min(result.counts) >= 2 and max(result.counts) <= 12


def test_a_close_packed_structure_is_refused_not_searched():
    from ase.build import bulk

    from amtoolkit.analysis.rings import MAX_RING_COORDINATION

    copper = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    copper.rattle(0.2, seed=0)  # 13.5 bonds per atom under the covalent rule
    with pytest.raises(ValueError, match=r"Cu108: mean coordination 13\.5 .* shorter cutoff"):
        rings(copper)
    assert MAX_RING_COORDINATION >= 4  # a-Si and silica are searched


def rocksalt_sio(a: float = 4.2) -> Atoms:
    """Conventional rocksalt with Si and O: square rings of one bond length everywhere."""
    atoms = bulk("NaCl", "rocksalt", a=a, cubic=True)
    atoms.set_chemical_symbols(["Si" if z == 11 else "O" for z in atoms.numbers])
    return atoms


def test_a_cell_exactly_as_wide_as_a_stretched_ring_is_repeated():
    # 4-bond squares in a cell of two bonds: the width ties the stretched ring, which
    # undercounted (2 squares per atom instead of 3)
    cell = rocksalt_sio()
    supercell = cell.repeat(3)
    per_atom = [
        sum(rings(a, count_species="Si", maxlength=2).counts.values()) / len(a)
        for a in (cell, supercell)
    ]
    assert per_atom == [3.0, 3.0]
    # a tetragonal cell whose long axis only beats the mean bond: the longest bond counts
    tall = rocksalt_sio()
    tall.set_cell(np.diag([4.2, 4.2, 4.6]), scale_atoms=True)
    assert sum(rings(tall, cutoff=2.6, maxlength=4).counts.values()) / len(tall) == 3.0


def test_a_skewed_cell_is_reduced_before_it_is_repeated(monkeypatch, diamond_si):
    from ase.build import make_supercell
    from matscipy import ffi

    searched = []
    search = ffi.find_sp_rings

    def recording(i, j, *args):
        searched.append(int(i.max()))
        return search(i, j, *args)

    monkeypatch.setattr(ffi, "find_sp_rings", recording)
    plain = diamond_si.repeat(2)
    skewed = make_supercell(plain, [[1, 5, 3], [0, 1, 7], [0, 0, 1]])
    assert rings(skewed).counts == rings(plain).counts == {6: 128}
    assert searched[0] == searched[1]  # the same supercell searched for both


def test_a_search_too_large_to_finish_is_refused_before_it_starts(diamond_si):
    from amtoolkit.analysis.bonds import bonded_pairs
    from amtoolkit.analysis.rings import ring_search_paths

    i, j = bonded_pairs(diamond_si, None, "ij")
    assert ring_search_paths(8, i, j, 12) == pytest.approx(8 * 3.0**6)  # branching 3
    stishovite = crystal(  # SiO2 with six-fold Si: branching sqrt(5 x 2) per bond
        ["Si", "O"],
        basis=[(0, 0, 0), (0.3062, 0.3062, 0)],
        spacegroup=136,
        cellpar=[4.1773, 4.1773, 2.6655, 90, 90, 90],
    )
    with pytest.raises(ValueError, match=r"O4Si2: a ring search to 24 bonds would walk about"):
        rings(stishovite, count_species="Si", maxlength=12)
    assert rings(stishovite, count_species="Si", maxlength=4).counts == {2: 2, 3: 8, 4: 12}


def test_a_cell_whose_distance_table_would_exhaust_memory_is_refused(monkeypatch):
    from amtoolkit.analysis import rings as rings_module

    atoms = bulk("Si", "diamond", a=5.431, cubic=True) * (2, 2, 2)  # 64 atoms: 16.9 kB table
    monkeypatch.setattr(rings_module, "MAX_RING_TABLE", 1.0e4)
    with pytest.raises(
        ValueError, match=r"search of 512 atoms \(the cell repeated 8 times\) needs"
    ):
        rings_module.rings(atoms)


def test_the_ring_search_frees_its_distance_table(diamond_si):
    """matscipy's find_sp_rings keeps a reference to each array it is given; the wrapper
    gives them back, so a trajectory's distance tables do not pile up in memory."""
    import sys
    import weakref

    from matscipy.ffi import distances_on_graph

    from amtoolkit.analysis.rings import _find_sp_rings, _network_bonds

    atoms = diamond_si.repeat(2)
    i, j, _, vectors = _network_bonds(atoms, None, None)
    i32, j32 = (i + 1).astype(np.int32), (j + 1).astype(np.int32)
    vectors = np.ascontiguousarray(vectors)
    dist = distances_on_graph(i32, j32)
    counts = [sys.getrefcount(a) for a in (i32, j32, vectors, dist)]
    found = _find_sp_rings(i32, j32, vectors, dist, 7)
    assert [sys.getrefcount(a) for a in (i32, j32, vectors, dist)] == counts
    assert found[6] == 2 * len(atoms)  # diamond: two six-rings per atom
    gone = weakref.ref(dist)
    del dist
    assert gone() is None
