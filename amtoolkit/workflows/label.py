"""Label one's own structures as the melt-quench workflows label theirs.

`label_dataset` measures, frame by frame, the labels `make_dataset` gives its samples:
``density`` of the structure as given, ``relaxed_energy`` (eV/atom) after relaxing
positions and cell at zero pressure with a classical potential, with ``elastic`` the
relaxed-ion moduli (``shear_modulus``, ``bulk_modulus``, ``youngs_modulus`` in GPa and
``poisson_ratio``), with ``rings`` the mean shortest-path ring size (``ring_size``,
in Si atoms when Si and O are present), and ``li_fraction`` (atom fraction of Li) of a
set that holds Li, as the `meg` protocol labels it. The same functions measure them
(`workflows.base.relaxed_labels`), with the elastic settings ``amtool analyze
--elastic`` uses for the potential, so own structures, generated datasets and analysed
structures carry labels a model can be trained or checked on side by side.

Frames run in worker processes; each finished frame is appended to ``<out>.labels.jsonl``
(one line with the frame's digest, flushed to the disk), so an interrupted run keeps what
it measured and ``resume=True`` measures only the rest, of the same frames only. One run
at a time labels into `out` (it holds ``<out>.labels.lock`` while it runs). The output is
the input dataset with the label columns added (`Dataset.with_properties`, which records
how they were made).

Example:
    >>> from amtoolkit.workflows import label_dataset
    >>> ds = label_dataset("my_glasses.extxyz", "labelled.h5", potential="tersoff-sio2",
    ...                    elastic=True, rings=True, workers=2)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from amtoolkit._processes import run_unordered
from amtoolkit.analysis._structures import frame_digest
from amtoolkit.data import Dataset, open_dataset
from amtoolkit.data._files import atomic_path, temporaries
from amtoolkit.data.properties import implausible_labels
from amtoolkit.io import DATASET_SUFFIXES
from amtoolkit.workflows.base import relaxed_labels
from amtoolkit.workflows.runner import WorkflowError, logger, run_lock

__all__ = ["LABEL_FMAX", "label_dataset", "labels_of", "progress_path"]

LABEL_FMAX = 0.01
"""Force criterion of the relaxations, eV/Å (the melt-quench protocols' default)."""


def progress_path(out: str | os.PathLike) -> Path:
    """The file of finished frames of a labelling run into `out`: ``<out>.labels.jsonl``."""
    p = Path(out)
    return p.with_name(p.name + ".labels.jsonl")


def _lock_path(out: Path) -> Path:
    """The lock file a labelling run into `out` holds while it runs (`run_lock`)."""
    return out.with_name(out.name + ".labels.lock")


def labels_of(
    atoms: Atoms,
    potential: str | None,
    elastic: bool = False,
    rings: bool = False,
    elastic_delta: float = 0.005,
    notes: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The labels of one structure (see the module docstring); NaN where one fails to
    measure (a relaxation that breaks), so that one frame does not stop the run.

    ``relaxed_energy`` is measured after a relaxation to `LABEL_FMAX`, as `amtool dataset
    make` measures it, with or without `elastic`. The elastic fit then relaxes further to
    the potential's elastic settings, those of ``amtool analyze --elastic``
    (`analysis.elastic.elastic_settings`: fmax 1e-2 eV/Å and 3 strains for
    `tersoff-sio2`, 1e-4 and 5 for `sw-si`), so the moduli equal what analyze measures.

    With a potential, `notes` (when given) is filled with the relaxations' notes
    (`relaxed_labels`: ``unconverged_relaxations``, the relaxations that stopped at their
    step limit above their fmax, the elastic fit's residual, and ``elastic_unstable``
    when the fitted stiffness matrix is not positive definite).
    """
    from amtoolkit.analysis.energy import density
    from amtoolkit.analysis.rings import rings as ring_stats

    out: dict[str, float] = {"density": density(atoms)}
    if potential is not None:
        fit: dict[str, Any] = {}
        if elastic:
            from amtoolkit.analysis.elastic import elastic_settings

            settings = elastic_settings(potential)
            fit = {"elastic_fmax": settings["fmax"], "elastic_steps": settings["n_steps"]}
        measured, measured_notes = relaxed_labels(
            atoms,
            potential,
            fmax=LABEL_FMAX,
            elastic=elastic,
            elastic_delta=elastic_delta,
            **fit,
        )
        out.update(measured)
        if notes is not None:
            notes.update(measured_notes)
    if rings:
        symbols = set(atoms.get_chemical_symbols())
        count = "Si" if {"Si", "O"} <= symbols else None
        out["ring_size"] = float(ring_stats(atoms, count_species=count).mean_size)
    return out


def label_dataset(
    dataset: str | os.PathLike | Dataset,
    out: str | os.PathLike,
    *,
    potential: str | None = None,
    elastic: bool = False,
    rings: bool = False,
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> Dataset:
    """Measure the labels of every frame of `dataset` and write it with them to `out`.

    Args:
        dataset: a Dataset, a file (extxyz, HDF5, anything `open_dataset` reads) or a
            shipped dataset name.
        out: the labelled dataset (HDF5, ``.h5``), written when every frame is done.
        potential: classical potential (`amtool potentials`) for ``relaxed_energy`` and
            the elastic moduli; None measures only ``density`` and, with `rings`, rings.
        elastic: also the relaxed-ion elastic moduli (needs `potential`).
        rings: also the mean ring size.
        workers: worker processes (frames in parallel).
        resume: continue an interrupted run into `out` (its ``.labels.jsonl``).
        progress: a tqdm bar over the frames.
        command: recorded with the labels (default: the command line).

    Returns:
        The labelled dataset, read back from `out`.

    Raises:
        WorkflowError: bad input (an output not ending in .h5, an existing output or
            progress file without `resume`, `elastic` without a potential, a potential
            that does not cover the elements), or a resume of another dataset (a frame
            the progress file measured differs from the input's frame of that index),
            or another run is labelling into `out`.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if out.suffix.lower() not in DATASET_SUFFIXES:
        raise WorkflowError(f"{out}: the labelled dataset is HDF5; name it .h5")
    if not out.parent.is_dir():
        raise WorkflowError(f"output folder does not exist: {out.parent}")
    if elastic and potential is None:
        raise WorkflowError("elastic moduli need a classical potential (potential=, -p NAME)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise WorkflowError(f"workers must be an integer >= 1, got {workers!r}")
    if workers > 1:
        from amtoolkit._processes import check_main_guard

        check_main_guard()  # before the .labels.jsonl is opened
    journal = progress_path(out)
    with run_lock(_lock_path(out), str(journal), remove=True):  # one run at a time
        if not resume and journal.exists():  # an unfinished run
            raise WorkflowError(
                f"{journal} exists: an unfinished run into {out}; resume it (resume=True, "
                "--resume) or delete it to start afresh"
            )
        if not resume and out.exists():
            raise WorkflowError(
                f"{out} exists (a finished run, or another file): choose another output or "
                "delete it"
            )
        if resume and out.exists() and not journal.exists():  # finished, or not ours at all
            raise WorkflowError(
                f"{out} exists without {journal.name}: nothing to resume (a finished run removes "
                "its progress file); choose another output"
            )
        for stale in [*temporaries(out), *temporaries(journal)]:  # writes cut by a kill
            stale.unlink()
        data = dataset if isinstance(dataset, Dataset) else _open(dataset)
        source = str(dataset) if not isinstance(dataset, Dataset) else "a Dataset"
        if potential is not None:
            _check_coverage(data, potential)
        lithium, digests = _check_frames(data, source, potential)
        options = {"potential": potential, "elastic": elastic, "rings": rings, "frames": len(data)}
        done, notes, recorded = (
            _read_journal(journal, options, digests, source) if resume else ({}, {}, False)
        )
        if not recorded:  # a new run, or one killed before its options reached the disk
            _append(journal, {"options": options})
        command = command if command is not None else shlex.join(sys.argv)
        todo = [k for k in range(len(data)) if k not in done]
        bar = tqdm(
            total=len(data), initial=len(done), desc="label", unit="frame", disable=not progress
        )
        try:
            for k, labels, frame_notes in _measure(data, todo, potential, elastic, rings, workers):
                done[k] = labels
                entry = {"frame": k, "digest": digests[k], "labels": labels}
                if frame_notes:
                    notes[k] = entry["notes"] = frame_notes
                _append(journal, entry)
                odd = implausible_labels(labels)
                if odd:
                    logger.warning("frame %d has implausible labels (%s)", k, ", ".join(odd))
                short = frame_notes.get("unconverged_relaxations")
                if short:
                    logger.warning(
                        "frame %d: %d relaxation(s) stopped at their step limit above their "
                        "fmax; its relaxed labels are not converged",
                        k,
                        short,
                    )
                if frame_notes.get("elastic_unstable"):
                    logger.warning(
                        "frame %d: its stiffness matrix is not positive definite; its elastic "
                        "labels describe no stable solid",
                        k,
                    )
                bar.update(1)
        finally:
            bar.close()
        names = sorted({name for labels in done.values() for name in labels})
        columns = {n: [done[k].get(n, np.nan) for k in range(len(data))] for n in names}
        columns.update(composition_labels(lithium))
        how = f"{command} (amtoolkit.workflows.label_dataset of {source})"
        samples = [{"index": k, "digest": digests[k], **notes[k]} for k in sorted(notes)]
        data.with_properties(columns, how=how, samples=samples or None).to_hdf5(out)
        journal.unlink()
        return Dataset.from_hdf5(out)


LITHIUM = 3
"""Atomic number of Li (`composition_labels`)."""


def composition_labels(lithium: Sequence[tuple[int, int]]) -> dict[str, list[float]]:
    """The labels read off the composition, as the `meg` protocol gives them, from
    (Li atoms, real atoms) per frame: ``li_fraction`` when any frame holds Li."""
    if not any(li for li, _ in lithium):
        return {}
    return {"li_fraction": [li / n if n else np.nan for li, n in lithium]}


def _open(spec: str | os.PathLike) -> Dataset:
    try:
        return open_dataset(spec)
    except (OSError, ValueError) as err:
        raise WorkflowError(str(err)) from None


def _check_frames(
    data: Dataset, source: str, potential: str | None
) -> tuple[list[tuple[int, int]], list[str]]:
    """Refuse, naming the first such frame, a frame no label can be measured on as the
    melt-quench workflows measure theirs: not a 3D-periodic cell with volume (density is
    per volume), or, under a potential with fixed charges, a charged cell (its energy
    depends on the Coulomb summation, not on the material). Returns, from the same
    pass, (Li atoms, real atoms) of each frame, for `composition_labels`, and each
    frame's `frame_digest`, which the progress file records to refuse a resume of other
    frames."""
    from amtoolkit.analysis._structures import check_structure
    from amtoolkit.errors import StructureError
    from amtoolkit.potentials import get_spec
    from amtoolkit.potentials.calculator import charge_message

    spec = get_spec(potential) if potential is not None else None
    lithium, digests = [], []
    for k in range(len(data)):
        atoms = data.atoms(k)
        try:
            check_structure(atoms, periodic=True)
        except StructureError as err:
            raise WorkflowError(f"{source}[{k}]: {err}") from None
        charged = charge_message(atoms, spec) if spec is not None else None  # None: neutral
        if charged:
            raise WorkflowError(f"{source}[{k}]: {charged}; labels of a charged cell mean nothing")
        real = atoms.numbers[atoms.numbers != 0]
        lithium.append((int(np.count_nonzero(real == LITHIUM)), len(real)))
        digests.append(frame_digest(atoms))
    return lithium, digests


def _check_coverage(data: Dataset, potential: str) -> None:
    from ase.data import chemical_symbols

    from amtoolkit.potentials import check_elements

    numbers = sorted({int(z) for i in range(len(data)) for z in np.unique(data.frame(i).numbers)})
    try:
        check_elements(potential, [chemical_symbols[z] for z in numbers if z])
    except KeyError as err:  # an unknown name: its message, not the KeyError's repr
        raise WorkflowError(str(err.args[0])) from None
    except ValueError as err:
        raise WorkflowError(str(err)) from None


def _measure(
    data: Dataset,
    todo: Sequence[int],
    potential: str | None,
    elastic: bool,
    rings: bool,
    workers: int,
) -> Iterator[tuple[int, dict[str, float], dict[str, Any]]]:
    """(frame, labels, notes) as frames finish, in `workers` processes (frames are read
    one at a time in one process)."""
    if workers == 1 or len(todo) == 1:
        for k in todo:
            yield k, *_safe_labels(data.atoms(k), potential, elastic, rings, k)
        return
    calls = [(data.atoms(k), potential, elastic, rings, k) for k in todo]
    for j, (labels, notes) in run_unordered(_safe_labels, calls, workers, preload=[__name__]):
        yield todo[j], labels, notes


def _safe_labels(
    atoms: Atoms, potential: str | None, elastic: bool, rings: bool, k: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """`labels_of` and its notes, with a failure logged and its labels left missing
    (density kept)."""
    notes: dict[str, Any] = {}
    try:
        return labels_of(atoms, potential, elastic=elastic, rings=rings, notes=notes), notes
    except Exception as err:  # noqa: BLE001 - one frame's failure leaves its labels missing
        logger.warning("frame %d: labels not measured (%s: %s)", k, type(err).__name__, err)
        from amtoolkit.analysis.energy import density

        return {"density": density(atoms)}, {}


def _read_journal(
    path: Path, options: dict[str, Any], digests: Sequence[str], source: str
) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, Any]], bool]:
    """The labels of the frames a run already measured, their notes (`labels_of`), and
    whether the journal records its options; refuses a journal of other settings, of
    frames without its options line, or of other frames (a measured frame whose digest is
    not that of `source`'s frame of its index, `digests`). A last line cut short by a
    kill is ignored."""
    if not path.exists():
        return {}, {}, False
    done: dict[int, dict[str, float]] = {}
    notes: dict[int, dict[str, Any]] = {}
    measured: dict[int, str | None] = {}  # frame -> its digest (None: a line without)
    recorded = False  # an options line was read
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines) - 1:  # the line a kill interrupted: drop it
                with atomic_path(path) as tmp:
                    tmp.write_text("".join(f"{kept}\n" for kept in lines[:-1]), "utf-8")
                break
            raise WorkflowError(f"{path}: line {number + 1} is not JSON") from None
        if "options" in entry and entry["options"] != json.loads(json.dumps(options)):
            raise WorkflowError(
                f"cannot resume {path}: it measured {entry['options']}, this run asks "
                f"{options}; delete it to start afresh"
            )
        recorded = recorded or "options" in entry
        if "frame" in entry:
            if not recorded:
                raise WorkflowError(
                    f"cannot resume {path}: {path.name} has no options line before its "
                    "frames (cut or edited), so its labels cannot be matched to this run; "
                    "delete it to start afresh"
                )
            done[int(entry["frame"])] = {k: float(v) for k, v in entry["labels"].items()}
            if entry.get("notes"):
                notes[int(entry["frame"])] = dict(entry["notes"])
            measured[int(entry["frame"])] = entry.get("digest")
    for k in sorted(measured):
        if measured[k] is None:
            raise WorkflowError(
                f"cannot resume {path}: it records no digest of frame {k} (an older "
                "amtoolkit wrote it), so the frames cannot be checked; delete it to start afresh"
            )
        if k >= len(digests) or measured[k] != digests[k]:
            raise WorkflowError(
                f"cannot resume {path}: frame {k} of {source} is not the frame it measured "
                "(another input, or frames reordered or edited); label into another output, "
                "or delete it to start afresh"
            )
    return done, notes, recorded


def _append(path: Path, entry: dict[str, Any]) -> None:
    """One JSON line, on the disk before the call returns."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
