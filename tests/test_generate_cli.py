"""`amtool generate` through click's CliRunner: streamed extxyz output and one-line errors."""

from __future__ import annotations

import re

import ase.io
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from amtoolkit.cli import main
from amtoolkit.generator import Generator, _StepNotes, parse_cell, parse_target
from tests.test_generator import STEPS, save_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:.*not charge balanced:UserWarning")


@pytest.fixture(autouse=True)
def _single_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def model_path(tmp_path):
    """An oxide model with properties and ghosts, as a checkpoint stem."""
    return str(save_tiny_model(tmp_path / "tiny", max_density=0.09))


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amtool: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_parse_target_and_cell():
    assert parse_target("shear=40") == ("shear", 40.0)
    assert parse_target("shear = 30,null,50") == ("shear", [30.0, None, 50.0])
    assert parse_cell("12") == 12.0
    assert parse_cell("10,11,12") == [10.0, 11.0, 12.0]
    assert parse_cell("10x11x12") == [10.0, 11.0, 12.0]
    for bad in ("shear", "=4", "shear=", "shear=abc", "shear=null"):
        with pytest.raises(ValueError, match="target"):
            parse_target(bad)
    for bad in ("a", "1,2", ""):
        with pytest.raises(ValueError, match="cell"):
            parse_cell(bad)


@pytest.mark.filterwarnings("ignore:target shear_modulus=50 is outside:UserWarning")
def test_generate_writes_extxyz_frames(runner, model_path, tmp_path):
    out = tmp_path / "gen.extxyz"
    args = ["generate", model_path, "-n", "3", "--target", "shear=30,40,50", "--cell", "6"]
    args += ["--seed", "4", "--batch-size", "2", "--max-restarts", "0", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    counts = [len(a) for a in ase.io.read(out, ":")]
    sizes = f"{min(counts)}-{max(counts)} (mean {sum(counts) / 3:.1f})"
    assert f"wrote 3 structures of {sizes} atoms to {out} (seed 4; 9 atoms relabelled)" in (
        result.stdout
    )
    assert f"amtool: structure 3 of 3 written to {out}" in result.stderr  # a log: no bar
    frames = ase.io.read(out, index=":")
    assert len(frames) == 3
    assert [a.info["target_shear_modulus"] for a in frames] == [30.0, 40.0, 50.0]
    assert [a.info["index"] for a in frames] == [0, 1, 2]
    assert all(np.allclose(a.cell.array, 6.0 * np.eye(3)) for a in frames)
    assert all(a.info["steps"] == STEPS and a.info["model"] == "tiny" for a in frames)
    assert all(isinstance(a.info["charge_balanced"], (bool, np.bool_)) for a in frames)
    # the file holds what the library returns for the same arguments
    same = Generator.from_checkpoint(model_path).generate(
        3, shear=[30, 40, 50], cell=6.0, seed=4, batch_size=2, max_restarts=0, progress=False
    )
    for written, direct in zip(frames, same, strict=True):
        assert np.array_equal(written.numbers, direct.numbers)
        assert np.allclose(written.positions, direct.positions)


def test_no_rebalance_keeps_unbalanced_structures(runner, model_path, tmp_path):
    out = tmp_path / "plain.extxyz"
    args = ["generate", model_path, "-n", "4", "--atoms", "9", "--seed", "0"]
    args += ["--max-restarts", "0", "--no-rebalance", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    frames = ase.io.read(out, index=":")
    assert all("relabelled" not in a.info for a in frames)
    same = Generator.from_checkpoint(model_path).generate(
        4, n_atoms=9, seed=0, max_restarts=0, rebalance=False, progress=False
    )
    assert [a.info["charge_balanced"] for a in frames] == [a.info["charge_balanced"] for a in same]
    assert [a.get_chemical_formula() for a in frames] == [a.get_chemical_formula() for a in same]


def test_accept_restarts_and_records_the_test(runner, model_path, tmp_path):
    out = tmp_path / "kept.extxyz"
    args = ["generate", model_path, "-n", "2", "--atoms", "9", "--seed", "0", "-o", str(out)]
    args += ["--accept", "closest>=50", "--accept", "bridging>=0", "--max-restarts", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 of 2 structures fail accept=bridging>=0,closest>=50 after max_restarts=1" in (
        result.stderr
    )
    frames = ase.io.read(out, index=":")
    assert [(a.info["accept"], a.info["accepted"]) for a in frames] == [
        ("bridging>=0,closest>=50", False)
    ] * 2
    assert all(a.info["restarts"] == 1 for a in frames)


def test_generate_on_an_explicit_grid(runner, model_path, tmp_path):
    out = tmp_path / "grid.extxyz"
    args = ["generate", model_path, "-n", "1", "--cell", "6", "--seed", "2", "--sampler", "ode"]
    args += ["--timesteps", "0.9,0.4,0.1,0", "--max-restarts", "0", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"wrote 1 structure of 15 atoms to {out} (seed 2" in result.stdout
    (atoms,) = ase.io.read(out, index=":")
    assert atoms.info["steps"] == 3
    np.testing.assert_allclose(atoms.info["timesteps"], [0.9, 0.4, 0.1, 0.0])


def test_existing_output_needs_overwrite(runner, model_path, tmp_path):
    out = tmp_path / "gen.extxyz"
    out.write_text("keep me\n")
    base = ["generate", model_path, "-n", "1", "--atoms", "8", "--seed", "0", "-o", str(out)]
    assert_one_line_error(runner.invoke(main, base), "exists", "--overwrite")
    assert out.read_text() == "keep me\n"
    unknown = ["generate", str(tmp_path / "no-such-model"), *base[2:]]
    assert_one_line_error(runner.invoke(main, unknown), "no-such-model", "neither a checkpoint")
    bad_target = runner.invoke(main, [*base, "--target", "no_such_property=1"])
    assert_one_line_error(bad_target, "no_such_property")  # named before the existing OUT
    result = runner.invoke(main, [*base, "--overwrite", "--max-restarts", "0"])
    assert result.exit_code == 0, result.output
    assert len(ase.io.read(out, index=":")) == 1


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--target", "viscosity=3"], ["unknown target 'viscosity'", "shear_modulus"]),
        (["--target", "shear"], ["NAME=VALUE"]),
        (["--target", "shear=30,40"], ["target shear_modulus has 2 values for n=1"]),
        (["--cell", "0"], ["cell volume must be positive"]),
        (["--cell", "6", "--density", "2"], ["give cell or density"]),
        (["--density", "-1"], ["density must be a positive"]),
        (["--sampler", "heun"], ["unknown sampler 'heun'"]),
        (["--steps", "0"], ["steps must be"]),
        (["--noise-scale", "-1"], ["noise_scale must be a number in [0, 10]"]),
        (["--sampler", "ode", "--noise-scale", "0.5"], ["sampler 'ode' injects none"]),
        (["--score-gain", "-1"], ["score_gain must be a number in [0, 100]"]),
        (["--timesteps", "0.9,fast,0"], ["--timesteps '0.9,fast,0' must be comma-separated"]),
        (["--timesteps", "0.9,0.5"], ["timesteps must end at 0, got 0.5"]),
        (["--accept", "shear>=3"], ["criterion 'shear>=3': use closest>=D"]),
        (["--accept", "bridging>=2"], ["bridging>=2: the fraction must lie in [0, 1]"]),
    ],
)
def test_bad_input_exits_2_with_one_line(runner, model_path, tmp_path, extra, fragments):
    out = tmp_path / "bad.extxyz"
    result = runner.invoke(main, ["generate", model_path, "-n", "1", "-o", str(out), *extra])
    assert_one_line_error(result, *fragments)
    assert not out.exists()  # nothing written before the arguments are valid


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("no-folder/gen.extxyz", ["cannot write", "folder", "no-folder does not exist"]),
        (".", ["cannot write", "it is a folder"]),
        ("gen.cif", ["-o", "gen.cif", "extended XYZ", ".extxyz or .xyz"]),
    ],
)
def test_unwritable_output_exits_2_before_any_work(runner, model_path, tmp_path, name, fragments):
    out = tmp_path / name
    result = runner.invoke(main, ["generate", model_path, "-n", "1", "-o", str(out)])
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "gen.cif").exists()


def test_a_run_that_fails_before_its_first_structure_leaves_no_file(
    runner, model_path, tmp_path, monkeypatch
):
    def failing(self, plan, progress, stacklevel, start=0, note=None):
        raise ValueError("the sampler gave up")
        yield  # a generator, like the real one

    monkeypatch.setattr(Generator, "_run", failing)
    out = tmp_path / "none.extxyz"
    result = runner.invoke(main, ["generate", model_path, "-n", "2", "-o", str(out)])
    assert_one_line_error(result, "the sampler gave up")
    assert not out.exists()  # so the same command can run again without --overwrite


def test_interrupted_before_the_first_structure_says_nothing_was_written(
    runner, model_path, tmp_path, monkeypatch
):
    def interrupted(self, plan, progress, stacklevel, start=0, note=None):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(Generator, "_run", interrupted)
    out = tmp_path / "none.extxyz"
    result = runner.invoke(main, ["generate", model_path, "-n", "2", "-o", str(out)])
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        "amtool: interrupted before the first structure; nothing written: rerun the same "
        "command (without --resume) to start again"
    )
    assert not out.exists()


def test_unknown_model_exits_2(runner, tmp_path):
    result = runner.invoke(main, ["generate", "no-such-model", "-n", "1", "-o", "x.extxyz"])
    assert_one_line_error(result, "no-such-model", "shipped model")


def test_models_lists_the_shipped_ones_and_describes_one(runner, model_path):
    from amtoolkit import pretrained

    result = runner.invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "elements", "targets", "atoms"]
    assert [line.split()[0] for line in lines[1:-1]] == pretrained.available()
    row = next(line for line in lines if line.startswith("a-sio2 "))
    assert row.split()[1:] == ["score", "O,", "Si", "shear,", "ring", "81-249"]

    result = runner.invoke(main, ["models", "a-sio2"])
    assert result.exit_code == 0, result.output
    low, high = pretrained.model_info("a-sio2").typical.property_ranges["shear_modulus"]
    assert f"shear_modulus (--target shear=...), trained on {low:.4g} to {high:.4g} GPa" in (
        result.stdout
    )
    assert "amtool dataset make a-sio2" in result.stdout  # where its data came from
    assert "model card a-sio2.md" in result.stdout

    result = runner.invoke(main, ["models", model_path])  # one's own checkpoint
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("tiny\n") and "ghost atoms  up to 0.09" in result.stdout

    assert_one_line_error(runner.invoke(main, ["models", "no-such-model"]), "shipped model")


def test_interrupted_run_keeps_finished_structures(runner, model_path, tmp_path, monkeypatch):
    real_run = Generator._run

    def interrupted(self, plan, progress, stacklevel, start=0, note=None):
        stream = real_run(self, plan, progress, stacklevel, start)
        yield next(stream)
        yield next(stream)
        yield next(stream)
        raise KeyboardInterrupt

    monkeypatch.setattr(Generator, "_run", interrupted)
    out = tmp_path / "part.extxyz"
    args = ["generate", model_path, "-n", "5", "--seed", "1", "--batch-size", "2"]
    result = runner.invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 130
    assert f"interrupted; 3 structures written to {out}: rerun with --resume" in result.stderr
    assert [a.info["index"] for a in ase.io.read(out, index=":")] == [0, 1, 2]
    monkeypatch.setattr(Generator, "_run", real_run)
    # killed while writing a fourth: half a frame at the end of the file
    whole = out.read_text()
    out.write_text(whole + whole[: len(whole) // 6])
    monkeypatch.setattr(_StepNotes, "MIN_INTERVAL", 0.0)  # step lines even for a quick run
    resumed = runner.invoke(main, [*args[:4], "--batch-size", "2", "-o", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    # off a terminal, a line as each batch starts: the log of a long run is not silent
    assert "batch 1 of 2: sampling structure 4 of 5 (" in resumed.stderr
    assert re.search(r"batch 1 of 2: step 1 of \d+ \(\d+%\), \d+ s so far, about", resumed.stderr)
    assert "dropping a structure cut short after the 3 whole ones" in resumed.stderr
    assert f"wrote 2 structures of 3 atoms to {out} (seed 1; 3 kept from the earlier run; " in (
        resumed.stdout
    )
    uninterrupted = tmp_path / "whole.extxyz"
    assert runner.invoke(main, [*args, "-o", str(uninterrupted)]).exit_code == 0
    for a, b in zip(
        ase.io.read(out, index=":"), ase.io.read(uninterrupted, index=":"), strict=True
    ):
        assert a.info["index"] == b.info["index"]
        assert np.array_equal(a.numbers, b.numbers) and np.allclose(a.positions, b.positions)
    again = runner.invoke(main, [*args, "-o", str(out), "--resume"])
    assert again.exit_code == 0 and f"{out} holds all 5 structures (seed 1)" in again.stdout


def test_a_resume_refuses_another_model_a_second_writer_and_repeated_indices(
    runner, model_path, tmp_path
):
    import fcntl

    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "3", "--seed", "5", "--batch-size", "1", "-o"]
    assert runner.invoke(main, [*args, str(out)]).exit_code == 0
    frames = ase.io.read(out, index=":")
    assert frames[0].info["model_digest"].startswith("sha256-")
    ase.io.write(out, frames[:2])

    # the same name, other weights (a model retrained into the same checkpoint name)
    other = str(save_tiny_model(tmp_path / "other" / "tiny", max_density=0.09, seed=1))
    result = runner.invoke(main, ["generate", other, *args[2:], str(out), "--resume"])
    assert_one_line_error(result, "structure 0 of the resumed run was made by another model")
    assert "model_digest=" in result.stderr

    # a run still writing the file holds its lock: a second one is refused
    with open(tmp_path / ".run.extxyz.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        result = runner.invoke(main, [*args, str(out), "--resume"])
        assert_one_line_error(result, f"another run is using {out} (pid 4242)")
        early = tmp_path / "early.extxyz"  # the other run has not written its first yet
        (tmp_path / ".early.extxyz.lock").write_text("")
        with open(tmp_path / ".early.extxyz.lock") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            result = runner.invoke(main, [*args, str(early), "--resume"])
        assert_one_line_error(result, "another run is using")  # not "nothing to resume"
    assert (tmp_path / ".run.extxyz.lock").exists()  # the other run's, left as it was

    # two runs that appended at once: indices 0, 1, 1
    ase.io.write(out, [frames[0], frames[1], frames[1]])
    result = runner.invoke(main, [*args, str(out), "--resume"])
    assert_one_line_error(result, "structure 2 of", "records index 1", "first 2 structures")

    # written before weights' digests were kept: resumed by the other records
    for atoms in frames:
        del atoms.info["model_digest"]
    ase.io.write(out, frames[:2])
    assert runner.invoke(main, [*args, str(out), "--resume"]).exit_code == 0
    assert not (tmp_path / ".run.extxyz.lock").exists()  # a finished run leaves no lock


def test_resume_drops_a_last_line_without_its_newline(runner, model_path, tmp_path):
    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "3", "--seed", "5", "--batch-size", "1", "-o"]
    assert runner.invoke(main, [*args, str(out)]).exit_code == 0
    whole = out.read_text()
    out.write_text(whole[:-1])  # killed before the last newline: that line may be cut
    result = runner.invoke(main, [*args, str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "cut short after the 2 whole ones" in result.stderr
    assert out.read_text() == whole  # the third made again, exactly


def test_resume_refuses_a_file_damaged_before_its_end(runner, model_path, tmp_path):
    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "3", "--seed", "5", "--batch-size", "1", "-o"]
    assert runner.invoke(main, [*args, str(out)]).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    n = int(lines[0])
    lines[n + 2] = "garbage\n"  # the second structure's header
    out.write_text("".join(lines))
    result = runner.invoke(main, [*args, str(out), "--resume"])
    assert_one_line_error(result, f"cannot resume: {out}[1]", "not the end of the file")


@pytest.mark.parametrize(
    "changed",
    [
        ["--cell", "7"],
        ["--no-rebalance"],
        ["--max-restarts", "1"],
        ["--accept", "closest>=0.1"],
    ],
)
def test_resume_refuses_other_options_also_when_done(runner, model_path, tmp_path, changed):
    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "2", "--seed", "5", "--batch-size", "1", "-o", str(out)]
    assert runner.invoke(main, args).exit_code == 0  # done: all 2 made
    result = runner.invoke(main, [*args, *changed, "--resume"])
    assert_one_line_error(result, "structure 0 of the resumed run has")
    assert "options of the interrupted run" in result.stderr


def test_resume_extends_a_finished_run_with_any_batch_size(runner, model_path, tmp_path):
    """Each structure has its own random streams: a finished run of 2 grown to 4, in
    batches of another size, is the run of 4 made at once."""
    out, whole = tmp_path / "grown.extxyz", tmp_path / "whole.extxyz"
    args = ["generate", model_path, "--seed", "5", "--steps", str(STEPS)]
    assert (
        runner.invoke(main, [*args, "-n", "2", "--batch-size", "1", "-o", str(out)]).exit_code == 0
    )
    grown = runner.invoke(main, [*args, "-n", "4", "--batch-size", "3", "-o", str(out), "--resume"])
    assert grown.exit_code == 0, grown.output
    assert "wrote 2 structures" in grown.stdout and "2 kept from the earlier run" in grown.stdout
    assert runner.invoke(main, [*args, "-n", "4", "-o", str(whole)]).exit_code == 0
    for x, y in zip(ase.io.read(out, ":"), ase.io.read(whole, ":"), strict=True):
        assert np.abs(x.positions - y.positions).max() < 1e-4


@pytest.mark.parametrize(
    "dropped",
    [["--accept", "closest>=0.1"], ["--timesteps", "0.9,0.4,0.1,0"]],
)
def test_resume_refuses_a_run_that_leaves_an_option_out(runner, model_path, tmp_path, dropped):
    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "2", "--seed", "5", "--batch-size", "1", "-o", str(out)]
    assert runner.invoke(main, [*args, *dropped]).exit_code == 0
    result = runner.invoke(main, [*args, "--resume"])
    assert_one_line_error(result, "structure 0 of the resumed run has", "this run does not")


def test_resume_refuses_another_run_and_a_missing_file(runner, model_path, tmp_path):
    out = tmp_path / "run.extxyz"
    args = ["generate", model_path, "-n", "4", "--seed", "2", "-o", str(out)]
    assert_one_line_error(runner.invoke(main, [*args, "--resume"]), "nothing to resume")
    assert runner.invoke(main, [*args[:3], "2", *args[4:]]).exit_code == 0
    result = runner.invoke(main, [*args, "--resume", "--steps", str(STEPS + 1)])
    assert_one_line_error(
        result, f"structure 0 of the resumed run has steps={STEPS}, this run steps={STEPS + 1}"
    )
    assert_one_line_error(runner.invoke(main, [*args, "--resume", "--overwrite"]), "not both")


def test_warnings_of_a_plan_that_fails_are_not_shown(runner, model_path, tmp_path):
    out = tmp_path / "x.extxyz"
    far = ["generate", model_path, "-n", "1", "--cell", "6", "--target", "shear=200"]
    far += ["--max-restarts", "0", "--no-rebalance", "-o", str(out)]
    assert_one_line_error(runner.invoke(main, [*far, "--steps", "-1"]), "steps must be")
    result = runner.invoke(main, [*far, "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "amtool: warning: target shear_modulus=200" in result.stderr  # shown once it runs
