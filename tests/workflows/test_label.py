"""Labelling one's own structures: the melt-quench labels, resume, bad input, the CLI."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from click.testing import CliRunner

from amtoolkit.analysis._structures import frame_digest
from amtoolkit.cli import main
from amtoolkit.data import Dataset
from amtoolkit.workflows import WorkflowError, label_dataset, labels_of
from amtoolkit.workflows.label import progress_path
from tests.analysis.test_coordination import beta_cristobalite

SW_DIAMOND_ENERGY = -4.3366  # eV/atom, Stillinger-Weber diamond Si


def rattled_si(seed: int):
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_labels_are_the_melt_quench_labels(tmp_path):
    frames = [rattled_si(0), rattled_si(1)]
    ds = label_dataset(
        Dataset.from_atoms(frames), tmp_path / "si.h5", potential="sw-si", elastic=True,
        progress=False, command="test",
    )  # fmt: skip
    assert set(ds.property_names) >= {"density", "relaxed_energy", "shear_modulus"}
    np.testing.assert_allclose(ds.properties["relaxed_energy"], SW_DIAMOND_ENERGY, atol=1e-3)
    direct = labels_of(frames[1], "sw-si", elastic=True)
    for name, value in direct.items():
        assert ds.properties[name][1] == pytest.approx(value, rel=1e-6)
    assert ds.provenance["labels"][-1]["how"].startswith("test (amtoolkit.workflows")
    assert not progress_path(tmp_path / "si.h5").exists()  # removed once written


def test_unconverged_relaxations_are_warned_and_recorded(tmp_path, monkeypatch, caplog):
    """A frame whose relaxation stops short of fmax is warned about, and its count is
    kept per frame in the provenance, which ``amtool dataset info`` reports, as for a
    `make_dataset` run."""
    import amtoolkit.analysis.energy as energy_module
    from amtoolkit.data.summary import summarize
    from amtoolkit.potentials import relax

    def few_steps(atoms, calculator, *, fmax=0.01, cell=True):  # a relaxation that stalls
        relaxed = relax(atoms, calculator, fmax=fmax, cell=cell, steps=2)
        relaxed.calc = calculator
        return relaxed

    monkeypatch.setattr(energy_module, "relax_structure", few_steps)
    frames = [rattled_si(0), bulk("Si", "diamond", a=5.431, cubic=True)]  # 1: at its minimum
    with caplog.at_level("WARNING", logger="amtoolkit.workflows"):
        ds = label_dataset(Dataset.from_atoms(frames), tmp_path / "u.h5", potential="sw-si",
                           progress=False, command="test")  # fmt: skip
    short = [r.getMessage() for r in caplog.records if "step limit" in r.getMessage()]
    assert len(short) == 1 and short[0].startswith("frame 0: 1 relaxation(s) stopped")
    samples = ds.provenance["labels"][-1]["samples"]
    assert [(s["index"], s["unconverged_relaxations"]) for s in samples] == [(0, 1), (1, 0)]
    assert re.search(r"unconverged relaxations +in 1 samples \(0\) of these labels",
                     summarize(ds).table())  # fmt: skip


def test_li_fraction_is_labelled_for_sets_holding_li(tmp_path):
    glass = beta_cristobalite()
    glass.symbols[:2] = "Li"  # 2 of 24 atoms
    ds = label_dataset(
        Dataset.from_atoms([glass, beta_cristobalite()]), tmp_path / "li.h5", progress=False
    )
    np.testing.assert_allclose(ds.properties["li_fraction"], [2 / len(glass), 0.0])
    plain = label_dataset(Dataset.from_atoms([rattled_si(0)]), tmp_path / "si.h5", progress=False)
    assert "li_fraction" not in plain.property_names  # no Li anywhere: no column


def test_elastic_labels_equal_what_analyze_measures(tmp_path):
    """The labels and ``amtool analyze --elastic`` use the potential's elastic settings,
    so a model trained on labels is scored on the same scale."""
    from amtoolkit.analyzer import Analyzer

    atoms = rattled_si(3) * (2, 1, 1)
    atoms.rattle(0.15, seed=4)
    labels = labels_of(atoms, "sw-si", elastic=True)
    analysed = Analyzer("sw-si").elastic(atoms)
    for name in ("shear_modulus", "bulk_modulus", "poisson_ratio"):
        assert labels[name] == pytest.approx(float(getattr(analysed, name)[0]), rel=1e-6)
    # the energy label is the melt-quench one (fmax 0.01), with or without the moduli
    assert labels["relaxed_energy"] == labels_of(atoms, "sw-si")["relaxed_energy"]


def test_rings_in_si_atoms_for_silica_and_in_parallel(tmp_path):
    frames = [beta_cristobalite(), beta_cristobalite()]
    serial = label_dataset(frames_set := Dataset.from_atoms(frames), tmp_path / "a.h5",
                           rings=True, progress=False)  # fmt: skip
    pooled = label_dataset(frames_set, tmp_path / "b.h5", rings=True, workers=2, progress=False)
    np.testing.assert_array_equal(serial.properties["ring_size"], [6.0, 6.0])  # 6 Si a ring
    for name in serial.property_names:
        np.testing.assert_array_equal(serial.properties[name], pooled.properties[name])


def test_resume_keeps_measured_frames_and_drops_a_cut_line(tmp_path):
    source = Dataset.from_atoms([beta_cristobalite() for _ in range(3)])
    out = tmp_path / "r.h5"
    journal = progress_path(out)
    options = {"potential": None, "elastic": False, "rings": True, "frames": 3}
    journal.write_text(
        json.dumps({"options": options}) + "\n"
        + json.dumps({"frame": 1, "digest": frame_digest(beta_cristobalite()),
                      "labels": {"density": 9.0, "ring_size": 9.0},
                      "notes": {"unconverged_relaxations": 2}}) + "\n"
        + '{"frame": 2, "lab'  # a kill in the middle of a line
    )  # fmt: skip
    with pytest.raises(
        WorkflowError, match="r.h5.labels.jsonl exists: an unfinished run .* resume it"
    ):
        label_dataset(source, out, rings=True, progress=False)
    ds = label_dataset(source, out, rings=True, resume=True, progress=False)
    np.testing.assert_array_equal(ds.properties["ring_size"], [6.0, 9.0, 6.0])  # 1 not redone
    assert ds.provenance["labels"][-1]["samples"][0]["unconverged_relaxations"] == 2  # kept
    progress_path(tmp_path / "r2.h5").write_text(json.dumps({"options": options}) + "\n")
    with pytest.raises(WorkflowError, match="cannot resume .*delete it to start afresh"):
        label_dataset(source, tmp_path / "r2.h5", rings=False, resume=True, progress=False)


def test_bad_input_is_one_line(tmp_path):
    source = Dataset.from_atoms([rattled_si(0)])
    with pytest.raises(WorkflowError, match="x.xyz: the labelled dataset is HDF5"):
        label_dataset(source, tmp_path / "x.xyz", progress=False)
    with pytest.raises(WorkflowError, match="elastic moduli need a classical potential"):
        label_dataset(source, tmp_path / "x.h5", elastic=True, progress=False)
    with pytest.raises(WorkflowError, match="'O'"):
        label_dataset(Dataset.from_atoms([beta_cristobalite()]), tmp_path / "y.h5",
                      potential="sw-si", progress=False)  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_cli_labels_an_extxyz(tmp_path):
    path = tmp_path / "glass.extxyz"
    beta_cristobalite().write(path)
    out = tmp_path / "glass.h5"
    result = CliRunner().invoke(main, ["dataset", "label", str(path), "--rings", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote 1 labelled structure to {out} (means: density" in result.output
    assert Dataset.from_hdf5(out).properties["ring_size"][0] == 6.0
    again = CliRunner().invoke(main, ["dataset", "label", str(path), "--rings", "-o", str(out)])
    assert again.exit_code == 2  # a finished run: no resume to offer
    assert "exists (a finished run, or another file): choose another output" in again.output


def test_cli_labels_several_files_in_order_and_warns_in_its_own_lines(tmp_path):
    paths = []
    for k, atoms in enumerate([beta_cristobalite(), rattled_si(0), beta_cristobalite()]):
        paths.append(tmp_path / f"part{k}.extxyz")
        atoms.write(paths[-1])
    out = tmp_path / "all.h5"
    args = ["dataset", "label", *map(str, paths), "--rings", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 labelled structures" in result.output
    labelled = Dataset.from_hdf5(out)
    assert labelled[1].get_chemical_formula() == "Si8"
    np.testing.assert_array_equal(labelled.properties["ring_size"], [6.0, 6.0, 6.0])
    # a warning amtoolkit logs (here: a frame whose labels could not be measured) is a line
    lonely = tmp_path / "gas.extxyz"
    Atoms("Si", cell=[20.0] * 3, pbc=True).write(lonely)
    result = CliRunner().invoke(main, ["dataset", "label", str(lonely), "--rings", "-o",
                                       str(tmp_path / "gas.h5")])  # fmt: skip
    assert "amtool: warning: frame 0" in result.output, result.output


def test_frames_no_label_fits_are_refused_before_any_work(tmp_path):
    open_cell = rattled_si(0)
    open_cell.pbc = False
    with pytest.raises(WorkflowError, match=r"a Dataset\[1\]: cell is not periodic"):
        label_dataset(Dataset.from_atoms([rattled_si(1), open_cell]), tmp_path / "o.h5")
    with pytest.raises(WorkflowError, match=r"a Dataset\[0\]: .* not neutral .* mean nothing"):
        label_dataset(Dataset.from_atoms([rattled_si(1)]), tmp_path / "o.h5", potential="bmp-glass")
    assert not list(tmp_path.iterdir())  # nothing written


def test_resume_onto_a_finished_or_foreign_output_is_refused(tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"not ours")
    with pytest.raises(WorkflowError, match="exists without o.h5.labels.jsonl: nothing to resume"):
        label_dataset(Dataset.from_atoms([rattled_si(0)]), out, resume=True, progress=False)
    assert out.read_bytes() == b"not ours"  # was replaced


def _interrupted_after(monkeypatch, n_frames: int) -> None:
    """Make the next labelling run stop, as a kill would, after `n_frames` frames."""
    import amtoolkit.workflows.label as label_module

    measured = []
    real = label_module.labels_of

    def stop_after(*args, **kwargs):
        if len(measured) == n_frames:
            raise KeyboardInterrupt
        measured.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(label_module, "labels_of", stop_after)


def test_resume_with_other_frames_is_refused_naming_the_first(tmp_path, monkeypatch):
    ref = Dataset.from_atoms([rattled_si(k) for k in range(4)])
    other = Dataset.from_atoms([rattled_si(0), rattled_si(1), rattled_si(12), rattled_si(13)])
    out = tmp_path / "x.h5"
    _interrupted_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(ref, out, rings=True, progress=False)
    monkeypatch.undo()
    before = progress_path(out).read_text()
    with pytest.raises(WorkflowError, match=r"cannot resume .*x.h5.labels.jsonl: frame 2 of "):
        label_dataset(other, out, rings=True, resume=True, progress=False)
    assert progress_path(out).read_text() == before and not out.exists()
    same_so_far = Dataset.from_atoms([rattled_si(0), rattled_si(1), rattled_si(2), rattled_si(9)])
    ds = label_dataset(same_so_far, out, rings=True, resume=True, progress=False)
    assert len(ds) == 4  # the measured frames are the same: their labels are kept


@pytest.mark.parametrize("journal_text", ["", '{"opti'])
def test_a_journal_without_its_options_line_gets_one(tmp_path, journal_text):
    source = Dataset.from_atoms([beta_cristobalite(), beta_cristobalite()])
    out = tmp_path / "o.h5"
    progress_path(out).write_text(journal_text)  # a kill right after creating it
    first = progress_path(out)
    with pytest.raises(KeyboardInterrupt):
        with pytest.MonkeyPatch.context() as patch:
            _interrupted_after(patch, 1)
            label_dataset(source, out, rings=True, resume=True, progress=False)
    assert json.loads(first.read_text().splitlines()[0])["options"]["rings"] is True
    with pytest.raises(WorkflowError, match="cannot resume .*delete it to start afresh"):
        label_dataset(source, out, rings=False, resume=True, progress=False)


def test_a_journal_of_frames_without_options_is_refused(tmp_path):
    source = Dataset.from_atoms([beta_cristobalite(), beta_cristobalite()])
    out = tmp_path / "o.h5"
    journal = progress_path(out)
    entry = {"frame": 0, "labels": {"density": 2.0}}
    journal.write_text(json.dumps(entry) + "\n")
    with pytest.raises(WorkflowError, match="o.h5.labels.jsonl has no options line"):
        label_dataset(source, out, rings=True, resume=True, progress=False)


def test_a_second_run_into_one_output_is_refused(tmp_path, monkeypatch):
    import threading

    import amtoolkit.workflows.label as label_module

    source = Dataset.from_atoms([beta_cristobalite(), beta_cristobalite()])
    out = tmp_path / "o.h5"
    started, release = threading.Event(), threading.Event()
    real = label_module.labels_of

    def held(*args, **kwargs):  # the first run waits in its first frame
        if threading.current_thread() is not threading.main_thread():
            started.set()
            release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(label_module, "labels_of", held)
    first = threading.Thread(
        target=label_dataset, args=(source, out), kwargs={"rings": True, "progress": False}
    )
    first.start()
    assert started.wait(30)
    busy = rf"another run is using .*o.h5.labels.jsonl \(pid {os.getpid()}\)$"
    try:
        with pytest.raises(WorkflowError, match=busy):
            label_dataset(source, out, rings=True, resume=True, progress=False)
    finally:
        release.set()
        first.join()
    assert len(Dataset.from_hdf5(out)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["o.h5"]  # no lock or progress file left


def test_a_resume_removes_the_temporary_files_of_killed_writes(tmp_path, monkeypatch):
    source = Dataset.from_atoms([beta_cristobalite(), beta_cristobalite()])
    out = tmp_path / "t.h5"
    _interrupted_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(source, out, rings=True, progress=False)
    monkeypatch.undo()
    left = [tmp_path / ".t.h5.q8d0jz2c.h5", tmp_path / ".t.h5.labels.jsonl.a1b2c3d4.jsonl"]
    for path in left:
        path.write_text("cut short")
    label_dataset(source, out, rings=True, resume=True, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["t.h5"]
