"""ADF: tetrahedral angle of diamond, brute-force reference, per-centre curves, cutoffs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from amtoolkit.analysis.adf import adf, bond_angles
from amtoolkit.analysis.bonds import bonded_pairs

TETRAHEDRAL = np.degrees(np.arccos(-1.0 / 3.0))  # 109.47 degrees
NORM_TOL = 1e-12  # sum(p) * dtheta == 1 to rounding
REF_TOL = 1e-12  # same angles binned the same way


def beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite: Si on a diamond lattice, O at the Si-Si bond midpoints."""
    si = bulk("Si", "diamond", a=a, cubic=True)
    fcc = si.get_scaled_positions()[::2]  # sublattice A (ASE orders A, B, A, B, ...)
    directions = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / 8.0
    oxygen = (fcc[:, None, :] + directions[None]).reshape(-1, 3) % 1.0
    return si + Atoms("O16", scaled_positions=oxygen, cell=si.cell, pbc=True)


def brute_force_angles(atoms: Atoms, cutoff: float) -> np.ndarray:
    i, vectors = ase_neighbor_list("iD", atoms, cutoff)
    angles = []
    for center in range(len(atoms)):
        v = vectors[i == center]
        for a in range(len(v)):
            for b in range(a + 1, len(v)):
                cos = v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])
                angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.array(angles)


def test_diamond_all_angles_tetrahedral(diamond_si):
    result = adf(diamond_si, cutoff=2.7)
    dtheta = result.theta[1] - result.theta[0]
    assert result.n_angles == [8 * 6]  # 4 neighbours -> 6 angles per atom
    peak = int(np.argmax(result.p))
    assert abs(result.theta[peak] - TETRAHEDRAL) <= dtheta / 2
    assert result.p[peak] * dtheta == pytest.approx(1.0, abs=NORM_TOL)


def test_matches_brute_force_on_random_cell():
    rng = np.random.default_rng(3)
    atoms = Atoms("Si30", scaled_positions=rng.random((30, 3)), cell=[8.0, 8.5, 9.0], pbc=True)
    atoms.set_cell([[8.0, 0, 0], [1.5, 8.5, 0], [0.5, 1.0, 9.0]], scale_atoms=True)
    cutoff = 3.2
    result = adf(atoms, cutoff=cutoff, nbins=90)
    ref = brute_force_angles(atoms, cutoff)
    counts = np.histogram(ref, bins=90, range=(0.0, 180.0))[0]
    assert result.n_angles == [len(ref)]
    np.testing.assert_allclose(result.p, counts / (len(ref) * 2.0), rtol=0, atol=REF_TOL)
    assert result.p.sum() * 2.0 == pytest.approx(1.0, abs=NORM_TOL)


def test_bond_angles_pairs_each_neighbour_pair_once():
    # one centre with three neighbours along x, y, -x: angles 90, 180, 90
    i = np.array([0, 0, 0, 1])
    vectors = np.array([[1.0, 0, 0], [0, 2.0, 0], [-3.0, 0, 0], [1.0, 0, 0]])
    center, angle = bond_angles(i, vectors, n_atoms=2)
    np.testing.assert_array_equal(center, [0, 0, 0])
    np.testing.assert_allclose(np.sort(angle), [90.0, 90.0, 180.0])


def test_per_centre_curves_on_cristobalite():
    atoms = beta_cristobalite()
    result = adf(atoms, cutoff={("Si", "O"): 2.0})
    assert set(result.by_center) == {"O", "Si"}
    # O-Si-O tetrahedral at Si; Si-O-Si straight at O (bin 179-180 holds 180)
    assert result.theta[np.argmax(result.by_center["Si"])] == pytest.approx(109.5)
    assert result.theta[np.argmax(result.by_center["O"])] == pytest.approx(179.5)
    for curve in result.by_center.values():
        assert curve.sum() == pytest.approx(1.0, abs=NORM_TOL)
    # 8 Si x 6 O-Si-O angles and 16 O x 1 Si-O-Si angle
    assert result.n_angles == [8 * 6 + 16]


def test_pairs_missing_from_cutoff_dict_are_not_neighbours():
    atoms = beta_cristobalite()
    # Si-Si (3.1 Å) and O-O (2.53 Å) would bond with a float cutoff of 3.2 Å
    assert adf(atoms, cutoff=3.2).n_angles[0] > adf(atoms, cutoff={"Si-O": 3.2}).n_angles[0]
    only_oo = adf(atoms, cutoff={("O", "O"): 2.6})
    assert set(only_oo.by_center) == {"O"}  # Si has no O-O neighbours


def test_set_average_and_shapes(diamond_si):
    rattled = diamond_si.copy()
    rattled.rattle(0.05, seed=1)
    result = adf([diamond_si, rattled], cutoff=2.7, nbins=60)
    assert result.theta.shape == result.p.shape == (60,)
    assert result.per_structure.shape == (2, 60)
    np.testing.assert_allclose(result.p, result.per_structure.mean(axis=0))
    json.dumps(result.to_dict())
    assert result.plot() is not None


def test_no_neighbours_gives_zero_distribution(diamond_si):
    result = adf(diamond_si, cutoff=1.0)
    assert result.n_angles == [0]
    assert not result.p.any()


def test_bad_nbins(diamond_si):
    with pytest.raises(ValueError, match="nbins"):
        adf(diamond_si, nbins=0)


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("cutoff", float("inf"), "inf"),
        ("cutoff", 0.0, "0.0"),
        ("cutoff", "3", "'3'"),  # was read as 3 Å
        ("nbins", 90.5, "90.5"),
        ("nbins", "180", "'180'"),
    ],
)
def test_bad_option_is_named_with_its_value(diamond_si, option, value, shown):
    with pytest.raises(ValueError) as error:
        adf(diamond_si, **{option: value})
    message = str(error.value)
    assert message.startswith(f"{option} must be ") and message.endswith(f", got {shown}")
    assert "\n" not in message


def test_same_structure_in_a_sheared_cell_gives_the_same_adf():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=0)
    a, b, c = atoms.cell.array
    sheared = atoms.copy()
    sheared.set_cell([a, b + 3 * a, c + 2 * b - a], scale_atoms=False)  # same lattice
    sheared.wrap()
    expected, result = adf(atoms), adf(sheared)
    assert result.n_angles == expected.n_angles == [6 * len(atoms)]  # 4 bonds: 6 angles
    np.testing.assert_allclose(result.p, expected.p, rtol=0, atol=REF_TOL)


def test_overlapping_atoms_do_not_break_the_histogram(diamond_si):
    atoms = diamond_si + Atoms("Si", positions=[diamond_si.positions[0]])
    i, vectors = bonded_pairs(atoms, 2.7, "iD")
    assert np.isnan(bond_angles(i, vectors, len(atoms))[1]).any()  # the case is exercised
    result = adf(atoms, cutoff=2.7)
    assert np.all(np.isfinite(result.p))
    assert result.p.sum() * (result.theta[1] - result.theta[0]) == pytest.approx(1.0)


def brute_force_triplets(atoms: Atoms, cutoff: float) -> dict[tuple[str, str, str], list[float]]:
    i, j, vectors = ase_neighbor_list("ijD", atoms, cutoff)
    symbols = atoms.get_chemical_symbols()
    order = {s: atoms.numbers[symbols.index(s)] for s in set(symbols)}
    found: dict[tuple[str, str, str], list[float]] = {}
    for center in range(len(atoms)):
        v, ends = vectors[i == center], j[i == center]
        for a in range(len(v)):
            for b in range(a + 1, len(v)):
                cos = v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])
                end = sorted((symbols[ends[a]], symbols[ends[b]]), key=order.get)
                key = (end[0], symbols[center], end[1])
                found.setdefault(key, []).append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return found


def test_triplet_curves_match_a_brute_force_count_in_a_modified_glass():
    rng = np.random.default_rng(5)
    symbols = ["Si"] * 8 + ["O"] * 16 + ["Li"] * 6
    atoms = Atoms(symbols, scaled_positions=rng.random((30, 3)), cell=[8.0, 8.5, 9.0], pbc=True)
    result = adf(atoms, cutoff=3.0, nbins=90)
    expected = brute_force_triplets(atoms, 3.0)
    assert set(result.by_triplet) == set(expected)
    for key, angles in expected.items():
        counts = np.histogram(angles, bins=90, range=(0.0, 180.0))[0]
        np.testing.assert_allclose(
            result.by_triplet[key], counts / (len(angles) * 2.0), rtol=0, atol=REF_TOL
        )
    data = json.loads(json.dumps(result.to_dict()))
    assert "O-Si-O" in data["by_triplet"] or "Si-O-Si" in data["by_triplet"]


def test_report_names_the_network_angle_of_a_modified_glass():
    from amtoolkit.analysis.report import summary_rows

    glass = beta_cristobalite()
    glass.symbols[0] = "Li"  # its four O now also join Li-O-Si angles
    result = adf(glass, cutoff={("Si", "O"): 2.0, ("Li", "O"): 2.0})
    assert result.theta[np.argmax(result.by_triplet[("Si", "O", "Si")])] == pytest.approx(179.5)
    rows = dict(summary_rows("adf", result, None))
    assert rows["most likely angle Si-O-Si (deg)"] == "179.5"  # the last bin
    pure = dict(summary_rows("adf", adf(beta_cristobalite(), cutoff={("Si", "O"): 2.0}), None))
    assert "most likely angle Si-O-Si (deg)" not in pure  # the angle at O says it already
