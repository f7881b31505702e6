"""Potential-based analyses of many frames in worker processes (``Analyzer(workers=N)``).

Relaxations and elastic constants are independent per frame and each runs serial LAMMPS,
so a set is shared out over worker processes, one frame per task (`amtoolkit._processes`:
forkserver workers with one thread each). Every worker builds the potential once, from
its name and options, and runs the same code as the serial path
(:func:`amtoolkit.analysis.report.run_frame`), so the numbers are the same as in one
process. A frame that fails comes back as its exception and fails only that frame.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ase import Atoms

from amtoolkit._processes import run_unordered
from amtoolkit.analysis.report import FrameOutcome, FrameRunner, FrameTasks, run_frame

__all__ = ["pool_frames"]

_ANALYZERS: dict[str, Any] = {}
"""Per worker process: one Analyzer per (potential, options), built on first use."""


def _analyzer(potential: str | None, options: Mapping[str, Any]) -> Any:
    from amtoolkit.analyzer import Analyzer

    key = json.dumps([potential, options], sort_keys=True, default=str)
    if key not in _ANALYZERS:
        _ANALYZERS[key] = Analyzer(potential, **options)
    return _ANALYZERS[key]


def _frame_task(
    potential: str | None, options: Mapping[str, Any], tasks: FrameTasks, atoms: Atoms
) -> FrameOutcome:
    """One frame in a worker: its results, or the exception (made picklable) that failed it."""
    try:
        return run_frame(_analyzer(potential, options)._run, tasks, atoms)
    except Exception as exc:  # the frame fails, the worker goes on
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - e.g. an error holding a LAMMPS handle
            return RuntimeError(f"{type(exc).__name__}: {exc}")
        return exc


def pool_frames(potential: str | None, options: Mapping[str, Any], workers: int) -> FrameRunner:
    """A `FrameRunner` that shares the frames out over `workers` processes.

    Args:
        potential: potential name (``amtoolkit.potentials.POTENTIALS``), or None for
            analyses without one (rings, crystallinity).
        options: keyword arguments of ``get_calculator`` for that potential.
        workers: worker processes (at most one per frame).

    Returns:
        ``run_frames(tasks, frames)``, yielding ``(k, outcome)`` as frames finish.
    """

    def run_frames(
        tasks: FrameTasks, frames: Sequence[Atoms]
    ) -> Iterator[tuple[int, FrameOutcome]]:
        calls = [(potential, dict(options), list(tasks), atoms) for atoms in frames]
        yield from run_unordered(
            _frame_task, calls, workers, preload=["amtoolkit.analyzer", __name__]
        )

    return run_frames
