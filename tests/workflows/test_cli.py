"""``amtool dataset make``: exit codes, one-line errors, options reaching the library."""

from __future__ import annotations

import json
import re

import click
import pytest
from click.testing import CliRunner

from amtoolkit.data import Dataset
from amtoolkit.workflows import PROTOCOLS
from amtoolkit.workflows.cli import dataset, parse_settings
from tests.workflows.helpers import ToyProtocol


@pytest.fixture
def toy_registered(monkeypatch, tmp_path):
    """Register ToyProtocol as "toy" with its record folder as the default."""
    record = tmp_path / "record"
    record.mkdir()

    class RecordedToy(ToyProtocol):
        @classmethod
        def from_options(cls, full=False, **options):
            return ToyProtocol.from_options(full=full, record_dir=str(record), **options)

    monkeypatch.setitem(PROTOCOLS, "toy", RecordedToy)
    return record


def invoke(*args: str):
    return CliRunner().invoke(dataset, list(args))


def one_line_error(result, warned: bool = False) -> str:
    """The error line of a failed command, after only `amtool: warning:` lines (and none
    of those unless `warned`)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or warned, result.stderr
    assert all(line.startswith("amtool: warning: ") for line in lines[:-1]), result.stderr
    assert lines[-1].startswith("amtool: error: ")
    return lines[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crystal", "-n", "2"], "unknown protocol 'crystal'"),
        (["a-si", "-n", "0"], "n_samples must be an integer >= 1"),
        (["a-si", "-n", "2", "--variant", "boil"], "unknown a-si variant 'boil'"),
        (["a-si", "-n", "2", "--set", "pressure=1e5"], "pressure=100000 is outside [-20, 100]"),
        # units mistaken: K/s for K/ps, ps for fs, a temperature past any melt
        (
            ["a-si", "-n", "2", "--variant", "anneal", "--cooling-rate", "1e-12"],
            "'anneal': 2.2e+18 steps is more than",
        ),
        (["a-sio2", "-n", "2", "--set", "timestep=1000"], "timestep=1000 fs is outside [0.1, 10]"),
        (["a-si", "-n", "2", "--set", "timestep=0.001"], "1 fs = 0.001 ps"),
        (["meg", "-n", "2", "--cooling-rate", "1e13"], "(1e13 K/s = 10 K/ps)"),
        (["meg", "-n", "2", "--set", "final_time=1e9"], "'hold': 5e+11 steps is more than 1e+09"),
        (["a-si", "-n", "2", "--set", "melt_temperature=1e9"], "1e+09 K is above 100000 K"),
        (["meg", "-n", "2", "--variant", "anneal"], "unknown option(s) variant for protocol 'meg'"),
        (["a-sio2", "-n", "2", "--cooling-rate", "5"], "unknown option(s) cooling_rate"),
        (["a-si", "-n", "2", "--atoms", "100"], "8 k^3"),
        (["a-si", "-n", "2", "--set", "melt_time"], "expected NAME=VALUE"),
        (["a-si", "-n", "2", "--workers", "0"], "workers must be an integer >= 1"),
        (
            ["a-si", "-n", "2", "--set", "atoms=8.5"],
            "atoms must be an integer, got 8.5",
        ),
        (
            ["a-sio2", "-n", "2", "--set", "max_atoms=1e2"],
            "max_atoms must be an integer, got 100.0",
        ),
        (
            ["meg", "-n", "2", "--set", "thermo_every=true"],
            "thermo_every must be an integer, got True",
        ),
        (["a-si", "-n", "2", "--atoms", "8", "--set", "atoms=64"], "--atoms 8 and --set atoms=64"),
        (
            ["a-si", "-n", "1", "--json", "no-folder/s.json"],
            "cannot write no-folder/s.json: folder",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result = invoke("make", *args, "-o", str(tmp_path / "out.h5"))
    assert result.exit_code == 2
    assert message in one_line_error(result)
    assert not (tmp_path / "out.h5").exists()


def test_existing_output_needs_resume(tmp_path):
    out = tmp_path / "out.h5"
    out.write_text("someone else's file")
    result = invoke("make", "a-si", "-n", "1", "-o", str(out))
    assert result.exit_code == 2
    assert "exists: resume it (resume=True, --resume; a larger n extends" in one_line_error(result)


def test_make_writes_the_dataset_and_summary(tmp_path, toy_registered):
    out, summary = tmp_path / "toy.h5", tmp_path / "summary.json"
    result = invoke(
        "make",
        "toy",
        "-n",
        "3",
        "-o",
        str(out),
        "--workers",
        "2",
        "--seed",
        "4",
        "--set",
        "sleep=0",
        "--json",
        str(summary),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 samples of toy" in result.stdout
    ds = Dataset.from_hdf5(out)
    assert len(ds) == 3 and ds.provenance["seed"] == 4
    assert ds.provenance["command"].startswith("amtool")
    data = json.loads(summary.read_text())
    assert data["n_written"] == 3 and data["failed_samples"] == []


def test_time_limit_exits_3_and_resume_continues(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    args = ["make", "toy", "-n", "3", "-o", str(out), "--workers", "1", "--no-progress"]
    result = invoke(*args, "--set", "sleep=0.5", "--max-minutes", "0.002")
    assert result.exit_code == 3, result.output
    assert "1 of 3 samples done; resume (resume=True, --resume)" in result.stderr
    assert not out.exists()
    partial = tmp_path / "partial.h5"
    assert invoke("collect", str(out), "-o", str(partial)).exit_code == 0
    refused = invoke("collect", str(out), "-o", str(partial))
    assert refused.exit_code == 2 and "exists; pass --overwrite" in one_line_error(refused)
    assert invoke("collect", str(out), "-o", str(partial), "--overwrite").exit_code == 0
    result = invoke(*args, "--set", "sleep=0.5", "--resume")
    assert result.exit_code == 0, result.output
    assert len(Dataset.from_hdf5(out)) == 3
    assert "1 kept from the earlier run" in result.stdout
    grown = invoke(*["make", "toy", "-n", "4", *args[4:]], "--set", "sleep=0.5", "--resume")
    assert grown.exit_code == 0, grown.output
    assert "wrote 4 samples of toy" in grown.stdout
    assert "3 kept from the earlier run" in grown.stdout


def test_failed_samples_exit_1_and_keep_the_others(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    result = invoke(
        "make",
        "toy",
        "-n",
        "3",
        "-o",
        str(out),
        "--workers",
        "1",
        "--set",
        "fail_indices=[0]",
        "--no-progress",
    )
    assert result.exit_code == 1
    assert "1 of 3 samples failed twice (indices 0)" in one_line_error(result, warned=True)
    assert "amtool: warning: sample 0 failed twice, recorded as failed" in result.stderr
    assert len(Dataset.from_hdf5(out)) == 2
    # --resume retries the failed sample (it fails again here: still exit 1)
    again = invoke(
        "make",
        "toy",
        "-n",
        "3",
        "-o",
        str(out),
        "--workers",
        "1",
        "--set",
        "fail_indices=[0]",
        "--resume",
        "--no-progress",
    )
    assert again.exit_code == 1


def test_parse_settings_reads_json_values():
    assert parse_settings(["melt-time=5", "variant=anneal", 'modifiers=["Li2O"]']) == {
        "melt_time": 5,
        "variant": "anneal",
        "modifiers": ["Li2O"],
    }
    with pytest.raises(click.BadParameter, match="melt_time is set twice"):
        parse_settings(["melt_time=1", "melt-time=2"])  # the last one used to win silently


def test_collect_leaves_out_unusable_sample_files_with_a_warning_each(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    args = ["make", "toy", "-n", "4", "-o", str(out), "--workers", "1", "--no-progress"]
    assert invoke(*args, "--set", "fail_indices=[3]").exit_code == 1
    parts = tmp_path / "toy.h5.parts"
    cut = parts / "sample-000000.json"
    cut.write_text(cut.read_text()[:100])  # cut short (a machine crash)
    odd = parts / "sample-000001.json"
    record = json.loads(odd.read_text())
    odd.write_text(json.dumps({**record, "positions": record["positions"][:-1]}))  # 3 for 4
    partial = tmp_path / "partial.h5"
    result = invoke("collect", str(out), "-o", str(partial))
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("amtool: warning: ") for w in warnings)
    assert "sample-000000.json is unreadable" in warnings[0] and "left out" in warnings[0]
    assert 'sample-000001.json is unreadable (Array "positions" has wrong length' in warnings[1]
    assert "wrote 1 finished sample of" in result.stdout
    assert Dataset.from_hdf5(partial).properties["index_label"].tolist() == [2.0]


def test_info_of_an_unfinished_run_points_to_collect_and_resume(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    args = ["make", "toy", "-n", "3", "-o", str(out), "--workers", "1", "--no-progress"]
    assert invoke(*args, "--set", "sleep=0.5", "--max-minutes", "0.002").exit_code == 3
    result = invoke("info", str(out))
    assert result.exit_code == 2
    message = one_line_error(result)
    assert "toy.h5 is not written yet: its run is unfinished" in message
    assert f"amtool dataset collect {out} -o partial.h5" in message and "--resume" in message
    for command in (["label", str(out)], ["merge", str(out), str(out)]):  # as inputs too
        result = invoke(*command, "-o", str(tmp_path / "other.h5"))
        assert result.exit_code == 2 and "its run is unfinished" in one_line_error(result)
    labelled = tmp_path / "labelled.h5"  # a label run killed before its output
    (tmp_path / "labelled.h5.labels.jsonl").write_text('{"options": {}}\n')
    result = invoke("info", str(labelled))
    assert "its `amtool dataset label` run is unfinished" in one_line_error(result)


def test_info_of_a_file_with_an_unfinished_extension_says_so(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    args = ["make", "toy", "-o", str(out), "--workers", "1", "--no-progress"]
    assert invoke(*args, "-n", "2", "--set", "sleep=0.5").exit_code == 0
    extend = invoke(*args, "-n", "6", "--resume", "--set", "sleep=0.5", "--max-minutes", "0.002")
    assert extend.exit_code == 3, extend.output
    result = invoke("info", str(out))
    assert result.exit_code == 0
    assert re.search(r"structures +2\b", result.stdout)  # the file as last written
    assert "a later run into" in result.stderr and "samples): this summary is of" in result.stderr
    assert " of 6 samples" in result.stderr and "--resume" in result.stderr


def test_kept_counts_only_the_samples_a_resume_can_use(tmp_path, toy_registered):
    out = tmp_path / "toy.h5"
    args = ["make", "toy", "-n", "3", "-o", str(out), "--workers", "1", "--no-progress"]
    assert invoke(*args, "--set", "sleep=0.5", "--max-minutes", "0.002").exit_code == 3
    cut = tmp_path / "toy.h5.parts" / "sample-000000.json"
    cut.write_text(cut.read_text()[:100])  # dropped and run again by the resume
    result = invoke(*args, "--set", "sleep=0.5", "--resume")
    assert result.exit_code == 0, result.output
    assert "wrote 3 samples of toy" in result.stdout
    assert "kept from the earlier run" not in result.stdout
