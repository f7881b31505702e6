"""compare(generated, reference, calculator): the pure set comparison behind Analyzer.compare."""

from __future__ import annotations

import dataclasses

import pytest
from ase import Atoms

from amtoolkit.analysis.adf import adf
from amtoolkit.analysis.compare import (
    COMPARE_ADF_CUTOFF,
    COMPARE_RDF_NBINS,
    COMPARE_RDF_RMAX,
    Comparison,
    compare,
)
from amtoolkit.analysis.metrics import (
    distribution_rmsd,
    excess_rmsd,
    rmsd_standard_error,
    sampling_rmsd,
)
from amtoolkit.analysis.rdf import rdf
from amtoolkit.errors import StructureError
from tests.known_values import SW_DIAMOND_ENERGY, SW_LATTICE

EXACT = 1e-12
ENERGY_TOL = 1e-3  # eV/atom


@pytest.fixture
def rattled(diamond_si):
    atoms = diamond_si.copy()
    atoms.rattle(0.08, seed=4)
    return atoms


def test_matches_the_definition(diamond_si, rattled):
    expanded = diamond_si.copy()
    expanded.set_cell(diamond_si.cell * 1.03, scale_atoms=True)
    result = compare([rattled, expanded], diamond_si)
    rdf_gen = rdf([rattled, expanded], rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS)
    rdf_ref = rdf(diamond_si, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS)
    adf_gen = adf([rattled, expanded], cutoff=COMPARE_ADF_CUTOFF)
    adf_ref = adf(diamond_si, cutoff=COMPARE_ADF_CUTOFF)
    assert result.rdf_rmsd == pytest.approx(distribution_rmsd(rdf_gen.g, rdf_ref.g), rel=EXACT)
    assert result.adf_rmsd == pytest.approx(distribution_rmsd(adf_gen.p, adf_ref.p), rel=EXACT)
    assert result.rdf_rmsd_partial[("Si", "Si")] == pytest.approx(result.rdf_rmsd, rel=EXACT)
    assert result.density_difference == pytest.approx(
        result.density_generated - result.density_reference, rel=EXACT
    )
    assert result.density_generated < result.density_reference  # the expanded cell
    assert (result.n_generated, result.n_reference) == (2, 1)
    assert result.potential is None and result.energy_difference is None


def test_symmetric_distances_antisymmetric_differences(diamond_si, rattled):
    forward, backward = compare(rattled, diamond_si), compare(diamond_si, rattled)
    assert forward.rdf_rmsd == pytest.approx(backward.rdf_rmsd, rel=EXACT)
    assert forward.adf_rmsd == pytest.approx(backward.adf_rmsd, rel=EXACT)
    assert forward.density_difference == pytest.approx(-backward.density_difference, abs=EXACT)
    assert forward.rdf_rmsd > 0.1  # a 0.08 Å rattle broadens the diamond peaks


def test_ghost_atoms_do_not_count(diamond_si, rattled):
    ghost = rattled + Atoms("X", positions=[[1.0, 1.0, 1.0]])
    with_ghost, without = compare(ghost, diamond_si), compare(rattled, diamond_si)
    assert dataclasses.asdict(with_ghost) == dataclasses.asdict(without)


def test_partials_only_for_pairs_in_both_sets_and_other_elements_warn(diamond_si):
    from ase.build import bulk

    sic = bulk("SiC", "zincblende", a=4.36, cubic=True)
    with pytest.warns(UserWarning, match="hold C, Si and the reference Si: the RMSDs compare"):
        result = compare(sic, diamond_si)
    assert list(result.rdf_rmsd_partial) == [("Si", "Si")]
    assert "RDF RMSD Si-Si" in result.summary()


def test_energies_with_a_calculator(diamond_si):
    from amtoolkit.potentials import get_calculator

    calc = get_calculator("sw-si")
    vacancy = (diamond_si * (2, 2, 2))[1:]
    result = compare([vacancy], [diamond_si], calc)
    assert result.energy_reference == pytest.approx(SW_DIAMOND_ENERGY, abs=ENERGY_TOL)
    assert result.energy_difference > 0.01  # a vacancy costs energy
    assert result.potential == type(calc).__name__  # no name given: the class name
    named = compare([vacancy], [diamond_si], calc, potential="sw-si")
    assert named.energy_difference == pytest.approx(result.energy_difference, rel=1e-9)
    assert "energy (eV/atom, relaxed, sw-si)" in named.summary()
    assert compare(diamond_si, diamond_si, potential="sw-si").potential is None  # no calculator


def test_floor_is_the_spread_of_the_reference(diamond_si, rattled):
    single = compare(rattled, diamond_si)
    assert single.rdf_rmsd_floor is None and "floor" not in single.summary()
    others = [diamond_si.copy() for _ in range(4)]
    for seed, atoms in enumerate(others):
        atoms.rattle(0.08, seed=seed)
    result = compare(rattled, others)
    expected = sampling_rmsd(rdf(others, rmax=COMPARE_RDF_RMAX).per_structure, 1, 4)
    assert result.rdf_rmsd_floor == pytest.approx(expected, rel=EXACT)
    assert 0.0 < result.rdf_rmsd_floor < compare(rattled, diamond_si).rdf_rmsd
    assert 0.0 < result.adf_rmsd_floor and "(floor " in result.summary()
    assert compare(others, others).rdf_rmsd_floor > compare(others, others).rdf_rmsd


def rattled_set(atoms, amplitude, seeds):
    """Copies of `atoms` rattled by `amplitude` Å, one per seed."""
    frames = [atoms.copy() for _ in seeds]
    for seed, frame in zip(seeds, frames, strict=True):
        frame.rattle(amplitude, seed=seed)
    return frames


def test_excess_comes_from_both_sets(diamond_si):
    hot, cold = (
        rattled_set(diamond_si, 0.15, range(4)),
        rattled_set(diamond_si, 0.05, range(10, 15)),
    )
    result = compare(hot, cold)
    per = [rdf(s, rmax=COMPARE_RDF_RMAX).per_structure for s in (hot, cold)]
    assert result.rdf_rmsd_excess == pytest.approx(excess_rmsd(*per), rel=EXACT)
    assert 0.0 < result.rdf_rmsd_excess < result.rdf_rmsd and result.adf_rmsd_excess > 0.0
    assert "beyond sampling noise" in result.summary()
    same = compare(hot, rattled_set(diamond_si, 0.15, range(20, 24)))
    assert same.rdf_rmsd_excess < 0.25 * result.rdf_rmsd_excess  # one protocol: mostly noise
    single = compare(hot[0], cold)
    assert single.rdf_rmsd_excess is None and "beyond" not in single.summary()


def test_standard_error_comes_from_both_sets(diamond_si):
    hot, cold = (
        rattled_set(diamond_si, 0.15, range(4)),
        rattled_set(diamond_si, 0.05, range(10, 16)),
    )
    result = compare(hot, cold)
    per = [rdf(s, rmax=COMPARE_RDF_RMAX).per_structure for s in (hot, cold)]
    assert result.rdf_rmsd_se == pytest.approx(rmsd_standard_error(*per), rel=EXACT)
    assert 0.0 < result.rdf_rmsd_se < result.rdf_rmsd and result.adf_rmsd_se > 0.0
    assert f"{result.rdf_rmsd:.4f} +- {result.rdf_rmsd_se:.4f} (floor" in result.summary()
    few = compare(hot[:2], cold)
    assert few.rdf_rmsd_se is None and "+-" not in few.summary().split("ADF")[0]


def test_bad_structures_raise(diamond_si):
    flat = diamond_si.copy()
    flat.pbc = False
    with pytest.raises(StructureError, match="not periodic"):
        compare(flat, diamond_si)
    with pytest.raises(StructureError, match="^generated set: no structures given"):
        compare([], diamond_si)
    with pytest.raises(StructureError, match="^reference set: no structures given"):
        compare(diamond_si, [])
    ghosts = Atoms("X2", positions=[[0, 0, 0], [1, 1, 1]], cell=[5.0] * 3, pbc=True)
    with pytest.raises(StructureError, match="^reference set: frame 1: structure has only ghost"):
        compare(diamond_si, [diamond_si, ghosts])


def test_result_is_frozen_and_serialises(diamond_si, rattled):
    result = compare(rattled, diamond_si)
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.adf_rmsd = 0.0
    data = result.to_dict()
    assert data["rdf_rmsd_partial"] == {"Si-Si": result.rdf_rmsd}
    assert data["energy_generated"] is None
    assert result.summary().splitlines()[0] == "comparison with reference"


def test_closest_pair_flags_atoms_left_on_top_of_each_other(diamond_si):
    from amtoolkit.analysis.compare import CLOSE_PAIR_FACTOR, closest_pair

    bond = SW_LATTICE * 3**0.5 / 4  # nearest-neighbour distance of diamond
    squeezed = diamond_si.copy()
    i, j = 0, 1  # a bonded pair of the conventional cell (0,0,0)-(a/4,a/4,a/4)
    assert squeezed.get_distance(i, j, mic=True) == pytest.approx(bond, rel=1e-9)
    direction = squeezed.positions[j] - squeezed.positions[i]
    squeezed.positions[j] = squeezed.positions[i] + 0.5 * direction / bond  # 0.5 Å apart
    assert closest_pair(diamond_si) == pytest.approx(bond, rel=1e-9)
    assert closest_pair(squeezed) == pytest.approx(0.5, rel=1e-9)

    result = compare([diamond_si, squeezed, squeezed], diamond_si)
    assert result.closest_pair_reference == pytest.approx(bond, rel=1e-9)
    assert result.closest_pair_generated == pytest.approx(0.5, rel=1e-9)
    assert result.close_pair_fraction == pytest.approx(2 / 3)
    assert compare(diamond_si, diamond_si).close_pair_fraction == 0.0
    assert f"closer than {CLOSE_PAIR_FACTOR:g} x" in result.summary()


def test_no_close_pairs_without_a_reference_pair(diamond_si):
    lone = Atoms("Si", cell=[10.0, 10.0, 10.0], pbc=True)  # no pair within 5 Å
    result = compare(diamond_si, lone)
    assert result.closest_pair_reference == float("inf")
    assert result.close_pair_fraction == 0.0
