"""RDF: ASE normalisation (total and partials, one or several cells, triclinic), images, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.geometry.rdf import get_rdf

from amtoolkit.analysis.rdf import RDFResult, first_peak, rdf
from amtoolkit.errors import StructureError

ASE_TOL = 1e-10  # agreement with ase.geometry.rdf.get_rdf (same bins, same formula)
SUM_RULE_TOL = 1e-12  # g = sum_ab c_a c_b g_ab holds to rounding
RMAX = 4.5
NBINS = 90


def random_sio2(seed: int, cell: np.ndarray, n_si: int = 20) -> Atoms:
    rng = np.random.default_rng(seed)
    n = 3 * n_si
    return Atoms(f"Si{n_si}O{2 * n_si}", scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)


CUBIC = np.diag([10.0, 10.0, 10.0])
TRICLINIC = np.array([[10.5, 0.0, 0.0], [2.0, 11.0, 0.0], [1.0, -1.5, 10.8]])
PAIRS = [("Si", "Si"), ("Si", "O"), ("O", "Si"), ("O", "O")]


@pytest.mark.parametrize("cell", [CUBIC, TRICLINIC], ids=["cubic", "triclinic"])
def test_single_structure_matches_ase(cell):
    atoms = random_sio2(1, cell)
    result = rdf(atoms, rmax=RMAX, nbins=NBINS)
    g_ase, r_ase = get_rdf(atoms, RMAX, NBINS)
    np.testing.assert_allclose(result.r, r_ase, rtol=0, atol=ASE_TOL)
    np.testing.assert_allclose(result.g, g_ase, rtol=0, atol=ASE_TOL)
    for pair in PAIRS:
        ref = get_rdf(atoms, RMAX, NBINS, elements=pair, no_dists=True)
        np.testing.assert_allclose(result.partial[pair], ref, rtol=0, atol=ASE_TOL)


def test_several_structures_match_ase_image_average():
    frames = [random_sio2(k, TRICLINIC * s) for k, s in ((2, 1.0), (3, 1.04), (4, 0.98))]
    result = rdf(frames, rmax=RMAX, nbins=NBINS)
    np.testing.assert_allclose(result.g, get_rdf(frames, RMAX, NBINS, no_dists=True), atol=ASE_TOL)
    for pair in PAIRS:
        ref = get_rdf(frames, RMAX, NBINS, elements=pair, no_dists=True)
        np.testing.assert_allclose(result.partial[pair], ref, rtol=0, atol=ASE_TOL)
    assert result.per_structure.shape == (3, NBINS)
    for k, atoms in enumerate(frames):
        np.testing.assert_allclose(
            result.per_structure[k], get_rdf(atoms, RMAX, NBINS, no_dists=True), atol=ASE_TOL
        )


def test_partials_are_symmetric_and_sum_to_total():
    atoms = random_sio2(5, TRICLINIC, n_si=30)
    result = rdf(atoms, rmax=RMAX, nbins=NBINS)
    np.testing.assert_array_equal(result.partial[("Si", "O")], result.partial[("O", "Si")])
    c = {"Si": 1 / 3, "O": 2 / 3}
    total = sum(c[a] * c[b] * result.partial[(a, b)] for a, b in PAIRS)
    np.testing.assert_allclose(total, result.g, rtol=0, atol=SUM_RULE_TOL)
    assert result.pairs == [("O", "O"), ("O", "Si"), ("Si", "Si")]


def test_rmax_beyond_half_cell_counts_all_images():
    # ASE refuses rmax > half the cell width; we count every periodic image, which
    # must equal the RDF of a supercell that ASE can handle.
    small = random_sio2(6, np.diag([6.0, 6.5, 7.0]), n_si=4)
    big = small.repeat(2)
    np.testing.assert_allclose(
        rdf(small, rmax=5.0, nbins=50).g, get_rdf(big, 5.0, 50, no_dists=True), atol=ASE_TOL
    )


def test_shape_contract_and_json(diamond_si):
    result = rdf(diamond_si, rmax=2.5, nbins=25)
    assert isinstance(result, RDFResult)
    dr = 2.5 / 25
    np.testing.assert_allclose(result.r, dr * (np.arange(25) + 0.5))
    assert result.g.shape == (25,)
    assert result.per_structure.shape == (1, 25)
    assert set(result.partial) == {("Si", "Si")}
    data = result.to_dict()
    json.dumps(data)
    assert len(data["g"]) == 25 and "Si-Si" in data["partial"]


def test_first_peak_refuses_a_height_no_peak_can_reach(diamond_si):
    result = rdf(diamond_si)
    for bad in (2.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="min_height must be a fraction in"):
            first_peak(result, min_height=bad)  # 2 returned r[0] = 0.025 Å as a peak
    tallest = result.r[np.argmax(result.g)]  # 1.0: the tallest peak, here the third shell
    assert first_peak(result, min_height=1.0) == pytest.approx(tallest, abs=result.r[1])


def test_diamond_first_peak_is_the_bond_length(diamond_si):
    a = diamond_si.cell[0, 0]
    bond = np.sqrt(3) / 4 * a
    result = rdf(diamond_si, rmax=2.7, nbins=54)
    dr = 2.7 / 54
    assert abs(first_peak(result) - bond) <= dr / 2
    assert abs(first_peak(result, ("Si", "Si")) - bond) <= dr / 2
    # no pair closer than the bond: the histogram is empty below it
    assert np.all(result.g[result.r < bond - dr] == 0)


def test_first_peak_refines_between_bins():
    rng = np.random.default_rng(7)
    r = 0.05 * (np.arange(100) + 0.5)
    g = np.exp(-((r - 2.013) ** 2) / (2 * 0.08**2)) * 3 + 0.01 * rng.random(100)
    result = RDFResult(r=r, g=g, partial={}, per_structure=g[None], rmax=5.0)
    assert abs(first_peak(result) - 2.013) < 0.01
    with pytest.raises(KeyError, match="no partial"):
        first_peak(result, ("Si", "O"))


BROAD_PEAK_TOL = 0.05  # Å, a noisy broad peak at any bin width (edge bumps: 0.29-0.31 Å off)


@pytest.mark.parametrize("nbins", [100, 250, 500, 1000])
def test_first_peak_of_a_broad_noisy_peak_does_not_move_with_the_bins(nbins):
    """A broad peak (the Si-Si partial of silica, 3.1-3.2 Å) whose fine histogram is noisy:
    bumps on its rising edge are not taken for the peak (3.048 Å at 500 bins, 3.216 Å at
    100, on a DM2 glass, before g(r) was smoothed)."""
    rng = np.random.default_rng(nbins)
    r = 5.0 / nbins * (np.arange(nbins) + 0.5)
    g = 2.0 * np.exp(-((r - 3.2) ** 2) / (2 * 0.25**2))
    g = np.clip(g + np.sqrt(nbins / 100.0) * 0.03 * rng.standard_normal(nbins), 0.0, None)
    result = RDFResult(r=r, g=g, partial={}, per_structure=g[None], rmax=5.0)
    assert abs(first_peak(result) - 3.2) < BROAD_PEAK_TOL
    rising = RDFResult(r=r, g=r, partial={}, per_structure=r[None], rmax=5.0)
    assert np.isnan(first_peak(rising))  # still rising at rmax: no peak in range


def test_ideal_gas_tends_to_one():
    rng = np.random.default_rng(8)
    gas = Atoms("Ar1500", scaled_positions=rng.random((1500, 3)), cell=[25.0] * 3, pbc=True)
    result = rdf(gas, rmax=8.0, nbins=40)
    assert abs(result.g[result.r > 3.0].mean() - 1.0) < 0.02


def test_ghost_atoms_are_ignored():
    atoms = random_sio2(9, CUBIC)
    with_ghosts = atoms + Atoms("X5", positions=np.full((5, 3), 1.0))
    np.testing.assert_array_equal(rdf(atoms).g, rdf(with_ghosts).g)


def test_plot_returns_axes():
    ax = rdf(random_sio2(10, CUBIC)).plot()
    assert len(ax.lines) == 1 + 1 + 3  # total, g = 1 line, three distinct partials


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: a.set_pbc(False), "not periodic"),
        (lambda a: a.set_cell(np.zeros((3, 3))), "zero volume"),
        (lambda a: a.positions.__setitem__((3, 1), np.nan), "non-finite position"),
    ],
    ids=["non-periodic", "zero-volume", "nan-position"],
)
def test_bad_structures_raise(make, message):
    atoms = random_sio2(11, CUBIC)
    make(atoms)
    with pytest.raises(StructureError, match=message):
        rdf(atoms)


def test_bad_arguments_raise(diamond_si):
    for rmax in (0.0, float("inf"), float("nan")):  # inf used to reach vesin's own error
        with pytest.raises(ValueError, match="rmax must be a positive, finite length"):
            rdf(diamond_si, rmax=rmax)
    with pytest.raises(ValueError, match="nbins"):
        rdf(diamond_si, nbins=0)


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("rmax", "5", "'5'"),  # was a bare TypeError from the comparison
        ("rmax", None, "None"),
        ("rmax", True, "True"),
        ("nbins", 2.5, "2.5"),
        ("nbins", "100", "'100'"),
        ("nbins", np.int64(0), "0"),
    ],
)
def test_bad_option_is_named_with_its_value(diamond_si, option, value, shown):
    with pytest.raises(ValueError) as error:
        rdf(diamond_si, **{option: value})
    message = str(error.value)
    assert message.startswith(f"{option} must be ") and message.endswith(f", got {shown}")
    assert "\n" not in message


def test_same_structure_in_a_sheared_cell_gives_the_same_rdf():
    # every periodic image is counted, so how the cell is written cannot matter
    atoms = random_sio2(13, CUBIC)
    a, b, c = atoms.cell.array
    sheared = atoms.copy()
    sheared.set_cell([a, b + 3 * a, c + 2 * b - a], scale_atoms=False)  # same lattice
    sheared.wrap()
    expected, result = rdf(atoms, rmax=12.0), rdf(sheared, rmax=12.0)
    np.testing.assert_allclose(result.g, expected.g, rtol=0, atol=ASE_TOL)
    for pair in PAIRS:
        np.testing.assert_allclose(result.partial[pair], expected.partial[pair], atol=ASE_TOL)


def test_unwrapped_positions_give_the_same_rdf():
    # MD output often lies several cells away from the box; the answer must not change
    atoms = random_sio2(12, TRICLINIC)
    shifted = atoms.copy()
    rng = np.random.default_rng(12)
    shifted.positions += rng.integers(-3, 4, size=(len(atoms), 3)) @ atoms.cell.array
    result = rdf(shifted, rmax=RMAX, nbins=NBINS)
    np.testing.assert_allclose(result.g, get_rdf(atoms, RMAX, NBINS, no_dists=True), atol=ASE_TOL)
    for pair in PAIRS:
        np.testing.assert_allclose(
            result.partial[pair], rdf(atoms, RMAX, NBINS).partial[pair], atol=ASE_TOL
        )


def test_silica_si_o_peak(dm2_sio2_path):
    from ase.io import read

    glass = read(dm2_sio2_path, format="lammps-data", atom_style="charge", units="real")
    result = rdf(glass)
    assert 1.58 <= first_peak(result, ("Si", "O")) <= 1.66  # Si-O bond, 1.61-1.63 Å
    assert 2.55 <= first_peak(result, ("O", "O")) <= 2.70  # O-O tetrahedron edge
    assert first_peak(result) == first_peak(result, ("Si", "O"))


def test_pair_histogram_in_chunks_equals_one_pass(monkeypatch):
    """Pairs are binned a chunk at a time (memory); the counts must not depend on it."""
    from amtoolkit.analysis import rdf as rdf_module

    rng = np.random.default_rng(3)
    atoms = Atoms("Si10O20", positions=rng.uniform(0, 8.0, (30, 3)), cell=[8.0] * 3, pbc=True)
    types = (atoms.numbers == 8).astype(int)
    whole = rdf_module.pair_histogram(atoms, 6.0, 60, types, 2)
    single = rdf_module.pair_histogram(atoms, 6.0, 60, np.zeros(30, dtype=int), 1)
    monkeypatch.setattr(rdf_module, "_PAIR_CHUNK", 7)
    np.testing.assert_array_equal(rdf_module.pair_histogram(atoms, 6.0, 60, types, 2), whole)
    np.testing.assert_array_equal(
        rdf_module.pair_histogram(atoms, 6.0, 60, np.zeros(30, dtype=int), 1), single
    )
    np.testing.assert_array_equal(single[0, 0], whole.sum(axis=(0, 1)))
    assert whole.sum() > 30 * 29  # images within 6 Å of an 8 Å cell: more than one each


def test_a_cell_in_nm_is_refused_with_a_hint(diamond_si):
    from amtoolkit.errors import StructureError

    in_nm = diamond_si.copy()
    in_nm.set_cell(diamond_si.cell * 0.1, scale_atoms=True)  # lengths written in nm
    with pytest.raises(StructureError, match=r"8 atoms in 0.16 Å\^3 .* in nm or bohr, not Å"):
        rdf(in_nm)


def test_an_rmax_counting_too_many_pairs_and_a_non_structure_are_refused(diamond_si):
    from amtoolkit.errors import StructureError

    with pytest.raises(ValueError, match=r"rmax=1e\+06 Å would count about .* pairs"):
        rdf(diamond_si, rmax=1e6)  # ran for minutes
    with pytest.raises(StructureError, match="expected an ase.Atoms or a sequence of them"):
        rdf(None)
