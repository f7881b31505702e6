"""`make_dataset`: many independent melt-quench samples in parallel, resumable, to HDF5.

Each sample is one call ``protocol.run_sample(index, seed)`` in a worker process (a
``forkserver`` pool, ``spawn`` where forkserver is missing: LAMMPS is never forked
after it was loaded). Seeds are derived from the run seed, the sample index and the
attempt (`sample_seed`), so a sample does not depend on which worker runs it or when.

Crash safety. Every finished sample is written by the parent process as one small JSON
file ``<out>.parts/sample-NNNNNN.json`` (temporary file + ``os.replace``, so a file is
either complete or absent); the final HDF5 file is assembled from the parts in index
order and also written atomically. A run killed at any moment (``kill -9`` included)
leaves only complete parts, and ``resume=True`` recomputes just the missing indices.
The parts folder is removed once the dataset is complete. One run at a time uses it: a
run holds the kernel lock of ``<out>.parts/run.lock`` (`run_lock`; it ends with the
process, so a killed run does not block its resume) and a second run is refused. The
workers' LAMMPS files are in ``<out>.parts/md-scratch`` (`lammps_md.scratch_folder`),
which each run of the folder empties first: a killed worker leaves nothing in /tmp.

Failures. A sample whose `run_sample` raises (or whose worker dies) is logged with its
seed and error and retried once with a new seed (attempt 1). A sample that fails twice
is recorded in the log and in the provenance (``failed_samples``); the dataset of the
samples that did finish is still written, the parts folder is kept (``resume=True``
retries the failed samples) and `SampleFailedError` is raised at the end.

A text log of every event is appended to ``<out>.log``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from amtoolkit._processes import (
    check_main_guard,
    new_executor,
    single_thread_environment,
    terminate,
)
from amtoolkit.analysis._result import to_jsonable
from amtoolkit.analysis._structures import frame_digest
from amtoolkit.data import Dataset
from amtoolkit.data._files import atomic_path, exclusive_lock, lock_holder, temporaries
from amtoolkit.data.properties import implausible_labels
from amtoolkit.io import DATASET_SUFFIXES
from amtoolkit.workflows.a_si import ASiProtocol
from amtoolkit.workflows.a_sio2 import ASiO2Protocol
from amtoolkit.workflows.base import MeltQuenchProtocol
from amtoolkit.workflows.glass import GlassProtocol
from amtoolkit.workflows.lammps_md import LAMMPS_SEED_MAX, scratch_folder
from amtoolkit.workflows.meg import MEGProtocol

logger = logging.getLogger("amtoolkit.workflows")

PROTOCOLS: dict[str, type[MeltQuenchProtocol]] = {
    "a-si": ASiProtocol,
    "a-sio2": ASiO2Protocol,
    "meg": MEGProtocol,
    "glass": GlassProtocol,
}
"""Protocol name -> protocol dataclass."""

PARTS_FORMAT = "amtoolkit.workflows.parts"
PARTS_VERSION = 1
MAX_ATTEMPTS = 2  # the first try and one retry with a new seed
MAX_BARREN_POOLS = 3  # fresh worker pools in a row that die before finishing any sample


class WorkflowError(ValueError):
    """Bad input to `make_dataset` (unknown protocol or option, n < 1, existing output)."""


class SampleFailedError(RuntimeError):
    """Some samples failed twice; the others were written to `path`.

    Attributes:
        failures: one dict per failed sample: index and the seed and error of each attempt.
        path: the dataset file holding the samples that did finish.
    """

    def __init__(self, message: str, failures: list[dict[str, Any]], path: Path) -> None:
        super().__init__(message)
        self.failures = failures
        self.path = path


class RunStoppedError(RuntimeError):
    """The run stopped before every sample was done: its time limit (`max_minutes`)
    passed, or finished samples went missing from its work folder (files deleted).

    The finished samples stay in the work folder ``<out>.parts``; run again with
    ``resume=True`` to continue. Nothing is written to `path` yet.

    Attributes:
        done: samples finished so far (this run and earlier ones).
        n_samples: samples asked for.
        path: the output the resumed run will write.
    """

    def __init__(self, message: str, done: int, n_samples: int, path: Path) -> None:
        super().__init__(message)
        self.done = done
        self.n_samples = n_samples
        self.path = path


def get_protocol(
    protocol: str | MeltQuenchProtocol, *, full: bool = False, **options: Any
) -> MeltQuenchProtocol:
    """A protocol instance from a registry name and options (or an instance as is).

    Raises:
        WorkflowError: unknown name (listing the known ones), unknown option or bad value.
    """
    if isinstance(protocol, MeltQuenchProtocol):
        if options or full:
            raise WorkflowError("pass options either in the protocol instance or by name")
        return protocol
    if protocol not in PROTOCOLS:
        raise WorkflowError(
            f"unknown protocol {protocol!r} (known: {', '.join(sorted(PROTOCOLS))})"
        )
    try:
        return PROTOCOLS[protocol].from_options(full=full, **options)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


def sample_seed(seed: int, index: int, attempt: int = 0) -> int:
    """Seed of attempt `attempt` of sample `index` of a run with seed `seed`, in 1..9e8.

    Drawn from ``numpy.random.SeedSequence([seed, index, attempt])``: independent
    streams for different samples and attempts, valid as a LAMMPS seed as it is.
    """
    state = np.random.SeedSequence([int(seed), int(index), int(attempt)]).generate_state(1)
    return int(state[0]) % LAMMPS_SEED_MAX + 1


def parts_folder(out: str | os.PathLike) -> Path:
    """The work folder of finished samples of output `out`: ``<out>.parts``."""
    p = Path(out)
    return p.with_name(p.name + ".parts")


def log_path(out: str | os.PathLike) -> Path:
    """The text log of output `out`: ``<out>.log``."""
    p = Path(out)
    return p.with_name(p.name + ".log")


def make_dataset(
    protocol: str | MeltQuenchProtocol,
    n_samples: int,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    full: bool = False,
    progress: bool = True,
    command: str | None = None,
    max_minutes: float | None = None,
    **protocol_options: Any,
) -> Dataset:
    """Generate `n_samples` melt-quench structures with labels and store them in `out` (HDF5).

    Example:
        >>> ds = make_dataset("a-si", 200, "a-si-anneal.h5", variant="anneal", workers=2)
        >>> ds.properties["relaxed_energy"]

    Args:
        protocol: "a-si", "a-sio2", "meg" (see `PROTOCOLS`) or a protocol instance.
        n_samples: number of samples (>= 1); sample k has index k.
        out: output HDF5 file (amtoolkit dataset format).
        workers: worker processes (default ``os.cpu_count()``, at most `n_samples`).
        seed: run seed (>= 0); sample seeds follow from it (`sample_seed`). None: 0 for
            a new run, the run's own seed when `resume` continues one.
        resume: continue an interrupted run of the same protocol, options and seed:
            finished samples (in ``<out>.parts`` or an existing `out`) are kept and
            only the missing indices are computed.
        full: start from ``Protocol.full()`` (the paper's settings) instead of the
            defaults; options still override it.
        progress: show a tqdm progress bar (samples done, ETA) on stderr.
        command: command line recorded in the provenance (default: ``sys.argv``).
        max_minutes: start no new sample after this many minutes; the samples in
            flight finish, then `RunStoppedError` says how many are done (for batch
            jobs with a wall-time limit: resume in the next job). None: no limit.
        **protocol_options: protocol parameters, e.g. ``variant="anneal"``,
            ``cooling_rate=10``, ``atoms=64`` (see the protocol dataclasses).

    Returns:
        The dataset read back from `out` (frames in index order; labels as properties;
        provenance with protocol, parameters, seeds, versions and the command line).

    Raises:
        WorkflowError: bad input (unknown protocol or option, n_samples < 1, `out`
            exists and `resume` is False, options differ from the run being resumed).
        SampleFailedError: some samples failed twice (the others are written).
        RunStoppedError: `max_minutes` passed first (the finished samples are kept), or
            finished samples went missing from ``<out>.parts`` during the run.
    """
    proto = get_protocol(protocol, full=full, **protocol_options)
    n_samples = _check_int(n_samples, "n_samples", 1)
    if n_samples > MAX_SAMPLES:
        raise WorkflowError(
            f"n_samples={n_samples:,} is more than one run makes (at most {MAX_SAMPLES:,}); "
            "make the set in runs and merge them (amtool dataset merge)"
        )
    workers = _check_int(os.cpu_count() or 1 if workers is None else workers, "workers", 1)
    if workers > 1:
        check_main_guard()  # before anything is written: the guarded rerun starts afresh
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise WorkflowError(f"max_minutes must be a positive number, got {max_minutes!r}")
    deadline = None if max_minutes is None else time.monotonic() + 60.0 * float(max_minutes)
    if not str(out).strip():
        raise WorkflowError("the output path is empty: name an .h5 file")
    out = Path(out)
    if not out.parent.is_dir():
        raise WorkflowError(f"output folder does not exist: {out.parent}")
    if out.is_dir():
        raise WorkflowError(f"output is a folder, expected a file path: {out}")
    if out.suffix.lower() not in DATASET_SUFFIXES:
        raise WorkflowError(
            f"{out}: make_dataset writes an HDF5 dataset; name the output .h5 (convert it "
            "afterwards with Dataset.to_extxyz if you need extxyz)"
        )
    if not os.access(out.parent, os.W_OK):
        raise WorkflowError(f"cannot write to folder {out.parent} (no permission)")
    parts = _Parts(parts_folder(out))
    if seed is None:
        seed = (earlier_run(out, count=False)[0] if resume else None) or 0
    seed = _check_int(seed, "seed", 0)
    manifest = {
        "format": PARTS_FORMAT,
        "version": PARTS_VERSION,
        "protocol": proto.name,
        "parameters": proto.to_dict(),
        "seed": seed,
    }
    holder = lock_holder(parts.folder / _Parts.LOCK)
    if holder is not None:  # say so at once, rather than "exists: resume it"
        raise WorkflowError(f"another run is using {parts.folder} (pid {holder})")
    if not resume and (out.exists() or parts.folder.exists()):
        found = out if out.exists() else parts.folder
        raise WorkflowError(
            f"{found} exists: resume it (resume=True, --resume; a larger n extends a finished "
            "run), or choose another output"
        )
    command = command if command is not None else shlex.join(sys.argv)
    log = _EventLog(log_path(out))
    imported = False
    continued = parts.folder.exists()
    if not continued:
        parts.create()
    with parts.locked():  # until the run ends: a second run into `out` is refused
        if continued:
            history = parts.check_manifest(manifest)
        else:
            history = {**_history({}), "command": command}
            parts.write_manifest({**manifest, **history})
            if resume and out.exists():
                history = parts.import_dataset(out, manifest)
                imported = continued = True
        beyond = sorted(i for i in parts.finished() if i >= n_samples)
        if beyond:  # a smaller n would drop finished samples from the output
            if imported:
                shutil.rmtree(parts.folder)
            raise WorkflowError(
                f"{out} already holds samples up to index {beyond[-1]}: n_samples={n_samples} "
                f"would drop {len(beyond)} of them; give at least {beyond[-1] + 1} (the run is "
                "unchanged)"
            )
        if history.get("command") is None:  # a work folder that recorded no command
            history["command"] = command
        elif continued:
            history["resumed"] = [*history["resumed"], command]
        parts.update_history({**history, "n_samples": n_samples})  # what collect_parts reports
        parts.remove_temporaries(out)
        stale = parts.folder.with_name(parts.folder.name + ".removing")
        if stale.exists():  # a completed run killed while deleting its work folder
            shutil.rmtree(stale)

        done = {i for i in parts.finished() if i < n_samples}
        todo = [i for i in range(n_samples) if i not in done]
        log.write(
            f"start {proto.name} n_samples={n_samples} seed={seed} workers={workers} "
            f"done={len(done)} todo={len(todo)} command={command}"
        )
        with single_thread_environment(), _logged_interrupt(log, parts, n_samples):
            failures = _run_pool(
                proto,
                todo,
                seed,
                min(workers, max(1, len(todo))),
                parts,
                log,
                progress,
                n_samples,
                len(done),
                deadline,
            )
        finished = {i for i in parts.finished() if i < n_samples}
        failed = {f["index"] for f in failures}
        if len(finished) + len(failed) < n_samples:
            resume_hint = f"resume (resume=True, --resume) to continue {out}"
            if max_minutes is not None and _past(deadline):
                message = (
                    f"stopped at the time limit ({max_minutes:g} min): {len(finished)} of "
                    f"{n_samples} samples done; {resume_hint}"
                )
            else:  # every sample ran, yet some of their files are gone
                message = (
                    f"finished samples went missing during the run: {len(finished)} of "
                    f"{n_samples} samples are in {parts.folder} (was it removed by another run "
                    f"into {out}, or files deleted?); {resume_hint}"
                )
            log.write(message)
            raise RunStoppedError(message, len(finished), n_samples, out)
        dataset = _assemble(
            proto.name, proto.to_dict(), proto.potential, parts, n_samples, seed, history, failures
        )
        dataset.to_hdf5(out)
        if failures:
            indices = ", ".join(str(f["index"]) for f in failures)
            message = (
                f"{len(failures)} of {n_samples} samples failed twice (indices {indices}); "
                f"the other {len(dataset)} are in {out}; see {log.path}; "
                "resuming (resume=True, --resume) retries the failed ones"
            )
            log.write(message)
            raise SampleFailedError(message, failures, out)
        log.write(f"complete: {n_samples} samples in {out}")
        parts.remove()
        return Dataset.from_hdf5(out)


# ---------------------------------------------------------------------- worker side


def run_one(
    protocol: MeltQuenchProtocol, index: int, seed: int, scratch: str | None = None
) -> dict[str, Any]:
    """Run one sample and return a JSON-ready record; errors are returned, not raised.

    `scratch`: an existing folder for LAMMPS' files (`lammps_md.scratch_folder`; None:
    the system's temporary folder).

    Returns:
        On success ``{"ok": True, "numbers", "positions", "cell", "pbc", "properties",
        "metadata", "wall_s"}``; on failure ``{"ok": False, "error", "traceback",
        "wall_s"}``.
    """
    start = time.perf_counter()
    try:
        with scratch_folder(scratch):
            atoms, labels = protocol.run_sample(index, seed)
        if not isinstance(atoms, Atoms):
            raise TypeError(f"run_sample returned {type(atoms).__name__}, expected ase.Atoms")
        metadata = to_jsonable(atoms.info.get("workflow", {}))
        properties = {str(k): float(v) for k, v in labels.items()}
        return {
            "ok": True,
            "numbers": [int(z) for z in atoms.numbers],
            "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(),
            "pbc": [bool(p) for p in atoms.pbc],
            "properties": properties,
            "metadata": json.loads(json.dumps(metadata, default=str)),
            "wall_s": time.perf_counter() - start,
        }
    except Exception as err:  # noqa: BLE001 - any failure of a sample is recorded, not raised
        return {
            "ok": False,
            "error": _one_line(f"{type(err).__name__}: {err}"),
            "traceback": traceback.format_exc(),
            "wall_s": time.perf_counter() - start,
        }


# ---------------------------------------------------------------------- parent side


def _run_pool(
    proto: MeltQuenchProtocol,
    todo: list[int],
    seed: int,
    workers: int,
    parts: _Parts,
    log: _EventLog,
    progress: bool,
    n_samples: int,
    n_done: int,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Run `todo` with at most `workers` samples in flight; return the failed samples.

    After `deadline` (``time.monotonic()``) no sample is started; those in flight finish.
    """
    from tqdm.auto import tqdm

    failures: list[dict[str, Any]] = []
    if not todo:
        return failures
    queue = [(i, 0) for i in reversed(todo)]  # (index, attempt); pop() takes the lowest index
    errors: dict[int, list[dict[str, Any]]] = {}
    pending: dict[Future, tuple[int, int, int]] = {}
    bar = tqdm(
        total=n_samples,
        initial=n_done,
        desc=proto.name,
        unit="sample",
        disable=not progress,
        dynamic_ncols=True,
    )
    executor = new_executor(workers, preload=[__name__])
    barren_pools = 0  # consecutive pools that broke before any sample of theirs finished
    pool_finished = False
    try:
        while pending or (queue and not _past(deadline)):
            while queue and len(pending) < workers and not _past(deadline):
                index, attempt = queue.pop()
                s = sample_seed(seed, index, attempt)
                future = executor.submit(run_one, proto, index, s, str(parts.scratch))
                pending[future] = (index, attempt, s)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in sorted(finished, key=lambda f: pending[f][0]):
                index, attempt, s = pending.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool as err:
                    broken = True
                    record = {"ok": False, "error": f"worker process died: {err}", "traceback": ""}
                if record["ok"]:
                    pool_finished = True
                    record.update(index=index, seed=s, attempt=attempt)
                    parts.write(index, record)
                    log.write(
                        f"sample {index} done (seed {s}, attempt {attempt}, "
                        f"{record['wall_s']:.1f} s)"
                    )
                    odd = implausible_labels(record["properties"])
                    notes = []
                    if odd:
                        notes.append(
                            f"sample {index} has implausible labels ({', '.join(odd)}): check "
                            "the protocol settings"
                        )
                    if record["metadata"].get("elastic_unstable"):
                        notes.append(
                            f"sample {index}: its stiffness matrix has a negative eigenvalue, so "
                            "its elastic labels describe no stable solid (kept, and listed by "
                            "`amtool dataset info`; a smaller elastic_delta or larger cells)"
                        )
                    for note in notes:
                        log.write(note)
                        logger.warning("%s", note)
                    bar.update(1)
                    continue
                errors.setdefault(index, []).append(
                    {"attempt": attempt, "seed": s, "error": record["error"]}
                )
                log.write(f"sample {index} attempt {attempt} failed (seed {s}): {record['error']}")
                if record.get("traceback"):
                    log.write(record["traceback"].rstrip())
                if attempt + 1 < MAX_ATTEMPTS:
                    retry_seed = sample_seed(seed, index, attempt + 1)
                    logger.warning(
                        "sample %d failed (seed %d): %s; retrying with seed %d",
                        index,
                        s,
                        record["error"],
                        retry_seed,
                    )
                    queue.append((index, attempt + 1))
                else:
                    logger.warning(
                        "sample %d failed twice, recorded as failed (seeds %s): %s",
                        index,
                        [e["seed"] for e in errors[index]],
                        record["error"],
                    )
                    failures.append({"index": index, "attempts": errors[index]})
                    bar.set_postfix(failed=len(failures))
            if broken:  # every future of a broken pool fails; start a fresh pool
                terminate(executor)
                barren_pools = 0 if pool_finished else barren_pools + 1
                if barren_pools >= MAX_BARREN_POOLS:
                    raise WorkflowError(
                        f"worker processes died {barren_pools} times in a row before finishing "
                        f"any sample; see {log.path}. A script that calls make_dataset needs an "
                        '`if __name__ == "__main__":` guard (workers are started by forkserver)'
                    )
                pool_finished = False
                executor = new_executor(workers, preload=[__name__])
    except BaseException:
        terminate(executor)
        raise
    finally:
        bar.close()
    executor.shutdown(wait=True)
    return sorted(failures, key=lambda f: f["index"])


def _assemble(
    protocol: str,
    parameters: Mapping[str, Any],
    potential: str,
    parts: _Parts,
    n_samples: int,
    seed: int,
    history: Mapping[str, Any],
    failures: list[dict[str, Any]],
    skip_unreadable: bool = False,
) -> Dataset:
    """The dataset of all finished samples (index order) with its provenance.

    `history`: the run's first ``command``, the commands that ``resumed`` it and the
    ``labels`` its output had gained (`Dataset.with_properties`) before it was extended.
    `skip_unreadable`: leave out, with a warning, a sample file that cannot be used
    (`_Parts.load`) instead of raising.

    Raises:
        WorkflowError: a sample file cannot be used (with `skip_unreadable`: none can).
    """
    from amtoolkit import __version__
    from amtoolkit.potentials import get_spec

    loaded = []  # (index, record, structure)
    for index in sorted(i for i in parts.finished() if i < n_samples):
        try:
            loaded.append((index, *parts.load(index)))
        except ValueError as err:
            path = parts.path(index)
            if not skip_unreadable:
                raise WorkflowError(
                    f"{path} is unreadable ({err}); delete it and resume to run sample "
                    f"{index} again"
                ) from None
            logger.warning("%s is unreadable (%s); sample %d is left out", path, err, index)
    if skip_unreadable and not loaded:  # a run where every sample failed has none either
        raise WorkflowError(f"{parts.folder} holds no readable finished sample")
    finished = [index for index, _, _ in loaded]
    frames: list[Atoms] = []
    columns: dict[str, list[float]] = {}
    samples = []
    for k, (index, record, atoms) in enumerate(loaded):
        frames.append(atoms)
        for name, value in record["properties"].items():
            columns.setdefault(name, [float("nan")] * len(finished))[k] = float(value)
        samples.append(
            {
                "index": index,
                "seed": record["seed"],
                "attempt": record["attempt"],
                "wall_s": record["wall_s"],
                **record.get("metadata", {}),
                "digest": frame_digest(frames[-1]),
            }
        )
    versions = {s.get("lammps_version") for s in samples} - {None}
    provenance = {
        "source": f"amtoolkit.workflows.make_dataset({protocol!r})",
        "command": history["command"],
        "format": "melt-quench",
        "protocol": protocol,
        "parameters": dict(parameters),
        "potential": get_spec(potential).to_dict() if potential else None,
        "seed": seed,
        "seed_rule": "numpy.random.SeedSequence([seed, index, attempt]).generate_state(1)[0]"
        " % 900000000 + 1",
        "n_samples": n_samples,
        "complete": not failures and len(finished) == n_samples,
        "amtoolkit_version": __version__,
        "lammps_version": sorted(versions)[0] if len(versions) == 1 else sorted(versions),
        "python_version": sys.version.split()[0],
        "samples": samples,
        "failed_samples": failures,
    }
    if history.get("resumed"):
        provenance["resumed"] = list(history["resumed"])
    if history.get("labels"):
        provenance["labels"] = list(history["labels"])
    return Dataset.from_atoms(frames, columns, provenance)


def collect_parts(out: str | os.PathLike, output: str | os.PathLike | None = None) -> Dataset:
    """The finished samples of an unfinished `make_dataset` run, as a dataset.

    Reads the ``<out>.parts`` work folder of a run that was interrupted or is still going
    (nothing there is changed, so the run can still be resumed) and returns the samples
    finished so far, in index order, with the run's provenance marked
    ``"complete": False`` and ``"collected_from_parts": True``. A sample file that cannot
    be used (cut short by a crash, inconsistent) is left out with a warning naming it.

    Args:
        out: the run's output path (its work folder is ``<out>.parts``).
        output: also write the dataset to this HDF5 file (atomically).

    Raises:
        WorkflowError: no work folder, no readable manifest, or no readable finished
            sample.
    """
    parts = _Parts(parts_folder(out))
    if not parts.folder.is_dir():
        raise WorkflowError(f"no work folder {parts.folder} (nothing to collect for {out})")
    try:
        manifest = json.loads(parts.manifest.read_text())
        name, parameters, seed = manifest["protocol"], manifest["parameters"], int(manifest["seed"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WorkflowError(f"{parts.folder}: unreadable manifest.json ({err})") from None
    finished = parts.finished()
    if not finished:
        raise WorkflowError(f"{parts.folder} holds no finished sample yet")
    history = _history(manifest)
    history["command"] = history["command"] or f"collect_parts({str(out)!r})"
    # a protocol's potential is a class constant, or a parameter (glass)
    potential = parameters.get("potential") or getattr(PROTOCOLS.get(name), "potential", "")
    n_samples = manifest.get("n_samples", max(finished) + 1)  # older folders did not say
    ds = _assemble(
        name, parameters, potential, parts, n_samples, seed, history, [], skip_unreadable=True
    )
    provenance = {
        **ds.provenance,
        "complete": False,
        "collected_from_parts": True,
        "collected_by": f"collect_parts({str(out)!r})",
    }
    ds = Dataset.from_atoms(list(ds), ds.properties, provenance)
    if output is not None:
        ds.to_hdf5(output)
    return ds


def earlier_run(out: str | os.PathLike, count: bool = True) -> tuple[int | None, int]:
    """(seed, samples finished) of the run a resume into `out` continues: its work
    folder's, else its finished output's; (None, 0) when there is none or it cannot be
    read (the resume's own checks then name the problem). Sample files the resume
    drops (`_Parts.load` cannot use them) are not counted; `count=False` reads none of
    them and gives 0 samples (for the seed alone)."""
    out = Path(out)
    parts = _Parts(parts_folder(out))
    try:
        if parts.folder.is_dir():
            seed = (
                json.loads(parts.manifest.read_text())["seed"] if parts.manifest.exists() else None
            )
            return (None if seed is None else int(seed)), len(parts.usable()) if count else 0
        if out.exists():
            ds = Dataset.from_hdf5(out)
            try:
                return int(ds.provenance["seed"]), len(ds)
            finally:
                ds.close()
    except Exception:  # noqa: BLE001 - unreadable: the resume's own checks name it
        pass
    return None, 0


def run_lock(path: Path, what: str, remove: bool = False) -> contextlib.AbstractContextManager:
    """`amtoolkit.data._files.exclusive_lock` on `path` while a run uses `what` (its work
    folder or progress file), refusing with a WorkflowError."""
    return exclusive_lock(path, what, remove=remove, error=WorkflowError)


def _history(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run's history from its manifest or an output's provenance: the first
    ``command`` (None if not recorded), the commands that ``resumed`` it and the
    ``labels`` added to its output."""
    return {
        "command": record.get("command"),
        "resumed": list(record.get("resumed", [])),
        "labels": list(record.get("labels", [])),
    }


def _one_line(message: str) -> str:
    """The first non-empty line of `message` (LAMMPS adds "For more information see ..."
    lines; the full text is in the traceback the log keeps)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else message.strip()


@contextlib.contextmanager
def _logged_interrupt(log: _EventLog, parts: _Parts, n_samples: int) -> Iterator[None]:
    """Write an interrupt (Ctrl-C, or SIGTERM turned into one) to the run's log."""
    try:
        yield
    except KeyboardInterrupt:
        done = len([i for i in parts.finished() if i < n_samples])
        log.write(f"interrupted: {done} of {n_samples} samples done; resume to continue")
        raise


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


MAX_SAMPLES = 1_000_000
"""Most samples of one `make_dataset` run (each is a melt-quench of seconds to minutes;
10^12 spent its time planning, before any time limit applied)."""


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise WorkflowError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _EventLog:
    """Append-only text log; every line is flushed at once (a kill loses at most a line)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.path, "a", encoding="utf-8") as fh:
            for line in message.splitlines() or [""]:
                fh.write(f"{stamp} {line}\n")
            fh.flush()


class _Parts:
    """The ``<out>.parts`` folder: a manifest and one JSON file per finished sample."""

    PREFIX = "sample-"
    LOCK = "run.lock"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = folder / "manifest.json"
        self.scratch = folder / "md-scratch"  # LAMMPS' files of the samples in flight

    def path(self, index: int) -> Path:
        return self.folder / f"{self.PREFIX}{index:06d}.json"

    def create(self) -> None:
        try:
            self.folder.mkdir()
        except OSError as err:
            raise WorkflowError(
                f"cannot create the work folder {self.folder}: {err.strerror}"
            ) from None

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self._write_json(self.manifest, manifest)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the folder's lock (`run_lock`) for a run: one run at a time uses it."""
        return run_lock(self.folder / self.LOCK, str(self.folder))

    def check_manifest(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Raise WorkflowError if the folder belongs to a run with other settings; return
        the run's history (first command, resumes, labels; see `_assemble`).

        A folder without manifest and without samples (a run killed right after
        creating it) gets the manifest now. Sample files that do not parse are deleted
        (they are run again).
        """
        if not self.manifest.exists() and not self.finished():
            self._write_json(self.manifest, manifest)
            return _history({})
        try:
            found = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            raise WorkflowError(
                f"{self.folder} is not a make_dataset work folder (no readable manifest.json)"
            ) from None
        _check_same_run(found, manifest, str(self.folder))
        self._drop_unreadable()
        return _history(found)

    def update_history(self, history: Mapping[str, Any]) -> None:
        """Record the run's first command, its resumes and earlier labels in the manifest."""
        found = json.loads(self.manifest.read_text())
        self._write_json(self.manifest, {**found, **history})

    def _drop_unreadable(self) -> None:
        """Delete sample files that cannot be used (`load`; a crash of the machine after
        the rename but before the data reached the disk), with a warning: they are
        recomputed."""
        for index in self.finished():
            try:
                self.load(index)
            except ValueError as err:
                path = self.path(index)
                logger.warning("%s is unreadable (%s); sample %d is run again", path, err, index)
                path.unlink()

    def usable(self) -> list[int]:
        """Indices of the sample files that `load` can use (what a resume keeps)."""
        out = []
        for index in self.finished():
            with contextlib.suppress(ValueError):
                self.load(index)
                out.append(index)
        return out

    def finished(self) -> list[int]:
        """Indices of the complete sample files."""
        out = []
        for p in self.folder.glob(f"{self.PREFIX}*.json"):
            with contextlib.suppress(ValueError):
                out.append(int(p.stem[len(self.PREFIX) :]))
        return sorted(out)

    def write(self, index: int, record: Mapping[str, Any]) -> None:
        self._write_json(self.path(index), record)

    def load(self, index: int) -> tuple[dict[str, Any], Atoms]:
        """The record of sample `index` and its structure.

        Raises:
            ValueError: the file cannot be used, saying why: cut short or not JSON, a
                field missing or of the wrong kind, arrays of other lengths.
        """
        try:
            record = json.loads(self.path(index).read_text())
            atoms = Atoms(
                numbers=record["numbers"],
                positions=record["positions"],
                cell=record["cell"],
                pbc=record["pbc"],
            )
            for value in record["properties"].values():
                float(value)
            int(record["seed"]), int(record["attempt"]), float(record["wall_s"])
            dict(record.get("metadata", {}))
        except OSError as err:
            raise ValueError(err.strerror) from None
        except KeyError as err:
            raise ValueError(f"no {err.args[0]!r} field") from None
        except (TypeError, AttributeError) as err:
            raise ValueError(f"not a sample record: {err}") from None
        return record, atoms

    def remove(self) -> None:
        """Delete the folder: first renamed away (atomic), so a kill never leaves half of it."""
        trash = self.folder.with_name(self.folder.name + ".removing")
        os.replace(self.folder, trash)
        shutil.rmtree(trash)

    def remove_temporaries(self, out: Path) -> None:
        """Delete the temporary files of writes killed half-way (`atomic_path`'s): of
        sample files and the manifest, and of the output `out` beside it; and empty the
        LAMMPS scratch folder (what killed workers left there)."""
        for p in [*temporaries(self.folder / "*.json", pattern=True), *temporaries(out)]:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()

    def import_dataset(self, out: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Turn the frames of a finished output `out` back into parts (to extend a run);
        return its history (see `_assemble`). On any failure the work folder is removed
        again, so the output stays as it was and nothing is left behind."""
        try:
            return self._import_dataset(out, manifest)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _import_dataset(self, out: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
        from amtoolkit.data import DatasetError

        try:
            ds = Dataset.from_hdf5(out)
        except (DatasetError, OSError) as err:
            raise WorkflowError(f"cannot resume from {out}: {err}") from None
        prov = ds.provenance
        samples = prov.get("samples", [])
        if "split" in prov or len(samples) != len(ds):
            what = (
                f"the {prov['split'].get('part', '?')} part of a split"
                if isinstance(prov.get("split"), dict)
                else f"{len(ds)} frames for {len(samples)} sample records"
            )
            ds.close()
            raise WorkflowError(
                f"cannot resume {out}: it holds {what}, not the whole output of a "
                "make_dataset run; resume the run's own output file"
            )
        found = {
            "format": PARTS_FORMAT,
            "version": PARTS_VERSION,
            "protocol": prov.get("protocol"),
            "parameters": prov.get("parameters"),
            "seed": prov.get("seed"),
        }
        _check_same_run(found, manifest, str(out))
        properties = ds.properties
        for k, sample in enumerate(samples):
            atoms = ds.atoms(k)
            if "digest" in sample and sample["digest"] != frame_digest(atoms):
                ds.close()
                raise WorkflowError(
                    f"cannot resume {out}: frame {k} is not the structure of sample "
                    f"{sample['index']} its record names (frames reordered or edited); "
                    "resume the run's own output file"
                )
            metadata = {
                key: v
                for key, v in sample.items()
                if key not in ("index", "seed", "attempt", "wall_s", "digest")
            }
            self.write(
                int(sample["index"]),
                {
                    "ok": True,
                    "index": int(sample["index"]),
                    "seed": sample["seed"],
                    "attempt": sample["attempt"],
                    "wall_s": sample["wall_s"],
                    "numbers": atoms.numbers.tolist(),
                    "positions": atoms.positions.tolist(),
                    "cell": atoms.cell.array.tolist(),
                    "pbc": atoms.pbc.tolist(),
                    "properties": {
                        name: float(col[k])
                        for name, col in properties.items()
                        if np.isfinite(col[k])
                    },
                    "metadata": metadata,
                },
            )
        ds.close()
        history = _history(prov)
        self.update_history(history)
        return history

    @staticmethod
    def _write_json(path: Path, data: Mapping[str, Any]) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data))


def _check_same_run(found: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    """Raise WorkflowError naming the settings in which two runs differ."""
    if found.get("format") != PARTS_FORMAT or found.get("protocol") is None:
        raise WorkflowError(f"{where} was not written by make_dataset; cannot resume it")
    diffs = []
    if found.get("protocol") != expected["protocol"]:
        diffs.append(f"protocol {found.get('protocol')!r} != {expected['protocol']!r}")
    if found.get("seed") != expected["seed"]:
        diffs.append(f"seed {found.get('seed')} != {expected['seed']}")
    old = found.get("parameters") or {}
    new = json.loads(json.dumps(expected["parameters"]))
    if not diffs or found.get("protocol") == expected["protocol"]:  # one protocol's options
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                diffs.append(f"{key} {old.get(key)!r} != {new.get(key)!r}")
    if diffs:
        raise WorkflowError(
            f"cannot resume {where}: it was made with other settings ({'; '.join(diffs)}); "
            f"resume it with its own settings, or delete {where} to start afresh"
        )
