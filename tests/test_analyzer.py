"""The Analyzer facade: known answers on crystals, delegation, errors, set comparison."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from amtoolkit.analysis.metrics import distribution_rmsd
from amtoolkit.analyzer import ANALYSES, Analyzer
from amtoolkit.errors import CoverageError, StructureError
from tests.known_values import SW_DIAMOND_ENERGY

SI_BOND = 5.431 * np.sqrt(3.0) / 4.0  # Å, nearest-neighbour distance of diamond Si
TETRAHEDRAL = np.degrees(np.arccos(-1.0 / 3.0))  # 109.47 degrees
RDF_BIN = 5.0 / 100  # Å, comparison RDF bin width
ADF_BIN = 1.0  # degrees
ENERGY_TOL = 1e-3  # eV/atom
EXACT = 1e-12


def cristobalite() -> Atoms:
    """Ideal beta-cristobalite (C9): diamond Si with O at every Si-Si midpoint (Si-O 1.60 Å)."""
    si = bulk("Si", "diamond", a=7.39, cubic=True)
    from amtoolkit.analysis.neighbors import neighbor_list

    i, j, vectors = neighbor_list(si, 3.3, "ijD")
    midpoints = si.positions[i[i < j]] + 0.5 * vectors[i < j]
    scaled = np.unique(np.round(si.cell.scaled_positions(midpoints) % 1.0, 8) % 1.0, axis=0)
    return si + Atoms(["O"] * len(scaled), scaled_positions=scaled, cell=si.cell)


@pytest.fixture
def rattled(diamond_si):
    atoms = diamond_si.copy()
    atoms.rattle(0.05, seed=1)
    return atoms


def test_rdf_first_peak_of_diamond(diamond_si):
    from amtoolkit.analysis.rdf import first_peak

    result = Analyzer().rdf(diamond_si * (2, 2, 2))
    assert result.r.shape == result.g.shape == (100,)
    assert first_peak(result, ("Si", "Si")) == pytest.approx(SI_BOND, abs=RDF_BIN)


def test_coordination_and_angles_of_diamond(diamond_si):
    analyzer = Analyzer()
    coordination = analyzer.coordination(diamond_si)
    assert coordination.mean == {"Si": 4.0}
    assert coordination.distribution == {"Si": {4: 1.0}}
    adf = analyzer.adf(diamond_si)
    assert adf.theta[np.argmax(adf.p)] == pytest.approx(TETRAHEDRAL, abs=ADF_BIN)


def test_rings_diamond_and_silica_convention(diamond_si):
    analyzer = Analyzer()
    assert analyzer.rings(diamond_si).counts == {6: 16}  # 8 atoms x 12 rings / 6 atoms
    silica = cristobalite()
    assert silica.get_chemical_formula() == "O16Si8"
    auto = analyzer.rings(silica)  # Si and O present: sizes counted in Si atoms
    assert auto.count_species == ("Si",)
    assert auto.counts == {6: 16}
    assert analyzer.rings(silica, count_species=None).counts == {12: 16}


def test_structure_factor_tends_to_one(diamond_si):
    result = Analyzer().structure_factor(diamond_si * (3, 3, 3), qmax=20.0, nq=200)
    assert result.q.shape == result.s.shape == (200,)
    assert np.all(np.isfinite(result.s))


def test_compare_set_with_itself_is_zero(diamond_si, rattled):
    comparison = Analyzer().compare([diamond_si, rattled], [diamond_si, rattled])
    assert comparison.rdf_rmsd == 0.0
    assert comparison.adf_rmsd == 0.0
    assert comparison.rdf_rmsd_partial == {("Si", "Si"): 0.0}
    assert comparison.density_difference == 0.0
    assert comparison.energy_difference is None  # no potential
    with pytest.raises(dataclasses.FrozenInstanceError):
        comparison.rdf_rmsd = 1.0


def test_compare_different_sets_matches_the_definition(diamond_si, rattled):
    analyzer = Analyzer()
    expanded = diamond_si.copy()
    expanded.set_cell(diamond_si.cell * 1.02, scale_atoms=True)
    comparison = analyzer.compare([rattled], [diamond_si, expanded])

    rdf_ref = analyzer.rdf([diamond_si, expanded])
    expected_rdf = distribution_rmsd(analyzer.rdf(rattled).g, rdf_ref.g)
    adf_ref = analyzer.adf([diamond_si, expanded], cutoff=3.0)
    expected_adf = distribution_rmsd(analyzer.adf(rattled, cutoff=3.0).p, adf_ref.p)
    assert comparison.rdf_rmsd == pytest.approx(expected_rdf, rel=EXACT)
    assert comparison.adf_rmsd == pytest.approx(expected_adf, rel=EXACT)
    assert comparison.rdf_rmsd > 0.1
    # density of the reference set = mean of 2.329 and 2.329 / 1.02^3
    rho = diamond_si.get_masses().sum() / diamond_si.get_volume() * 1.66053906660
    assert comparison.density_reference == pytest.approx(rho * (1 + 1.02**-3) / 2, rel=1e-9)
    assert comparison.density_difference == pytest.approx(rho * (1 - 1.02**-3) / 2, rel=1e-9)
    assert (comparison.n_generated, comparison.n_reference) == (1, 2)
    text = comparison.summary()
    assert "RDF RMSD (total)" in text and "energy" not in text
    assert json.loads(json.dumps(comparison.to_dict()))["rdf_rmsd_partial"]["Si-Si"] >= 0


def test_ghost_atoms_are_ignored(diamond_si):
    with_ghost = diamond_si + Atoms("X", positions=[[0.3, 0.3, 0.3]])
    analyzer = Analyzer()
    np.testing.assert_allclose(analyzer.rdf(with_ghost).g, analyzer.rdf(diamond_si).g, atol=EXACT)
    assert analyzer.coordination(with_ghost).mean == {"Si": 4.0}


def test_potential_needed_for_energy_elastic_vdos(diamond_si):
    analyzer = Analyzer()
    for method in ("energy", "elastic", "vdos"):
        with pytest.raises(
            ValueError, match=rf"Analyzer\(potential=\.\.\.\) is needed for {method}"
        ):
            getattr(analyzer, method)(diamond_si)


def test_unknown_potential_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown potential 'lj-argon'.*sw-si"):
        Analyzer("lj-argon")
    with pytest.raises(TypeError, match="name or an ASE calculator"):
        Analyzer(3.0)


def test_energy_with_named_potential_is_sw_cohesive_energy(diamond_si):
    analyzer = Analyzer("sw-si")
    result = analyzer.energy(diamond_si, relax=False)
    assert result.mean_energy == pytest.approx(SW_DIAMOND_ENERGY, abs=ENERGY_TOL)
    assert analyzer.calculator() is analyzer.calculator()  # built once


def test_energy_with_calculator_object(diamond_si):
    from amtoolkit.potentials import get_calculator

    calc = get_calculator("sw-si")
    analyzer = Analyzer(calc)
    assert analyzer.calculator() is calc
    assert analyzer.potential_name == type(calc).__name__
    assert analyzer.energy(diamond_si, relax=False).mean_energy == pytest.approx(
        SW_DIAMOND_ENERGY, abs=ENERGY_TOL
    )


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"kspace": True}, TypeError, "unknown option.*'kspace'.*allowed: alpha"),
        ({"coulomb_cutoff": -3}, ValueError, "coulomb_cutoff must be a positive number"),
        ({"three_body": "no"}, TypeError, "three_body must be true or false"),
    ],
)
def test_bad_potential_options_are_refused_when_the_analyzer_is_made(options, error, message):
    with pytest.raises(error, match=message):  # not at the first energy, after the rest
        Analyzer("bmp-glass", **options)
    with pytest.raises(TypeError, match="need a potential name, not no potential"):
        Analyzer(None, **options)


def test_a_misspelled_analyzer_keyword_is_named_as_one():
    with pytest.raises(
        TypeError, match=r"^unknown keyword 'potental' \(did you mean 'potential'\?\)$"
    ):
        Analyzer(potental="sw-si")
    with pytest.raises(TypeError, match=r"^unknown keyword 'worker' \(did you mean 'workers'\?\)$"):
        Analyzer(worker=2)
    with pytest.raises(TypeError, match="^potential options cutoff need a potential name"):
        Analyzer(cutoff=3.0)  # an option of the potentials, not a misspelling


def test_cache_false_is_no_cache_and_true_is_refused():
    assert Analyzer("sw-si", cache=False).cache is None  # was a TypeError from pathlib
    with pytest.raises(TypeError, match="give the cache folder"):
        Analyzer("sw-si", cache=True)


def test_the_harmonic_route_warns_on_a_potential_with_a_sharp_cutoff(monkeypatch):
    from amtoolkit.analysis import elastic as elastic_module

    monkeypatch.setattr(elastic_module, "elastic", lambda *args, **kwargs: "measured")
    glass = cristobalite()
    with pytest.warns(UserWarning, match="'bmp-glass' is not smooth .* use method='strain'"):
        assert Analyzer("bmp-glass").elastic(glass, method="hessian") == "measured"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Analyzer("bmp-glass").elastic(glass, method="strain")
        Analyzer("tersoff-sio2").elastic(glass, method="hessian")


def test_coverage_error_names_element():
    with pytest.raises(CoverageError, match="'O'.*sw-si"):
        Analyzer("sw-si").energy(cristobalite())


def test_charged_cells_are_refused_by_a_charged_potential(diamond_si):
    """bmp-glass covers Si, but pure Si under its +2.4 e charges is no material: the
    relaxation blew the cell up to 0.03 g/cm3 with only a warning."""
    with pytest.raises(StructureError, match=r"Si8 is not neutral under 'bmp-glass': .*\+19.2 e"):
        Analyzer("bmp-glass").energy(diamond_si)
    report = Analyzer("bmp-glass").report([cristobalite(), diamond_si], ["energy"], on_skip=None)
    assert [k for k, _ in report.skipped] == ["frame 1"]
    assert "not neutral" in report.skipped[0][1]


def test_crystallinity_relaxes_first_when_a_potential_is_set(rattled):
    symprec = 0.01  # Å, below the 0.05 Å rattle
    assert Analyzer().crystallinity(rattled, symprec=symprec).number == [1]
    assert Analyzer("sw-si").crystallinity(rattled, symprec=symprec).number == [227]


def test_compare_with_potential_compares_relaxed_energies(diamond_si):
    vacancy = (diamond_si * (2, 2, 2))[1:]
    comparison = Analyzer("sw-si").compare([vacancy], [diamond_si])
    assert comparison.energy_reference == pytest.approx(SW_DIAMOND_ENERGY, abs=ENERGY_TOL)
    # a vacancy costs energy: the relaxed per-atom energy is higher than the crystal's
    assert comparison.energy_difference > 0.01
    assert comparison.energy_difference == pytest.approx(
        comparison.energy_generated - comparison.energy_reference, rel=EXACT
    )
    assert "energy (eV/atom, relaxed, sw-si)" in comparison.summary()


def test_compare_asked_for_energies_without_a_potential_says_so(diamond_si, rattled):
    with pytest.raises(ValueError, match=r"Analyzer\(potential=\.\.\.\) is needed for the energ"):
        Analyzer().compare([rattled], [diamond_si], energy=True)
    assert Analyzer().compare([rattled], [diamond_si]).energy_generated is None
    skipped = Analyzer("sw-si").compare([rattled], [diamond_si], energy=False)
    assert skipped.energy_generated is None and skipped.rdf_rmsd > 0


def test_report_with_energy_and_reference_relaxes_each_frame_once(diamond_si, monkeypatch):
    """The comparison reuses the energy analysis' relaxations of the generated frames."""
    import amtoolkit.analysis.energy as energy_module

    calls = []
    relax = energy_module.relax_structure
    monkeypatch.setattr(
        energy_module, "relax_structure", lambda *a, **k: calls.append(1) or relax(*a, **k)
    )
    vacancy = (diamond_si * (2, 2, 2))[1:]
    report = Analyzer("sw-si").report([vacancy], ["energy"], reference=[diamond_si])
    assert len(calls) == 2  # the generated frame once, the reference once
    assert report.comparison.energy_generated == pytest.approx(
        report.results["energy"].mean_energy, rel=EXACT
    )
    assert report.comparison.energy_reference == pytest.approx(SW_DIAMOND_ENERGY, abs=ENERGY_TOL)


def test_report_without_energy_relaxes_nothing_for_its_comparison(diamond_si, monkeypatch):
    import amtoolkit.analysis.energy as energy_module

    calls = []
    monkeypatch.setattr(energy_module, "relax_structure", lambda *a, **k: calls.append(1))
    report = Analyzer("sw-si").report([diamond_si], ["rdf"], reference=[diamond_si])
    assert calls == [] and report.comparison.energy_generated is None
    assert report.comparison.rdf_rmsd == 0.0


def test_property_errors_delegates():
    errors = Analyzer().property_errors([10.0, 20.0], [11.0, 18.0])
    assert (errors.mae, errors.n) == (pytest.approx(1.5), 2)
    assert errors.rmse == pytest.approx(np.sqrt(2.5))
    assert errors.mape == pytest.approx(10.0)


def test_report_skips_bad_frames_and_runs_the_rest(diamond_si, rattled):
    bad = diamond_si.copy()
    bad.positions[3, 1] = np.nan
    skipped = []
    report = Analyzer().report(
        [diamond_si, bad, rattled],
        ["rdf", "coordination", "rings"],
        labels=["a", "b", "c"],
        on_skip=lambda label, reason: skipped.append((label, reason)),
    )
    assert skipped == report.skipped
    assert [label for label, _ in skipped] == ["b"]
    assert "non-finite position" in skipped[0][1]
    assert report.labels == ["a", "c"]
    np.testing.assert_allclose(
        report.results["rdf"].g, Analyzer().rdf([diamond_si, rattled]).g, atol=EXACT
    )
    assert report.composition == {"Si": 16}
    assert report.rdf_peaks[("Si", "Si")] == pytest.approx(SI_BOND, abs=RDF_BIN)
    assert set(report.results) == {"rdf", "coordination", "rings"}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["skipped"] == [{"frame": "b", "reason": skipped[0][1]}]
    assert data["coordination"]["mean"] == {"Si": 4.0}
    text = report.summary()
    assert "2 (1 skipped)" in text and "Si mean coordination" in text


def test_report_with_no_good_frame_raises(diamond_si):
    flat = diamond_si.copy()
    flat.pbc = False
    with pytest.raises(StructureError, match="not periodic"):
        Analyzer().report([flat])
    with pytest.raises(StructureError, match="no frame could be analysed; frame 0"):
        Analyzer().report([flat, flat])


def test_report_rejects_unknown_analysis_and_missing_potential(diamond_si):
    with pytest.raises(ValueError, match="unknown analysis 'bonds'"):
        Analyzer().report([diamond_si], ["bonds"])
    with pytest.raises(ValueError, match="needed for energy"):
        Analyzer().report([diamond_si], ["energy"])
    assert "energy" in ANALYSES


def test_report_per_frame_results_merge_to_set_results(diamond_si, rattled):
    analyzer = Analyzer("sw-si")
    frames = [rattled, diamond_si]
    report = analyzer.report(frames, ["energy", "elastic", "vdos"])
    energy = analyzer.energy(frames)
    np.testing.assert_allclose(report.results["energy"].energy_per_atom, energy.energy_per_atom)
    np.testing.assert_allclose(report.results["energy"].density, energy.density)
    elastic = analyzer.elastic(frames)
    np.testing.assert_allclose(report.results["elastic"].C, elastic.C, atol=1e-6)
    np.testing.assert_allclose(report.results["elastic"].shear_modulus, elastic.shear_modulus)
    vdos = analyzer.vdos(frames)
    np.testing.assert_allclose(report.results["vdos"].frequency, vdos.frequency, atol=1e-9)
    np.testing.assert_allclose(report.results["vdos"].dos, vdos.dos, atol=1e-9)
    highest = max(m.max() for m in vdos.mode_frequencies)  # the highest mode, not the grid end
    shown = re.search(r"highest mode \(THz\)\s+([-\d.]+)", report.summary())
    assert shown is not None and float(shown.group(1)) == pytest.approx(highest, abs=0.005)
    assert vdos.frequency.max() > highest + 2 * vdos.sigma


def test_report_skips_frame_with_uncovered_element(diamond_si):
    report = Analyzer("sw-si").report(
        [diamond_si, cristobalite()], ["energy"], labels=["si", "silica"]
    )
    assert report.labels == ["si"]
    assert report.skipped[0][0] == "silica"
    assert "'O' is not covered" in report.skipped[0][1]


def test_report_plot_writes_png(tmp_path, diamond_si):
    report = Analyzer().report([diamond_si], ["rdf", "adf", "rings"])
    fig = report.plot(tmp_path / "fig.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_report_plot_without_pictures_says_so(diamond_si):
    report = Analyzer().report([diamond_si], ["crystallinity"])
    with pytest.raises(ValueError, match="nothing to plot"):
        report.plot()


def test_report_and_comparison_names_stay_importable_from_analyzer():
    import amtoolkit.analyzer as facade
    from amtoolkit.analysis import compare, report

    assert facade.AnalysisReport is report.AnalysisReport
    assert facade.Comparison is compare.Comparison
    assert facade.ANALYSES == report.ANALYSES and facade.DEFAULT_ANALYSES == ("rdf", "coordination")
    assert facade.COMPARE_RDF_NBINS == 100 and facade.COMPARE_ADF_CUTOFF == 3.0


def test_facade_compare_is_the_pure_function(diamond_si, rattled):
    from amtoolkit.analysis.compare import compare

    assert Analyzer().compare(rattled, diamond_si) == compare(rattled, diamond_si)
