"""make_dataset bookkeeping: order, seeds, provenance, retries, failures, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from amtoolkit.data import Dataset
from amtoolkit.workflows import (
    PROTOCOLS,
    RunStoppedError,
    SampleFailedError,
    WorkflowError,
    get_protocol,
    make_dataset,
    sample_seed,
)
from amtoolkit.workflows.lammps_md import LAMMPS_SEED_MAX
from amtoolkit.workflows.runner import log_path, parts_folder, run_one
from tests.workflows.helpers import ToyProtocol, calls

REPO = Path(__file__).resolve().parents[2]
POLL_S = 0.05  # polling interval while waiting for the first finished sample


def toy(tmp_path: Path, **kw) -> ToyProtocol:
    record = tmp_path / "record"
    record.mkdir(exist_ok=True)
    return ToyProtocol(record_dir=str(record), **kw)


def test_sample_seed_is_deterministic_distinct_and_valid_for_lammps():
    seeds = {sample_seed(0, i, a) for i in range(200) for a in range(2)}
    assert len(seeds) == 400  # distinct per index and attempt
    assert all(1 <= s <= LAMMPS_SEED_MAX for s in seeds)
    assert sample_seed(7, 3, 1) == sample_seed(7, 3, 1)
    assert sample_seed(7, 3, 0) != sample_seed(8, 3, 0)


def test_dataset_in_index_order_with_seeds_and_provenance(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "toy.h5"
    ds = make_dataset(proto, 5, out, workers=2, seed=11, progress=False, command="test run")
    assert isinstance(ds, Dataset) and len(ds) == 5
    np.testing.assert_array_equal(ds.properties["index_label"], np.arange(5))
    expected_seeds = [sample_seed(11, i, 0) for i in range(5)]
    np.testing.assert_array_equal(ds.properties["seed_label"], expected_seeds)
    assert sorted(i for i, _ in calls(proto.record_dir)) == list(range(5))  # each once
    # the stored frame is the one run_sample made from that seed
    for i in range(5):
        atoms, _ = ToyProtocol(record_dir=proto.record_dir).run_sample(i, expected_seeds[i])
        np.testing.assert_array_equal(ds[i].positions, atoms.positions)
    prov = ds.provenance
    assert prov["protocol"] == "toy" and prov["seed"] == 11 and prov["command"] == "test run"
    assert prov["parameters"] == proto.to_dict()
    assert prov["complete"] is True and prov["failed_samples"] == []
    assert [s["seed"] for s in prov["samples"]] == expected_seeds
    assert [s["attempt"] for s in prov["samples"]] == [0] * 5
    assert prov["samples"][2]["toy_note"] == "sample 2"
    assert "amtoolkit_version" in prov
    assert not parts_folder(out).exists()  # the work folder goes once complete
    assert "complete: 5 samples" in log_path(out).read_text()


def test_failing_sample_is_retried_once_then_recorded_and_raises(tmp_path):
    proto = toy(tmp_path, fail_indices=(1,))
    out = tmp_path / "fail.h5"
    with pytest.raises(SampleFailedError, match="1 of 3 samples failed twice") as info:
        make_dataset(proto, 3, out, workers=2, seed=0, progress=False)
    tries = [s for i, s in calls(proto.record_dir) if i == 1]
    assert tries == [sample_seed(0, 1, 0), sample_seed(0, 1, 1)]  # retried once, new seed
    [failure] = info.value.failures
    assert failure["index"] == 1
    assert [a["seed"] for a in failure["attempts"]] == tries
    assert "toy failure of sample 1" in failure["attempts"][1]["error"]
    # the finished samples are written, the failure is in the provenance and the log
    ds = Dataset.from_hdf5(out)
    np.testing.assert_array_equal(ds.properties["index_label"], [0, 2])
    assert ds.provenance["complete"] is False
    assert ds.provenance["failed_samples"][0]["index"] == 1
    log = log_path(out).read_text()
    assert f"sample 1 attempt 0 failed (seed {tries[0]})" in log
    assert f"sample 1 attempt 1 failed (seed {tries[1]})" in log
    assert parts_folder(out).is_dir()  # kept so that resume can retry


def test_flaky_sample_succeeds_on_retry_with_new_seed(tmp_path):
    proto = toy(tmp_path, flaky_indices=(2,))
    ds = make_dataset(proto, 3, tmp_path / "flaky.h5", workers=1, seed=5, progress=False)
    assert len(ds) == 3
    sample = ds.provenance["samples"][2]
    assert sample["attempt"] == 1 and sample["seed"] == sample_seed(5, 2, 1)
    assert ds.properties["seed_label"][2] == sample_seed(5, 2, 1)
    assert "sample 2 attempt 0 failed" in log_path(tmp_path / "flaky.h5").read_text()


def test_dead_worker_process_counts_as_a_failed_attempt(tmp_path):
    proto = toy(tmp_path, crash_indices=(1,))
    ds = make_dataset(proto, 3, tmp_path / "crash.h5", workers=1, seed=0, progress=False)
    np.testing.assert_array_equal(ds.properties["index_label"], [0, 1, 2])
    assert ds.provenance["samples"][1]["attempt"] == 1
    assert "worker process died" in log_path(tmp_path / "crash.h5").read_text()


def test_workers_that_always_die_stop_the_run_with_a_clear_error(tmp_path):
    proto = toy(tmp_path, always_crash=True)
    with pytest.raises(WorkflowError, match="died 3 times in a row.*__main__"):
        make_dataset(proto, 6, tmp_path / "dead.h5", workers=1, seed=0, progress=False)
    assert len(calls(tmp_path / "record")) == 3  # one try per fresh pool, not 2 x 6 attempts


def _run_until_the_first_sample(
    proto: ToyProtocol, n: int, out: Path, **popen: object
) -> subprocess.Popen:
    """`make_dataset` of `proto` (sleep 0.3 s a sample, seed 3) in another process,
    returned once its first sample is written."""
    script = (
        "from amtoolkit.workflows import make_dataset\n"
        "from tests.workflows.helpers import ToyProtocol\n"
        f"make_dataset(ToyProtocol(record_dir={proto.record_dir!r}, sleep=0.3), {n}, "
        f"{str(out)!r}, workers=1, seed=3, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, **popen)
    first = parts_folder(out) / "sample-000000.json"
    while proc.poll() is None and not first.exists():
        time.sleep(POLL_S)
    return proc


def test_resume_after_kill_computes_only_missing_samples(tmp_path):
    proto = toy(tmp_path, sleep=0.3)
    out = tmp_path / "killed.h5"
    proc = _run_until_the_first_sample(proto, 6, out, start_new_session=True)
    first = parts_folder(out) / "sample-000000.json"
    os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: parent and workers
    proc.wait()
    assert first.exists() and not out.exists()
    finished = sorted(int(p.stem.split("-")[1]) for p in parts_folder(out).glob("sample-*.json"))
    assert 0 < len(finished) < 6
    # a write cut short by the kill leaves only a temporary file, which resume ignores
    (parts_folder(out) / ".sample-000005.json.x2kq9ab1.json").write_text('{"trunc')
    n_calls = len(calls(proto.record_dir))

    with pytest.raises(WorkflowError, match="resume"):
        make_dataset(proto, 6, out, workers=2, seed=3, progress=False)  # no resume flag
    ds = make_dataset(proto, 6, out, workers=2, seed=3, resume=True, progress=False)
    new = [i for i, _ in calls(proto.record_dir)[n_calls:]]
    assert sorted(new) == sorted(set(range(6)) - set(finished))  # only the missing, once each
    reference = make_dataset(proto, 6, tmp_path / "ref.h5", workers=1, seed=3, progress=False)
    np.testing.assert_array_equal(ds.properties["index_label"], np.arange(6))
    for i in range(6):
        np.testing.assert_array_equal(ds[i].positions, reference[i].positions)


def test_a_second_run_into_a_busy_work_folder_is_refused_and_a_kill_frees_it(tmp_path):
    proto = toy(tmp_path, sleep=0.3)
    out = tmp_path / "busy.h5"
    proc = _run_until_the_first_sample(proto, 6, out, start_new_session=True)
    n_calls = len(calls(proto.record_dir))
    busy = rf"another run is using .*busy.h5.parts \(pid {proc.pid}\)$"
    with pytest.raises(WorkflowError, match=busy):
        make_dataset(proto, 6, out, workers=1, seed=3, resume=True, progress=False)
    with pytest.raises(WorkflowError, match=busy):  # not "exists: resume it" first
        make_dataset(proto, 6, out, workers=1, seed=3, progress=False)
    assert len(calls(proto.record_dir)) - n_calls <= 2  # the other run's; none of this one
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ds = make_dataset(proto, 6, out, workers=1, seed=3, resume=True, progress=False)
    assert len(ds) == 6 and not parts_folder(out).exists()


def test_a_resume_removes_the_temporary_files_of_killed_writes(tmp_path):
    proto = toy(tmp_path, sleep=0.2)
    out = tmp_path / "litter.h5"
    with pytest.raises(RunStoppedError):
        make_dataset(proto, 3, out, workers=1, max_minutes=0.002, progress=False)
    left = [  # as atomic_path names them: a sample, the manifest, the final HDF5 file
        parts_folder(out) / ".sample-000002.json.9knb32wq.json",
        parts_folder(out) / ".manifest.json.u1x_3k0a.json",
        tmp_path / ".litter.h5.q8d0jz2c.h5",
    ]
    for path in left:
        path.write_text("cut short")
    with pytest.raises(RunStoppedError):
        make_dataset(proto, 3, out, workers=1, resume=True, max_minutes=0.002, progress=False)
    assert not [path for path in left if path.exists()]


def test_lammps_files_of_a_killed_worker_stay_in_the_work_folder_until_a_resume(tmp_path):
    proto = toy(tmp_path, crash_indices=(0,), sleep=0.2)
    out = tmp_path / "scratch.h5"
    with pytest.raises(RunStoppedError):  # the worker dies in sample 0
        make_dataset(proto, 3, out, workers=1, max_minutes=0.002, progress=False)
    scratch = parts_folder(out) / "md-scratch"
    left = list(scratch.glob("amt-mq-*/log.lammps"))  # not in /tmp
    assert [path.read_text() for path in left] == ["sample 0\n"]
    with pytest.raises(RunStoppedError):
        make_dataset(proto, 3, out, workers=1, resume=True, max_minutes=0.002, progress=False)
    assert not list(scratch.iterdir())  # the killed worker's folder is gone, the new one too


def test_time_limit_stops_starting_samples_and_resume_finishes(tmp_path):
    proto = toy(tmp_path, sleep=0.5)
    out = tmp_path / "limited.h5"
    with pytest.raises(RunStoppedError, match=r"time limit \(0.002 min\): 1 of 4 samples done"):
        make_dataset(proto, 4, out, workers=1, max_minutes=0.002, progress=False)
    assert not out.exists() and len(calls(proto.record_dir)) == 1  # the one in flight finished
    assert "stopped at the time limit" in log_path(out).read_text()
    ds = make_dataset(proto, 4, out, workers=1, resume=True, progress=False)
    assert len(ds) == 4 and len(calls(proto.record_dir)) == 4
    with pytest.raises(WorkflowError, match="max_minutes must be a positive number, got 0"):
        make_dataset(proto, 1, tmp_path / "zero.h5", max_minutes=0, progress=False)


def test_samples_that_vanish_during_a_run_without_time_limit_are_named(tmp_path, monkeypatch):
    from amtoolkit.workflows import runner

    write = runner._Parts.write
    monkeypatch.setattr(  # sample 1 is lost, as when another run removes the work folder
        runner._Parts, "write", lambda self, i, record: None if i == 1 else write(self, i, record)
    )
    out = tmp_path / "lost.h5"
    with pytest.raises(RunStoppedError, match=r"2 of 3 samples are in .*lost.h5.parts.*resume"):
        make_dataset(toy(tmp_path), 3, out, workers=1, progress=False)
    assert "went missing" in log_path(out).read_text()


def test_resume_extends_a_finished_dataset(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "grow.h5"
    small = make_dataset(proto, 2, out, workers=1, seed=1, progress=False)
    first_two = [small[i].positions for i in range(2)]
    n_calls = len(calls(proto.record_dir))
    ds = make_dataset(proto, 4, out, workers=2, seed=1, resume=True, progress=False)
    assert sorted(i for i, _ in calls(proto.record_dir)[n_calls:]) == [2, 3]
    assert len(ds) == 4
    for i in range(2):
        np.testing.assert_array_equal(ds[i].positions, first_two[i])


def test_resume_with_fewer_samples_than_finished_is_refused(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "four.h5"
    make_dataset(proto, 4, out, workers=1, seed=1, progress=False)
    with pytest.raises(
        WorkflowError, match="holds samples up to index 3: n_samples=2 would drop 2"
    ):
        make_dataset(proto, 2, out, workers=1, seed=1, resume=True, progress=False)
    assert len(Dataset.from_hdf5(out)) == 4 and not parts_folder(out).exists()  # unchanged
    # nor is a refused resume of a work folder recorded as a resume of the run
    with pytest.raises(RunStoppedError):
        make_dataset(proto, 6, out, workers=1, seed=1, resume=True, max_minutes=1e-6,
                     progress=False)  # fmt: skip
    with pytest.raises(WorkflowError, match="would drop"):
        make_dataset(proto, 2, out, workers=1, seed=1, resume=True, progress=False, command="no")
    ds = make_dataset(proto, 6, out, workers=1, resume=True, progress=False)  # its own seed
    assert "no" not in ds.provenance["resumed"] and len(ds.provenance["resumed"]) == 2
    assert ds.provenance["seed"] == 1


def test_resume_with_other_settings_names_the_difference(tmp_path):
    proto = toy(tmp_path, fail_indices=(0,))
    out = tmp_path / "x.h5"
    with pytest.raises(SampleFailedError):
        make_dataset(proto, 1, out, workers=1, seed=0, progress=False)
    with pytest.raises(WorkflowError, match="seed 0 != 4"):
        make_dataset(proto, 1, out, workers=1, seed=4, resume=True, progress=False)
    other = toy(tmp_path, fail_indices=())
    with pytest.raises(WorkflowError, match="fail_indices"):
        make_dataset(other, 1, out, workers=1, seed=0, resume=True, progress=False)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("crystal", 2), {}, "unknown protocol 'crystal'"),
        (("a-si", 0), {}, "n_samples must be an integer >= 1"),
        (("a-si", 2.5), {}, "n_samples must be an integer >= 1"),
        (("a-si", 2), {"workers": 0}, "workers must be an integer >= 1"),
        (("a-si", 2), {"seed": -1}, "seed must be an integer >= 0"),
        (("a-si", 2), {"variant": "boil"}, "unknown a-si variant 'boil'"),
        (("a-si", 2), {"atoms": 100}, "8 k\\^3"),
        (("a-si", 2), {"melt_time": -1.0}, "melt_time must be a number >= 0"),
        (("a-sio2", 2), {"variant": "anneal"}, "unknown option\\(s\\) variant for protocol"),
        (("a-sio2", 2), {"atoms": 100}, "multiple of 3"),
        (("meg", 2), {"modifiers": ["Na2O"]}, "Na2O"),
        # settings that ran to the end before, giving a gas or unphysical labels
        (("a-si", 2), {"lattice_constant": 50.0}, "lattice_constant=50 is outside \\[4.8, 6.5\\]"),
        (("a-sio2", 2), {"start_density": 0.01}, "start_density=0.01 is outside \\[1, 5\\]"),
        (("a-sio2", 2), {"elastic_delta": 0.5}, "elastic_delta=0.5 is outside \\[0, 0.05\\]"),
        (("meg", 2), {"start_density": 100.0}, "start_density=100 is outside \\[1, 6\\]"),
        # settings that failed only inside the workers, after the MD
        (("a-sio2", 2), {"ring_maxlength": 1}, "ring_maxlength must be in \\[3, 12\\]"),
        (("a-sio2", 2), {"ring_maxlength": 13}, "ring_maxlength must be in \\[3, 12\\]"),
        (("a-sio2", 2), {"min_distance": 5.0}, "min_distance 5 Å would fill 433% of the cell"),
    ],
)
def test_bad_input_is_a_one_line_workflow_error(tmp_path, args, kwargs, message):
    with pytest.raises(WorkflowError, match=message) as info:
        make_dataset(*args, tmp_path / "bad.h5", progress=False, **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad.h5").exists()


def test_existing_output_without_resume_is_refused(tmp_path):
    out = tmp_path / "taken.h5"
    out.write_bytes(b"not ours")
    with pytest.raises(WorkflowError, match="taken.h5 exists: resume it"):
        make_dataset("a-si", 1, out, progress=False)
    assert out.read_bytes() == b"not ours"


def test_get_protocol_registry_full_and_float_coercion():
    assert set(PROTOCOLS) == {"a-si", "a-sio2", "meg", "glass"}
    meg = get_protocol("meg", full=True)
    assert (meg.atoms, meg.cooling_rate, meg.timestep) == (800, 5.0, 2.0)
    assert get_protocol("meg", full=True, atoms=400).atoms == 400  # options override full
    p = get_protocol("a-si", variant="anneal", cooling_rate=20)
    assert isinstance(p.cooling_rate, float) and p.cooling_rate == 20.0
    with pytest.raises(WorkflowError, match="cooling_rate applies to the anneal variant only"):
        get_protocol("a-si", cooling_rate=20)  # quench has no ramp to slow down
    json.dumps(p.to_dict())  # provenance-ready


def test_run_one_returns_errors_as_records(tmp_path):
    record = run_one(toy(tmp_path, fail_indices=(0,)), 0, 17)
    assert record["ok"] is False
    assert record["error"] == "RuntimeError: toy failure of sample 0"  # one line, as LAMMPS'
    assert "Traceback" in record["traceback"] and "For more information" in record["traceback"]
    good = run_one(toy(tmp_path), 1, 17)
    assert good["ok"] is True and len(good["positions"]) == 4
    json.dumps(good)  # what goes into a part file is plain JSON


def test_resume_recovers_from_a_kill_before_the_manifest_was_written(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "early.h5"
    parts_folder(out).mkdir()  # killed between creating the folder and its manifest
    ds = make_dataset(proto, 2, out, workers=1, resume=True, progress=False)
    assert len(ds) == 2 and not parts_folder(out).exists()


def test_collect_parts_of_an_unfinished_run_keeps_it_resumable(tmp_path):
    from amtoolkit.workflows.runner import collect_parts

    proto = toy(tmp_path, fail_indices=(1,))
    out = tmp_path / "unfinished.h5"
    with pytest.raises(SampleFailedError):
        make_dataset(proto, 4, out, workers=1, seed=2, progress=False)
    ds = collect_parts(out, tmp_path / "partial.h5")
    np.testing.assert_array_equal(ds.properties["index_label"], [0, 2, 3])
    assert ds.provenance["complete"] is False and ds.provenance["collected_from_parts"]
    assert ds.provenance["n_samples"] == 4  # the run's size, not the highest index + 1
    assert len(Dataset.from_hdf5(tmp_path / "partial.h5")) == 3
    assert parts_folder(out).is_dir()  # untouched: the run can still be resumed
    with pytest.raises(WorkflowError, match="no work folder"):
        collect_parts(tmp_path / "never-run.h5")


def test_resuming_a_split_part_is_refused_and_leaves_nothing(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "whole.h5"
    make_dataset(proto, 5, out, workers=1, seed=5, progress=False)
    train, _, _ = Dataset.from_hdf5(out).split(val=0.2, test=0.2, seed=0)
    part = train.to_hdf5(tmp_path / "train.h5")
    before = part.read_bytes()
    for _ in range(2):  # refused the same way again: no work folder was left behind
        with pytest.raises(WorkflowError, match="holds the train part of a split"):
            make_dataset(proto, 6, part, workers=1, seed=5, resume=True, progress=False)
        assert not parts_folder(part).exists() and part.read_bytes() == before


def test_output_must_be_hdf5(tmp_path):
    with pytest.raises(WorkflowError, match="out.xyz: make_dataset writes an HDF5 dataset"):
        make_dataset(toy(tmp_path), 1, tmp_path / "out.xyz", progress=False)
    assert not parts_folder(tmp_path / "out.xyz").exists()


def test_an_unreadable_sample_file_is_run_again(tmp_path):
    proto = toy(tmp_path, sleep=0.2)
    out = tmp_path / "crash.h5"
    with pytest.raises(RunStoppedError):
        make_dataset(proto, 3, out, workers=1, seed=2, max_minutes=0.002, progress=False)
    broken = parts_folder(out) / "sample-000000.json"
    record = json.loads(broken.read_text())
    odd = parts_folder(out) / "sample-000001.json"  # JSON, but 3 positions for 4 atoms
    odd.write_text(json.dumps({**record, "positions": record["positions"][:-1]}))
    broken.write_text(broken.read_text()[:100])  # what a machine crash could leave
    n_calls = len(calls(proto.record_dir))
    ds = make_dataset(proto, 3, out, workers=1, seed=2, resume=True, progress=False)
    assert sorted(i for i, _ in calls(proto.record_dir)[n_calls:]) == [0, 1, 2]
    np.testing.assert_array_equal(ds.properties["index_label"], [0, 1, 2])


def test_resumes_keep_the_first_command_and_the_labels(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "history.h5"
    ds = make_dataset(proto, 2, out, workers=1, seed=1, progress=False, command="first")
    labelled = ds.with_properties({"hardness": [1.0, 2.0]}, how="measured by hand")
    labelled.to_hdf5(tmp_path / "labelled.h5")
    ds.close()
    os.replace(tmp_path / "labelled.h5", out)
    grown = make_dataset(
        proto, 3, out, workers=1, seed=1, resume=True, progress=False, command="second"
    )
    again = make_dataset(
        proto, 3, out, workers=1, seed=1, resume=True, progress=False, command="third"
    )
    for result in (grown, again):
        prov = result.provenance
        assert prov["command"] == "first"
        assert prov["labels"] == [{"properties": ["hardness"], "how": "measured by hand"}]
    assert grown.provenance["resumed"] == ["second"]
    assert again.provenance["resumed"] == ["second", "third"]
    np.testing.assert_array_equal(again.properties["hardness"], [1.0, 2.0, np.nan])


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ("a-si", {"atoms": 8}, "atoms=8 is below 64: a cell this small stays crystalline"),
        ("a-si", {"melt_temperature": 100.0}, "melt_temperature=100 is below 1800"),
        ("a-sio2", {"atoms": 24}, "atoms=24 is below 48: cells this small make no silica"),
        ("a-sio2", {"melt_temperature": 1500.0}, "melt_temperature=1500 is below 2000"),
    ],
)
def test_settings_that_make_crystals_or_no_network_warn(args, options, message):
    with pytest.warns(UserWarning, match=message):
        get_protocol(args, **options)


def test_implausible_labels_are_logged(tmp_path, caplog):
    from amtoolkit.data.properties import implausible_labels

    assert implausible_labels({"poisson_ratio": 0.2, "shear_modulus": 30.0}) == []
    assert implausible_labels({"poisson_ratio": 8.41, "shear_modulus": 0.0}) == [
        "poisson_ratio 8.41",
        "shear_modulus 0",
    ]
    assert implausible_labels({"ring_size": float("nan")}) == ["ring_size nan"]
    proto = toy(tmp_path, extra_labels=(("poisson_ratio", 8.41),))
    out = tmp_path / "odd.h5"
    make_dataset(proto, 1, out, workers=1, progress=False)
    assert "sample 0 has implausible labels (poisson_ratio 8.41)" in log_path(out).read_text()
    assert "implausible labels" in caplog.text
    unstable = toy(tmp_path, unstable_indices=(1,))
    made = make_dataset(unstable, 2, tmp_path / "unstable.h5", workers=1, progress=False)
    log = log_path(tmp_path / "unstable.h5").read_text()
    assert "sample 1: its stiffness matrix has a negative eigenvalue" in log
    assert "sample 0: its stiffness" not in log
    assert [s.get("elastic_unstable", False) for s in made.provenance["samples"]] == [False, True]


def test_an_interrupt_is_written_to_the_log(tmp_path):
    proto = toy(tmp_path, sleep=0.3)
    out = tmp_path / "stopped.h5"
    proc = _run_until_the_first_sample(proto, 20, out, stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    proc.wait()
    assert proc.returncode != 0
    assert "interrupted: " in log_path(out).read_text()
    assert "of 20 samples done; resume to continue" in log_path(out).read_text()


def test_resuming_reordered_frames_is_refused(tmp_path):
    proto = toy(tmp_path)
    out = tmp_path / "order.h5"
    ds = make_dataset(proto, 3, out, workers=1, seed=2, progress=False)
    assert all(len(s["digest"]) == 16 for s in ds.provenance["samples"])
    swapped = tmp_path / "swapped.h5"
    ds[[1, 0, 2]].to_hdf5(swapped)  # same count, same records, frames out of order
    with pytest.raises(WorkflowError, match="frame 0 is not the structure of sample 0"):
        make_dataset(proto, 4, swapped, workers=1, seed=2, resume=True, progress=False)
    assert not parts_folder(swapped).exists()
    grown = make_dataset(proto, 4, out, workers=1, seed=2, resume=True, progress=False)
    assert len(grown) == 4  # the file's own frames pass the check


@pytest.mark.parametrize(
    "call",
    [
        'make_dataset("a-si", 2, "out.h5", workers=2, progress=False, atoms=64)',
        'label_dataset("example:a-si", "out.h5", workers=2, progress=False)',
    ],
)
def test_a_script_without_a_main_guard_is_refused_before_it_writes_anything(tmp_path, call):
    """The refusal came after the run folder or labels file was made, and the guarded
    rerun then met "out.h5.parts exists: resume it"."""
    script = tmp_path / "bare.py"
    script.write_text(f"from amtoolkit.workflows import label_dataset, make_dataset\n\n{call}\n")
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    assert "bare.py starts worker processes at its top level" in run.stderr.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.py"]


def test_a_run_of_absurdly_many_samples_is_refused_before_planning(tmp_path):
    with pytest.raises(WorkflowError, match=r"n_samples=1,000,000,000,000 is more than one run"):
        make_dataset("a-si", 10**12, tmp_path / "o.h5", workers=1, progress=False)
    assert not list(tmp_path.iterdir())
