"""`amtool train` through click's CliRunner: outputs, resume, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from amtoolkit.checkpoint import load_checkpoint
from amtoolkit.cli import main
from amtoolkit.training import load_config, read_metrics

TINY_YAML = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.fixture
def runner():
    return CliRunner()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amtool: error: ")
    return lines[0]


def test_train_tiny_config_writes_a_loadable_model(runner, tmp_path):
    out = tmp_path / "run"
    summary = tmp_path / "summary.json"
    args = ["train", str(TINY_YAML), "--out", str(out), "--no-progress", "--json", str(summary)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output + result.stderr
    config = load_config(TINY_YAML)
    assert f"trained {config.name}: {config.epochs} epochs" in result.stdout
    for name in ("config.yaml", "metrics.csv", "loss.png", "last.pt", "tiny-si.pt", "tiny-si.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "checkpoints").glob("epoch_*.pt"))) == config.epochs
    assert len(read_metrics(out / "metrics.csv")) == config.epochs
    model, info = load_checkpoint(out / "tiny-si")
    assert info.property_names == ("density",) and info.max_density == 0.055
    assert info.training["command"].startswith("amtool train ")
    record = json.loads(summary.read_text())
    assert record["epochs"] == config.epochs and record["checkpoint"] == str(out / "tiny-si")

    again = runner.invoke(main, ["train", str(TINY_YAML), "--out", str(out), "--no-progress"])
    assert "already holds a run" in _one_error_line(again)
    more = config.epochs + 1
    args = ["train", str(TINY_YAML), "--out", str(out), "--resume", "--epochs", str(more)]
    resumed = runner.invoke(main, [*args, "--no-progress"])
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming {out} after epoch {config.epochs}" in resumed.stderr  # a note stays
    assert "epoch " not in resumed.stderr.replace("after epoch", "")  # epoch lines do not
    assert len(read_metrics(out / "metrics.csv")) == more
    done = runner.invoke(main, [*args, "--no-progress"])  # the same --epochs again
    assert f"nothing to do: the run in {out} has trained {more} epochs" in _one_error_line(done)


def test_bad_config_exits_2_with_one_line(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {dataset: x.extxyz, batchsize: 2}\n")
    line = _one_error_line(runner.invoke(main, ["train", str(bad)]))
    assert "unknown config key 'data.batchsize'" in line
    line = _one_error_line(runner.invoke(main, ["train", str(tmp_path / "missing.yaml")]))
    assert "config file not found" in line
    bad.write_text("data: {dataset: no-such-data.h5}\n")
    line = _one_error_line(runner.invoke(main, ["train", str(bad), "--out", str(tmp_path / "o")]))
    assert "neither a file nor a shipped dataset" in line
    assert "looked for next to the config file and in the working folder" in line


def test_under_torchrun_only_rank_0_says_the_error(runner, tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {dataset: x.extxyz, batchsize: 2}\n")
    monkeypatch.setenv("RANK", "1")
    result = runner.invoke(main, ["train", str(bad)])
    assert result.exit_code == 2 and result.stderr == ""
    monkeypatch.setenv("RANK", "0")
    assert "unknown config key" in _one_error_line(runner.invoke(main, ["train", str(bad)]))


def test_outputs_and_resume_state_are_checked_before_training(runner, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(TINY_YAML), "--out", str(out), "--no-progress"]
    summary = tmp_path / "no-folder" / "s.json"
    line = _one_error_line(runner.invoke(main, [*args, "--json", str(summary)]))
    assert f"cannot write {summary}: folder {summary.parent} does not exist" in line
    assert not out.exists()  # refused before a single epoch
    line = _one_error_line(runner.invoke(main, [*args, "--resume", "--overwrite"]))
    assert "--resume (continue the run) or --overwrite (start afresh), not both" in line
    assert "--out is empty" in _one_error_line(
        runner.invoke(main, ["train", str(TINY_YAML), "--out", ""])
    )
    assert "is a folder; give its YAML file" in _one_error_line(
        runner.invoke(main, ["train", str(tmp_path)])
    )
    out.write_text("a file where the run folder should go")
    assert f"out_dir {out} is a file, not a folder" in _one_error_line(runner.invoke(main, args))
    out.unlink()
    out.mkdir()
    (out / "last.pt").write_bytes(b"")  # a run killed while its state was first written
    line = _one_error_line(runner.invoke(main, [*args, "--resume"]))
    assert "last.pt: not a readable resume state: empty, cut short" in line
