"""Reports: the frame loop, merging per-frame results, summary tables and the figure."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest
from ase import Atoms

from amtoolkit import examples
from amtoolkit.analysis.coordination import coordination
from amtoolkit.analysis.elastic import ElasticResult
from amtoolkit.analysis.energy import EnergyResult, density
from amtoolkit.analysis.rdf import rdf
from amtoolkit.analysis.report import (
    ANALYSES,
    REPORT_OPTIONS,
    REPORT_SQ_RMAX,
    SPREAD_NOTE,
    TETRAHEDRAL_ANGLE,
    build_report,
    first_sq_peak,
    format_table,
    mean_std,
    merge_frame_results,
    one_line,
    select_analyses,
    target_checks,
)
from amtoolkit.analysis.structure_factor import half_width, structure_factor
from amtoolkit.analysis.vdos import vdos_from_modes
from amtoolkit.errors import CoverageError, StructureError
from amtoolkit.io import read_structures

EXACT = 1e-12
UNIT_AREA_TOL = 1e-6  # trapezoid integral of a DOS broadened well inside its grid
SQ_TOL = 0.2  # S(q) of the report against the direct lattice sum at one q shell


def fake_energy(atoms: Atoms) -> EnergyResult:
    """A one-frame EnergyResult without a potential: energy = number of atoms."""
    return EnergyResult(
        energy_per_atom=np.array([float(len(atoms))]),
        density=np.array([density(atoms)]),
        pressure=np.array([0.0]),
        relaxed=False,
        n_atoms=np.array([len(atoms)]),
    )


class Recorder:
    """A `run` for build_report: real structure analyses, a fake per-frame energy."""

    def __init__(self, fail_on: int | None = None):
        self.calls: list[tuple[str, int, dict]] = []
        self.fail_on = fail_on

    def __call__(self, name, structures, **options):
        frames = [structures] if isinstance(structures, Atoms) else list(structures)
        self.calls.append((name, len(frames), options))
        if name == "energy":
            if len(frames[0]) == self.fail_on:
                raise RuntimeError("relaxation diverged\nsecond line")
            return fake_energy(frames[0])
        if name == "rdf":
            return rdf(frames)
        if name == "coordination":
            return coordination(frames, None)
        raise AssertionError(f"unexpected analysis {name}")


def no_check(atoms: Atoms) -> None:
    pass


def test_frames_run_one_by_one_and_the_set_once(diamond_si):
    frames = [diamond_si, diamond_si * (1, 1, 2), diamond_si * (1, 2, 2)]
    run = Recorder()
    report = build_report(frames, ["energy", "rdf"], run=run, check=no_check)
    assert [(name, n) for name, n, _ in run.calls] == [
        ("energy", 1),
        ("energy", 1),
        ("energy", 1),
        ("rdf", 3),
    ]
    np.testing.assert_array_equal(report.results["energy"].energy_per_atom, [8.0, 16.0, 32.0])
    np.testing.assert_array_equal(report.n_atoms, [8, 16, 32])
    np.testing.assert_allclose(report.results["rdf"].g, rdf(frames).g, atol=EXACT)
    assert report.composition == {"Si": 56}
    assert report.labels == ["frame 0", "frame 1", "frame 2"]


def test_report_options_reach_the_analysis(diamond_si):
    seen = {}

    def run(name, structures, **options):
        seen[name] = options
        return rdf(structures) if name == "rdf" else coordination(structures, None)

    build_report([diamond_si], ["coordination", "rdf"], run=run, check=no_check)
    assert seen == {"rdf": {}, "coordination": {}}
    # the report's own settings: covalent-bond angles, one S(q) resolution for every cell
    assert REPORT_OPTIONS == {"adf": {"cutoff": None}, "structure_factor": {"rmax": 20.0}}
    assert REPORT_SQ_RMAX == 20.0


def test_given_options_join_the_reports_own_for_frames_and_reference(diamond_si):
    calls = []

    def run(name, structures, **options):
        calls.append((name, options))
        return structure_factor(structures, **options)

    frames = [diamond_si * 2]
    options = {"sq": {"weighting": "neutron", "nq": 50}}
    report = build_report(
        frames, ["sq"], run=run, check=no_check, reference=frames, options=options
    )
    expected = {"rmax": REPORT_SQ_RMAX, "weighting": "neutron", "nq": 50}
    assert calls == [("structure_factor", expected)] * 2  # the frames, then the reference
    assert report.reference_results["structure_factor"].weighting == "neutron"
    assert re.search(r"^weighting +neutron$", report.summary(), re.MULTILINE)
    with pytest.raises(ValueError, match="options for 'rdf', which the report does not run"):
        build_report(frames, ["sq"], run=run, check=no_check, options={"rdf": {"rmax": 4.0}})


def test_a_measured_sq_is_compared_summarised_and_drawn(diamond_si, tmp_path):
    from amtoolkit import Analyzer
    from amtoolkit.analysis.structure_factor import MeasuredSq

    frames = [diamond_si * 2]
    computed = structure_factor(frames, rmax=REPORT_SQ_RMAX, nq=100, weighting="xray")
    measured = MeasuredSq("xrd.dat", computed.q[::2], computed.s[::2] + 0.05)
    options = {"sq": {"nq": 100, "weighting": "xray"}}
    report = Analyzer().report(frames, ["sq"], options=options, measured_sq=measured)
    assert report.sq_agreement.rmsd == pytest.approx(0.05, abs=1e-9)
    assert re.search(r"^S\(q\) RMSD +0\.0500$", report.summary(), re.MULTILINE)
    data = report.to_dict()["measured_sq"]
    assert data["label"] == "xrd.dat" and data["n_points"] == 50
    fig = report.plot(tmp_path / "sq.png")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "xrd.dat" in labels
    with pytest.raises(ValueError, match="add 'sq' to the analyses"):
        Analyzer().report(frames, ["rdf"], measured_sq=measured)
    far = MeasuredSq("far.dat", np.linspace(30.0, 40.0, 10), np.ones(10))
    with pytest.raises(ValueError, match="far.dat: 0 measured points lie in the computed q"):
        Analyzer().report(frames, ["sq"], measured_sq=far)
    # a measurement of two elements set beside a number-weighted S(q) gets a warning
    oxide = diamond_si * 2
    oxide.symbols[::2] = "O"
    with pytest.warns(UserWarning, match="a measured S\\(q\\) of O, Si .* number-weighted"):
        Analyzer().report([oxide], ["sq"], options={"sq": {"nq": 100}}, measured_sq=measured)


def test_warnings_of_a_frames_analyses_name_the_frame(diamond_si):
    import pickle

    from amtoolkit.analysis.report import FrameResults, run_frame

    def run(name, structures, **options):
        warnings.warn("relax did not reach fmax=0.01 eV/Å", RuntimeWarning, stacklevel=1)
        warnings.warn("relax did not reach fmax=0.01 eV/Å", RuntimeWarning, stacklevel=1)
        return fake_energy(structures)

    frames = [diamond_si, diamond_si * (1, 1, 2)]
    labels = ["run.extxyz[3]", "run.extxyz[4]"]
    with pytest.warns(RuntimeWarning) as caught:
        build_report(frames, ["energy"], run=run, check=no_check, labels=labels)
    assert [str(w.message) for w in caught] == [
        "run.extxyz[3]: relax did not reach fmax=0.01 eV/Å",  # each message once per frame
        "run.extxyz[4]: relax did not reach fmax=0.01 eV/Å",
    ]
    # the record travels back from a worker process
    outcome = pickle.loads(pickle.dumps(run_frame(run, [("energy", {})], diamond_si)))
    assert isinstance(outcome, FrameResults) and list(outcome) == ["energy"]
    assert outcome.raised == [(RuntimeWarning, "relax did not reach fmax=0.01 eV/Å")]


def test_failing_frame_is_skipped_with_one_line(diamond_si):
    frames = [diamond_si, diamond_si * (1, 1, 2), diamond_si * (1, 2, 2)]
    skipped = []
    report = build_report(
        frames,
        ["energy", "coordination"],
        run=Recorder(fail_on=16),
        check=no_check,
        labels=["a", "b", "c"],
        on_skip=lambda label, why: skipped.append((label, why)),
    )
    assert skipped == report.skipped == [("b", "RuntimeError: relaxation diverged")]
    assert report.labels == ["a", "c"]
    np.testing.assert_array_equal(report.results["energy"].energy_per_atom, [8.0, 32.0])
    with pytest.raises(RuntimeError, match="diverged"):
        build_report(
            frames, ["energy"], run=Recorder(fail_on=16), check=no_check, skip_errors=False
        )


def test_skip_lines_wait_for_a_frame_that_succeeds(diamond_si):
    """Every frame failing gives the one error and no skip line before it; one success
    after failures lets the held lines out, in frame order."""
    skipped = []
    frames = [diamond_si * (1, 1, 2), diamond_si * (1, 1, 2)]
    with pytest.raises(StructureError, match=r"^no frame could be analysed; frame 0: .*diverged"):
        build_report(
            frames,
            ["energy"],
            run=Recorder(fail_on=16),
            check=no_check,
            on_skip=lambda label, why: skipped.append((label, why)),
        )
    assert skipped == []
    report = build_report(
        [*frames, diamond_si],
        ["energy"],
        run=Recorder(fail_on=16),
        check=no_check,
        on_skip=lambda label, why: skipped.append((label, why)),
    )
    assert skipped == report.skipped
    assert [label for label, _ in skipped] == ["frame 0", "frame 1"]


def test_a_frame_crystallinity_fails_on_is_skipped(diamond_si):
    from amtoolkit.analysis.crystallinity import crystallinity

    def run(name, structures, **options):
        frames = [structures] if isinstance(structures, Atoms) else list(structures)
        if len(frames) == 1 and len(frames[0]) == 16:
            raise ValueError("spglib could not find the space group")
        return crystallinity(frames) if name == "crystallinity" else rdf(frames)

    skipped = []
    frames = [diamond_si, diamond_si * (1, 1, 2), diamond_si]
    report = build_report(
        frames,
        ["rdf", "crystallinity"],
        run=run,
        check=no_check,
        on_skip=lambda label, why: skipped.append((label, why)),
    )
    assert skipped == [("frame 1", "spglib could not find the space group")]
    assert report.labels == ["frame 0", "frame 2"]
    assert report.results["crystallinity"].spacegroup == ["Fd-3m", "Fd-3m"]


def test_a_frame_a_set_analysis_fails_on_is_skipped_and_named(diamond_si):
    """A set analysis (rings, network) that refuses one frame of the set: that frame is
    named and left out of every analysis, the others are measured."""
    from amtoolkit.analysis.rings import rings

    fcc = Atoms(
        "Si4",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=[3.0] * 3,
        pbc=True,
    )  # 12 neighbours: the ring search refuses it

    def run(name, structures, **options):
        frames = [structures] if isinstance(structures, Atoms) else list(structures)
        return rings(frames) if name == "rings" else coordination(frames, None)

    skipped = []
    frames = [diamond_si, fcc * (2, 2, 2), diamond_si * (1, 1, 2)]
    report = build_report(
        frames,
        ["coordination", "rings"],
        run=run,
        check=no_check,
        labels=["a", "fcc.extxyz[3]", "c"],
        on_skip=lambda label, why: skipped.append((label, why)),
    )
    assert report.labels == ["a", "c"]
    assert [label for label, _ in skipped] == [label for label, _ in report.skipped]
    assert skipped[0][0] == "fcc.extxyz[3]" and "mean coordination 12.0" in skipped[0][1]
    assert report.results["coordination"].distribution["Si"] == {4: 1.0}
    assert report.results["rings"].mean_size == pytest.approx(6.0)
    with pytest.raises(ValueError, match=r"^fcc.extxyz\[3\]: .*mean coordination 12.0"):
        build_report(
            frames,
            ["rings"],
            run=run,
            check=no_check,
            skip_errors=False,
            labels=["a", "fcc.extxyz[3]", "c"],
        )
    with pytest.raises(StructureError, match=r"^no frame could be analysed; b: .*coordination"):
        build_report([fcc * (2, 2, 2)] * 2, ["rings"], run=run, check=no_check, labels=["b", "d"])


def test_every_frame_failing_the_check_raises_the_first(diamond_si):
    def check(atoms):
        if len(atoms) == 16:
            raise CoverageError("element 'Si' is not covered")
        raise StructureError("cell is not periodic")

    run = Recorder()
    with pytest.raises(CoverageError, match=r"^no frame could be analysed; b: element 'Si'"):
        build_report(
            [diamond_si * (1, 1, 2), diamond_si], ["rdf"], run=run, check=check, labels=["b", "a"]
        )
    with pytest.raises(StructureError, match=r"^a: cell is not periodic$"):
        build_report([diamond_si], ["rdf"], run=run, check=check, labels=["a"])
    assert run.calls == []  # nothing ran


def test_bad_arguments(diamond_si):
    with pytest.raises(ValueError, match="unknown analysis 'bonds'; known: rdf, adf"):
        select_analyses(["rdf", "bonds"])
    assert select_analyses(["vdos", "rdf"]) == ["rdf", "vdos"]  # ANALYSES order
    assert select_analyses(["sq", "rdf"]) == ["rdf", "structure_factor"]  # the CLI flag name
    assert select_analyses("rdf") == ["rdf"]  # one name, not its letters
    assert set(ANALYSES) >= {"rdf", "energy", "vdos"}
    with pytest.raises(ValueError, match="1 labels for 2 frames"):
        build_report(
            [diamond_si, diamond_si], ["rdf"], run=Recorder(), check=no_check, labels=["x"]
        )


def test_merge_energy_equals_the_set(diamond_si):
    frames = [diamond_si, diamond_si * (1, 1, 3)]
    merged = merge_frame_results("energy", [fake_energy(a) for a in frames])
    np.testing.assert_array_equal(merged.energy_per_atom, [8.0, 24.0])
    np.testing.assert_array_equal(merged.n_atoms, [8, 24])
    assert merged.mean_energy == pytest.approx(16.0, rel=EXACT)


def test_merge_crystallinity_joins_the_frames():
    from amtoolkit.analysis.crystallinity import CrystallinityResult

    one = CrystallinityResult(spacegroup=["Fd-3m"], number=[227], crystalline=[True], symprec=0.1)
    two = CrystallinityResult(spacegroup=["P1"], number=[1], crystalline=[False], symprec=0.1)
    merged = merge_frame_results("crystallinity", [one, two])
    assert merged.spacegroup == ["Fd-3m", "P1"] and merged.number == [227, 1]
    assert merged.crystalline_fraction == 0.5


def test_an_adf_without_angles_has_no_most_likely_angle():
    from amtoolkit.analyzer import Analyzer

    lone = Atoms("Si", cell=[6.0] * 3, pbc=True)
    report = Analyzer().report(lone, "adf")
    assert re.search(r"most likely angle \(deg\) +n/a \(no angles\)", report.summary())


def test_most_likely_angle_is_the_peaks_not_a_noisy_bins():
    from amtoolkit.analysis.report import _smoothed_mode

    theta = np.arange(180) + 0.5  # 1° bins
    peak = np.exp(-0.5 * ((theta - 109.4) / 8.0) ** 2)
    noisy = peak * (1 + 0.04 * (-1.0) ** np.arange(180))  # bin-to-bin counting noise
    noisy[106] *= 1.12  # and one lucky bin, 3° off
    assert theta[np.argmax(noisy)] == 106.5  # the raw argmax is noise
    assert _smoothed_mode(theta, noisy) == pytest.approx(109.4, abs=0.6)
    sharp = np.zeros(180)
    sharp[109] = 1.0  # diamond: every angle in the 109-110° bin
    assert _smoothed_mode(theta, sharp) == pytest.approx(109.5, abs=1e-9)


def test_merge_elastic_recomputes_the_mean_stiffness():
    rng = np.random.default_rng(3)

    def one(C):
        return ElasticResult(
            C=C,
            C_per_structure=C[None],
            C_error=np.zeros((1, 6, 6)),
            bulk_modulus=np.array([C[0, 0]]),
            shear_modulus=np.array([C[3, 3]]),
            youngs_modulus=np.array([1.0]),
            poisson_ratio=np.array([0.2]),
            residual=np.array([0.01]),
            relaxed=True,
            relaxed_ions=True,
            delta=0.005,
            n_steps=5,
        )

    stiffnesses = rng.uniform(10.0, 100.0, size=(3, 6, 6))
    merged = merge_frame_results("elastic", [one(C) for C in stiffnesses])
    assert merged.unconverged is None  # not recorded in the frames: not made up
    short = [
        dataclasses.replace(one(C), unconverged=np.array([k])) for k, C in enumerate(stiffnesses)
    ]
    assert merge_frame_results("elastic", short).unconverged.tolist() == [0, 1, 2]
    np.testing.assert_allclose(merged.C, stiffnesses.mean(axis=0), rtol=EXACT)
    np.testing.assert_array_equal(merged.C_per_structure, stiffnesses)
    np.testing.assert_array_equal(merged.shear_modulus, stiffnesses[:, 3, 3])
    assert merged.C_per_structure.shape == (3, 6, 6)


def test_merge_vdos_equals_the_set_on_one_grid():
    rng = np.random.default_rng(7)
    modes = [np.sort(rng.uniform(0.0, 15.0, 24)), np.sort(rng.uniform(2.0, 20.0, 48))]
    frames = [vdos_from_modes([m], sigma=0.3, nbins=300) for m in modes]
    merged = merge_frame_results("vdos", frames)
    whole = vdos_from_modes(modes, sigma=0.3, nbins=300)
    np.testing.assert_allclose(merged.frequency, whole.frequency, atol=EXACT)
    np.testing.assert_allclose(merged.dos, whole.dos, atol=EXACT)
    assert merged.per_structure.shape == (2, 300)
    assert np.trapezoid(merged.dos, merged.frequency) == pytest.approx(1.0, abs=UNIT_AREA_TOL)
    with pytest.raises(ValueError, match="cannot combine per-frame results of 'rdf'"):
        merge_frame_results("rdf", [frames[0], frames[1]])


def test_text_helpers():
    assert mean_std([1.0, 3.0], "{:.1f}") == "2.0 +- 1.0"
    assert mean_std([2.5], "{:.2f}") == "2.50"
    assert mean_std([3000, 3000], "{:.0f}") == "3000"  # no "+- 0" for equal values
    assert format_table("title", [("a", "1"), ("longer", "2")]).splitlines() == [
        "title",
        "-----",
        "a       1",
        "longer  2",
    ]
    assert one_line(StructureError("cell has zero volume\ndetails")) == "cell has zero volume"
    assert one_line(RuntimeError("boom")) == "RuntimeError: boom"
    assert one_line(KeyError()) == "KeyError"


def test_summary_has_a_section_per_analysis(diamond_si):
    report = build_report([diamond_si], ["coordination", "rdf"], run=Recorder(), check=no_check)
    text = report.summary()
    assert text.index("radial distribution function") < text.index("coordination\n")
    assert "Si mean coordination  4.000  (4: 1.000)" in text
    assert "density (g/cm3)           2.329" in text
    assert SPREAD_NOTE not in text  # one frame: no spread to explain


def test_a_summary_with_a_spread_says_what_it_is(diamond_si):
    frames = [diamond_si, diamond_si[:-1]]
    text = build_report(frames, ["rdf"], run=Recorder(), check=no_check).summary()
    assert " +- " in text and text.endswith(SPREAD_NOTE)


def test_notes_name_each_measured_frame_and_each_set_wide_stage(diamond_si, monkeypatch):
    from amtoolkit.analysis import report as report_module

    frames = [diamond_si, diamond_si * (2, 1, 1), diamond_si]
    labels = ["a[0]", "a[1]", "b[0]"]
    lines: list[str] = []
    monkeypatch.setattr(report_module, "STAGE_NOTE_ATOMS", 30)  # 32 atoms: a "large" set
    run = Recorder(fail_on=16)
    build_report(frames, ["energy", "rdf"], run=run, check=no_check, labels=labels,
                 note=lines.append)  # fmt: skip
    assert lines == [  # the failed frame leaves 16 atoms, under 30: no stage note
        "frame 1 of 3 measured: a[0]",
        "frame 2 of 3 measured (failed): a[1]",
        "frame 3 of 3 measured: b[0]",
    ]
    quiet: list[str] = []
    build_report(frames, ["rdf"], run=Recorder(), check=no_check, note=quiet.append)
    assert quiet == ["radial distribution function of 3 frames (32 atoms)"]  # no frame loop
    monkeypatch.setattr(report_module, "STAGE_NOTE_ATOMS", 32)
    build_report(frames, ["rdf"], run=Recorder(), check=no_check, note=quiet.append)
    assert len(quiet) == 1  # a small set: no stage note


def test_frames_of_different_sizes_show_their_range(diamond_si):
    frames = [diamond_si, diamond_si[:-1]]
    report = build_report(frames, ["rdf"], run=Recorder(), check=no_check)
    assert "atoms per frame           7-8 (mean 7.5)" in report.summary()
    assert report._figure_title().startswith("2 frames of 7-8 (mean 7.5) atoms")


def test_figure_title_legends_and_reference_lines(tmp_path):
    from amtoolkit.analyzer import Analyzer

    a_si = read_structures(examples.path("a-si"))
    report = Analyzer().report(a_si, ["rdf", "adf", "coordination"], labels=["a-si.extxyz[0]"])
    fig = report.plot(tmp_path / "a.png")
    assert fig.get_suptitle() == "a-si.extxyz[0]: Si216, density 2.426 g/cm³"
    rdf_ax, adf_ax, cn_ax = [ax for ax in fig.axes if ax.get_visible()]
    assert rdf_ax.get_legend() is None  # one element: "total" alone says nothing
    assert any(np.allclose(line.get_xdata(), TETRAHEDRAL_ANGLE) for line in adf_ax.get_lines())
    ticks = [t for t in cn_ax.get_xticks() if cn_ax.get_xlim()[0] <= t <= cn_ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # whole coordination numbers


def direct_structure_factor(atoms: Atoms, qlow: float, qhigh: float) -> float:
    """Mean |sum_j exp(i q.r_j)|^2 / N over the cell's reciprocal lattice, qlow <= |q| < qhigh."""
    n = int(np.ceil(qhigh * atoms.cell.lengths().max() / (2.0 * np.pi)))
    grid = np.arange(-n, n + 1)
    hkl = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    q = 2.0 * np.pi * hkl @ np.linalg.inv(atoms.cell.array).T  # [n_vectors, 3] 1/Å
    norm = np.linalg.norm(q, axis=1)
    q = q[(norm >= qlow) & (norm < qhigh)]
    amplitude = np.exp(1j * atoms.positions @ q.T).sum(axis=0)  # [n_vectors]
    return float(np.mean(np.abs(amplitude) ** 2) / len(atoms))


def test_report_structure_factor_resolves_the_first_peak_of_small_cells():
    """Half the width of a 216-atom cell (8 Å) smears the a-Si peak at 2.0 1/Å away."""
    from amtoolkit.analyzer import Analyzer

    a_si = read_structures(examples.path("a-si"))
    assert half_width(a_si[0]) < REPORT_SQ_RMAX / 2
    exact = direct_structure_factor(a_si[0], 2.0, 2.1)
    in_report = Analyzer().report(a_si, ["structure_factor"]).results["structure_factor"]
    default = structure_factor(a_si)
    assert in_report.rmax == REPORT_SQ_RMAX
    assert exact > 1.3  # the peak is there
    report_error = abs(float(np.interp(2.05, in_report.q, in_report.s)) - exact)
    default_error = abs(float(np.interp(2.05, default.q, default.s)) - exact)
    assert report_error < SQ_TOL < default_error


def test_report_is_frozen_and_serialises(diamond_si):
    report = build_report([diamond_si], ["rdf"], run=Recorder(), check=no_check)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.labels = []
    data = report.to_dict()
    assert data["composition"] == {"Si": 8} and data["rdf_first_peaks"]["Si-Si"] > 2.3
    assert "comparison" not in data


def test_first_sq_peak_is_the_first_maximum_above_one():
    q = np.linspace(0.05, 20.0, 400)
    fsdp, main = 1.6, 5.0  # 1/Å, a silica-like S(q): a lower first peak, a higher main one
    s = 1.0 + 0.3 * np.exp(-((q - fsdp) ** 2) / 0.05) + 0.6 * np.exp(-((q - main) ** 2) / 0.1)
    s -= 0.8 * np.exp(-q / 0.5)  # low-q dip below 1, with no maximum above 1
    assert first_sq_peak(q, s) == pytest.approx(fsdp, abs=q[1] - q[0])
    assert first_sq_peak(q, np.full_like(q, 0.9)) is None


def test_summary_names_the_first_sq_peak_of_a_si():
    from amtoolkit.analyzer import Analyzer

    report = Analyzer().report(examples.load("a-si"), ["structure_factor"])
    text = report.summary()
    first = float(text.split("first peak q (1/A)")[1].split()[0])
    main = float(text.split("main peak q (1/A)")[1].split()[0])
    assert first == pytest.approx(2.0, abs=0.1)  # a-Si: 2.0 1/Å, main peak near 3.5
    assert main > first


# ------------------------------------------------------------ reference and targets


def test_reference_set_is_analysed_and_drawn_side_by_side(diamond_si, tmp_path):
    from amtoolkit.analyzer import Analyzer

    rattled = diamond_si * (2, 1, 1)
    rattled.rattle(0.02, seed=0)
    report = Analyzer().report(
        [diamond_si], ["rdf", "coordination", "rings", "crystallinity"], reference=[rattled]
    )
    assert set(report.reference_results) == {"rdf", "coordination", "rings"}  # structural
    assert report.reference_results["coordination"].mean == {"Si": 4.0}
    text = report.summary()
    assert "structure vs reference" in text
    assert re.search(r"Si mean coordination +4.000 vs 4.000", text)
    assert "mean ring size" in text and "6.000 vs 6.000" in text
    assert report.to_dict()["reference"]["rings"]["mean_size"] == pytest.approx(6.0)
    fig = report.plot(tmp_path / "r.png")
    rdf_ax = next(ax for ax in fig.axes if ax.get_title() == "radial distribution function")
    reference = [line for line in rdf_ax.get_lines() if line.get_label() == "reference"]
    assert len(reference) == 1
    np.testing.assert_allclose(reference[0].get_ydata(), report.reference_results["rdf"].g)


def test_measured_properties_are_checked_against_the_frames_targets(diamond_si):
    from amtoolkit.analyzer import Analyzer

    frames = [diamond_si.copy(), diamond_si.copy()]
    frames[0].info.update(target_density=2.0, target_ring_size=7.0)
    frames[1].info.update(target_density=2.5)  # no ring target: that pair is left out
    report = Analyzer().report(frames, ["rings"])
    errors = report.target_errors
    assert set(errors) == {"density", "ring_size"}
    rho = density(diamond_si)
    assert errors["density"].mae == pytest.approx(((rho - 2.0) + (2.5 - rho)) / 2)
    assert (errors["ring_size"].mae, errors["ring_size"].n) == (pytest.approx(1.0), 1)
    text = report.summary()
    assert "measured vs target" in text
    assert re.search(r"\nring_size +MAE 1, RMSE 1, MAPE 14.3% \(n 1\)", text)
    assert report.to_dict()["target_errors"]["ring_size"]["n"] == 1
    assert report.to_dict()["targets"]["density"]["target"] == [2.0, 2.5]
    fig = report.plot()
    panel = next(ax for ax in fig.axes if ax.get_title() == "density: measured vs target")
    points = panel.get_lines()[0]
    np.testing.assert_allclose(points.get_xdata(), [2.0, 2.5])
    np.testing.assert_allclose(points.get_ydata(), [rho, rho])


def test_target_errors_read_the_elastic_and_energy_results(diamond_si):
    from types import SimpleNamespace

    frames = [diamond_si.copy() for _ in range(2)]
    for atoms, g in zip(frames, (40.0, 50.0), strict=True):
        atoms.info.update(target_shear_modulus=g, target_relaxed_energy=-4.3, target_hardness=1)
    results = {
        "elastic": SimpleNamespace(shear_modulus=np.array([44.0, 44.0])),
        "energy": SimpleNamespace(energy_per_atom=np.array([-4.3, -4.2])),
    }
    checks = target_checks(frames, results, np.array([2.3, 2.3]))
    assert set(checks) == {"shear_modulus", "relaxed_energy"}  # nothing measures hardness
    assert checks["shear_modulus"].errors.mae == pytest.approx(5.0)
    np.testing.assert_array_equal(checks["shear_modulus"].target, [40.0, 50.0])
    assert checks["relaxed_energy"].errors.mae == pytest.approx(0.05)


def test_elastic_targets_note_moduli_measured_off_the_label_setting():
    """Elastic targets are labels made at the potential's label setting (tersoff-sio2:
    fmax 1e-2); moduli measured at another fmax are said not to compare with them."""
    from types import SimpleNamespace

    from amtoolkit.analysis.report import AnalysisReport

    def rows(potential, fmax, targets=("shear_modulus",)):
        report = SimpleNamespace(
            results={"elastic": SimpleNamespace(fmax=fmax)},
            potential=potential,
            targets=dict.fromkeys(targets),
            label_setting=None,
        )
        return AnalysisReport._label_scale_rows(report)

    (note,) = rows("tersoff-sio2", 3e-4)
    assert "labels relaxed to fmax 0.01 eV/Å (the tersoff-sio2 label setting)" in note[1]
    assert rows("tersoff-sio2", 1e-2) == []  # measured as the labels were
    assert rows("sw-si", 1e-2) == []  # no labels made with it
    assert rows("tersoff-sio2", 3e-4, targets=("density",)) == []  # no elastic target


def test_reference_rings_are_counted_in_the_frames_atoms(diamond_si):
    from ase.spacegroup import crystal

    from amtoolkit.analyzer import Analyzer

    quartz = crystal(
        ["Si", "O"],
        basis=[(0.4697, 0.0, 2 / 3), (0.4135, 0.2669, 0.1191 + 2 / 3)],
        spacegroup=154,
        cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
    )
    analyzer = Analyzer()
    with pytest.warns(UserWarning, match="compare different compositions"):
        report = analyzer.report(diamond_si, ["rings"], reference=[quartz])
    assert report.results["rings"].count_species is None
    assert report.reference_results["rings"].count_species is None  # not Si, as alone
    with pytest.warns(UserWarning, match="compare different compositions"):
        with pytest.warns(UserWarning, match="reference: no ring-size comparison"):
            report = analyzer.report(quartz, ["rings", "rdf"], reference=[diamond_si])
    assert report.results["rings"].count_species == ("Si",)
    assert "rings" not in report.reference_results  # Si-O rings do not exist in Si
    assert "rdf" in report.reference_results
    assert report.summary().count("mean ring size") == 1  # the frames' own, no "vs"


def test_energy_and_elastic_results_draw_their_per_structure_values():
    energy = EnergyResult(
        energy_per_atom=np.array([-4.10, -4.05]),
        density=np.array([2.30, 2.28]),
        pressure=np.zeros(2),
        relaxed=True,
        n_atoms=np.array([216, 216]),
    )
    ax = energy.plot()
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, [2.30, 2.28])
    np.testing.assert_array_equal(y, [-4.10, -4.05])
    assert ax.get_ylabel() == "energy (eV/atom)"
    C = np.diag([100.0, 100.0, 100.0, 40.0, 40.0, 40.0])
    C[:3, :3] += 20.0 * (1 - np.eye(3))
    elastic = ElasticResult(
        C=C,
        C_per_structure=np.stack([C, C]),
        C_error=np.zeros((2, 6, 6)),
        bulk_modulus=np.array([46.7, 46.7]),
        shear_modulus=np.array([40.0, 42.0]),
        youngs_modulus=np.array([90.0, 94.0]),
        poisson_ratio=np.array([0.12, 0.12]),
        residual=np.zeros(2),
        relaxed=True,
        relaxed_ions=True,
        delta=0.01,
        n_steps=3,
    )
    ax = elastic.plot()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["K", "G", "E"]
    np.testing.assert_allclose(ax.lines[1].get_data()[1], [40.0, 42.0])  # G of each
    assert ax.patches[1].get_height() == pytest.approx(41.0)  # mean G


def test_reference_rows_compare_the_first_sharp_diffraction_peaks():
    from amtoolkit.analysis.report import _reference_rows
    from amtoolkit.analysis.structure_factor import StructureFactorResult

    q = np.linspace(0.05, 10.0, 200)

    def sq(first: float, height: float) -> StructureFactorResult:
        s = 1.0 + (height - 1.0) * np.exp(-((q - first) ** 2) / 0.02)
        s += 0.8 * np.exp(-((q - 5.0) ** 2) / 0.1)  # the main peak, higher
        return StructureFactorResult(q=q, s=s, per_structure=s[None], rmax=20.0, window=True)

    rows = dict(
        _reference_rows({"structure_factor": sq(1.6, 1.3)}, {"structure_factor": sq(1.5, 1.4)})
    )
    assert rows["S(q) main peak q (1/A)"] == "5.000 vs 5.000"
    first = rows["S(q) first peak q (1/A)"].split(" vs ")
    assert [float(x) for x in first] == pytest.approx([1.6, 1.5], abs=0.03)
    heights = [float(x) for x in rows["S(q) at first peak"].split(" vs ")]
    assert heights == pytest.approx([1.3, 1.4], abs=0.02)
    # a-Si-like curves whose first peak is the main one get no first-peak row
    single = dict(
        _reference_rows({"structure_factor": sq(5.0, 1.0)}, {"structure_factor": sq(5.0, 1.0)})
    )
    assert "S(q) first peak q (1/A)" not in single


def test_measured_points_beyond_the_computed_range_are_named(diamond_si):
    from amtoolkit import Analyzer
    from amtoolkit.analysis.structure_factor import MeasuredSq

    per_nm = MeasuredSq("per-nm.dat", np.linspace(5.0, 200.0, 100), np.ones(100))
    with pytest.warns(UserWarning, match=r"per-nm.dat: 92 of 100 measured points lie outside"):
        Analyzer().report([diamond_si * 2], ["sq"], measured_sq=per_nm)


def test_main_peaks_that_are_different_peaks_are_shown_as_they_are():
    """Each set's main peak is its own tallest; when the two are different peaks (the FSDP
    of one, the principal peak of the other) the reference's peak nearest the frames' main
    one is added, and the first sharp diffraction peaks are compared."""
    from amtoolkit.analysis.report import _reference_rows
    from amtoolkit.analysis.structure_factor import StructureFactorResult

    q = np.linspace(0.05, 10.0, 200)

    def sq(first: float, main: float) -> StructureFactorResult:
        s = 1.0 + (first - 1.0) * np.exp(-((q - 1.6) ** 2) / 0.02)
        s += (main - 1.0) * np.exp(-((q - 5.0) ** 2) / 0.1)
        return StructureFactorResult(q=q, s=s, per_structure=s[None], rmax=20.0, window=True)

    def rows(frames: StructureFactorResult, reference: StructureFactorResult) -> dict:
        return dict(_reference_rows({"structure_factor": frames}, {"structure_factor": reference}))

    # the reference's tallest peak is its FSDP; the frames' is the principal peak
    got = rows(sq(1.3, 1.6), sq(1.7, 1.5))
    assert got["S(q) main peak q (1/A)"] == "5.000 vs 1.600"
    assert got["reference S(q) peak nearest the frames' main (1/A)"] == "5.000"
    assert got["S(q) first peak q (1/A)"] == "1.600 vs 1.600"
    # frames with only an FSDP-like main peak against a reference with both: no row may
    # read as a perfect match of two different peaks
    got = rows(sq(1.7, 1.0), sq(1.3, 1.6))
    assert got["S(q) main peak q (1/A)"] == "1.600 vs 5.000"
    assert got["reference S(q) peak nearest the frames' main (1/A)"] == "1.600"
    assert got["S(q) at first peak"] == "1.700 vs 1.300"
    # the same peak in both: one row, no nearest-peak row
    same = rows(sq(1.3, 1.6), sq(1.2, 1.5))
    assert "reference S(q) peak nearest the frames' main (1/A)" not in same


def test_the_elastic_summary_notes_cells_far_from_isotropic():
    from types import SimpleNamespace

    from amtoolkit.analysis.report import _elastic_rows

    def result(cubic_nu: float, hill_nu: float):
        one = np.array([1.0])
        return SimpleNamespace(
            bulk_modulus=45.8 * one, shear_modulus=31.3 * one, youngs_modulus=59.1 * one,
            poisson_ratio=cubic_nu * one, residual=0.1 * one, unconverged=None,
            hill={"bulk_modulus": one, "shear_modulus": one, "poisson_ratio": hill_nu * one},
            method="strain", relaxed_ions=True, fmax=1e-4, n_steps=5, delta=0.005,
            unstable=np.array([False]),
        )  # fmt: skip

    assert _elastic_rows(result(-0.048, 0.240))[-1][0] == "note"
    assert all(name != "note" for name, _ in _elastic_rows(result(0.356, 0.402)))


def test_elastic_targets_of_hill_labels_are_checked_against_hill_moduli(diamond_si):
    from amtoolkit import Analyzer

    frames = [diamond_si.copy(), diamond_si.copy()]
    for seed, atoms in enumerate(frames):
        atoms.rattle(0.05, seed=seed)
        atoms.info.update(
            target_shear_modulus=60.0, label_moduli="hill", label_fmax=1e-3, label_elastic_steps=3
        )
    report = Analyzer("sw-si").report(frames, ["elastic"], options={"elastic": {"fmax": 1e-3}})
    check = report.targets["shear_modulus"]
    np.testing.assert_allclose(check.measured, report.results["elastic"].hill["shear_modulus"])
    assert not np.allclose(check.measured, report.results["elastic"].shear_modulus)  # cubic
    summary = report.summary()
    assert "Voigt-Reuss-Hill averages, as the model's labels" in summary
    assert "another scale" not in summary  # measured at the labels' fmax
    looser = Analyzer("sw-si").report(frames, ["elastic"], options={"elastic": {"fmax": 1e-2}})
    assert "labels relaxed to fmax 0.001 eV/Å (the model's training labels)" in looser.summary()
