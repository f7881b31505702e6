"""The per-frame analysis cache: keys, read-back equal to measuring, resume, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase.calculators.emt import EMT
from click.testing import CliRunner

from amtoolkit.analysis.cache import FrameCache, cached_frames, default_cache_dir
from amtoolkit.analysis.report import FrameResults, serial_frames
from amtoolkit.analyzer import Analyzer
from amtoolkit.cli import main
from amtoolkit.io import write_structures
from tests.known_values import SW_DIAMOND_ENERGY

TASKS = [("energy", {"relax": False})]


def rattled(diamond_si, n, scale=0.05):
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(n):
        atoms = diamond_si.copy()
        atoms.positions += rng.normal(scale=scale, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def test_key_follows_everything_the_results_depend_on(tmp_path, diamond_si):
    cache = FrameCache(tmp_path, "sw-si")
    key = cache.key(TASKS, diamond_si)
    assert cache.key(TASKS, diamond_si.copy()) == key
    moved = diamond_si.copy()
    moved.positions[0, 0] += 1e-3
    heavier = diamond_si.copy()
    heavier.set_masses([30.0] * len(heavier))
    slab = diamond_si.copy()
    slab.pbc = [True, True, False]
    others = {
        cache.key(TASKS, moved),
        cache.key(TASKS, heavier),
        cache.key(TASKS, slab),
        cache.key([("energy", {"relax": True})], diamond_si),
        cache.key([*TASKS, ("elastic", {})], diamond_si),
        FrameCache(tmp_path, "tersoff-si").key(TASKS, diamond_si),
        FrameCache(tmp_path, "sw-si", {"units": "x"}).key(TASKS, diamond_si),
    }
    assert key not in others
    assert len(others) == 7


def test_cached_runner_measures_only_the_frames_it_lacks(tmp_path, diamond_si):
    analyzer = Analyzer("sw-si")
    frames = rattled(diamond_si, 3)
    measured = []

    def counting(tasks, frames_):
        measured.append(len(frames_))
        return serial_frames(analyzer._run)(tasks, frames_)

    cache = FrameCache(tmp_path / "c", "sw-si")
    first = dict(cached_frames(counting, cache)(TASKS, frames[:2]))
    again = FrameCache(tmp_path / "c", "sw-si")
    second = dict(cached_frames(counting, again)(TASKS, frames))
    assert measured == [2, 1]
    assert (cache.stored, again.hits, again.stored) == (2, 2, 1)
    for k in (0, 1):
        assert isinstance(second[k], FrameResults)
        assert second[k]["energy"].energy_per_atom == pytest.approx(
            first[k]["energy"].energy_per_atom, abs=0
        )


def test_failed_frames_are_not_kept_and_broken_entries_are_misses(tmp_path, diamond_si):
    cache = FrameCache(tmp_path, "sw-si")
    key = cache.key(TASKS, diamond_si)

    def failing(tasks, frames_):
        for k in range(len(frames_)):
            yield k, RuntimeError("relaxation broke")

    outcome = dict(cached_frames(failing, cache)(TASKS, [diamond_si]))
    assert isinstance(outcome[0], RuntimeError)
    assert cache.stored == 0 and not any(tmp_path.iterdir())
    (tmp_path / f"{key}.pkl").write_bytes(b"not a pickle")  # e.g. a disk that filled up
    assert cache.get(key) is None
    runner = cached_frames(serial_frames(Analyzer("sw-si")._run), cache)
    measured = dict(runner(TASKS, [diamond_si]))
    assert measured[0]["energy"].energy_per_atom[0] == pytest.approx(SW_DIAMOND_ENERGY, abs=1e-4)
    assert cache.get(key) is not None  # rewritten whole


def test_analyzer_with_a_cache_gives_the_same_numbers(tmp_path, diamond_si):
    frames = rattled(diamond_si, 3, scale=0.1)
    plain = Analyzer("sw-si").energy(frames, relax=True)
    cached = Analyzer("sw-si", cache=tmp_path)
    first = cached.energy(frames, relax=True)
    assert cached.cache.stored == 3
    read = Analyzer("sw-si", cache=tmp_path)
    second = read.energy(frames, relax=True)
    assert read.cache.hits == 3 and read.cache.stored == 0
    for result in (first, second):
        np.testing.assert_allclose(result.energy_per_atom, plain.energy_per_atom, atol=1e-9)
    assert "cache=" in repr(read)


def test_cache_needs_a_potential_name(tmp_path):
    with pytest.raises(ValueError, match="cache needs a potential name"):
        Analyzer(EMT(), cache=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        Analyzer("sw-si", cache=tmp_path / "file")


def test_unwritable_cache_warns_and_the_analysis_still_runs(tmp_path, diamond_si, monkeypatch):
    def refuse(self, key, results):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(FrameCache, "put", refuse)
    analyzer = Analyzer("sw-si", cache=tmp_path)
    with pytest.warns(UserWarning, match="cannot write the analysis cache"):
        result = analyzer.energy(rattled(diamond_si, 2), relax=False)
    assert len(result.energy_per_atom) == 2


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AMTOOLKIT_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("AMTOOLKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "amtoolkit" / "frames"


def test_amtool_analyze_reads_back_what_it_measured(tmp_path, diamond_si):
    path = str(write_structures(tmp_path / "set.extxyz", rattled(diamond_si, 2)))
    folder = tmp_path / "cache"
    args = ["analyze", path, "-p", "sw-si", "--energy", "--cache", str(folder), "--json", "-"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert len(os.listdir(folder)) == 2
    second = runner.invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "2 frames read from the cache" in second.stderr
    assert first.stdout == second.stdout
    fresh = runner.invoke(main, [*args[:-4], "--no-cache", "--json", "-"])
    assert "from the cache" not in fresh.stderr
    assert fresh.stdout == first.stdout
    both = runner.invoke(main, [*args, "--no-cache"])
    assert both.exit_code == 2
    assert "--cache DIR or --no-cache" in both.stderr


def test_compare_relaxes_both_sets_through_the_cache(tmp_path, diamond_si):
    generated, reference = rattled(diamond_si, 2), rattled(diamond_si, 3, scale=0.08)
    plain = Analyzer("sw-si").compare(generated, reference)
    first = Analyzer("sw-si", cache=tmp_path)
    first.compare(generated, reference)
    again = Analyzer("sw-si", cache=tmp_path)
    cached = again.compare(generated, reference)
    assert (first.cache.stored, again.cache.hits, again.cache.stored) == (5, 5, 0)
    assert cached.energy_reference == pytest.approx(plain.energy_reference, abs=1e-9)
    assert cached.energy_generated == pytest.approx(plain.energy_generated, abs=1e-9)
