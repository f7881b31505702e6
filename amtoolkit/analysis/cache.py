"""A cache of per-frame analysis results on disk.

The per-frame analyses (`analysis.report.FRAME_ANALYSES`: relaxed energy, elastic
moduli, VDOS, crystallinity, rings) take seconds to minutes a frame, so a set of a few hundred
frames is a long run. With a cache every frame's results are written as the frame
finishes, one file per frame (temporary file, then ``os.replace``: a file is whole or
absent), and a later run of the same analyses with the same potential reads them back
instead of measuring the frame again: an interrupted ``amtool analyze`` continues where
it stopped, and a set that grows measures only its new frames.

An entry is found by a key over everything the results depend on: the frame (elements,
cell, positions, periodicity, and masses and charges where set), the analyses with their
options, the potential with its options, and the amtoolkit version. Changing any of them
measures afresh. Entries are Python pickles: read only caches you wrote yourself.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from amtoolkit.analysis._result import to_jsonable
from amtoolkit.analysis._structures import frame_digest
from amtoolkit.analysis.report import FrameOutcome, FrameResults, FrameRunner, FrameTasks

__all__ = ["CACHE_ENV", "FrameCache", "cached_frames", "default_cache_dir"]

CACHE_ENV = "AMTOOLKIT_CACHE"
"""Environment variable naming the default cache folder (`default_cache_dir`)."""

_FORMAT = 1
"""Layout of the keys and entries; a change makes old entries misses."""
_SUFFIX = ".pkl"


def default_cache_dir() -> Path:
    """``$AMTOOLKIT_CACHE``, else ``$XDG_CACHE_HOME/amtoolkit/frames``, else
    ``~/.cache/amtoolkit/frames``: where ``amtool analyze`` keeps per-frame results."""
    named = os.environ.get(CACHE_ENV)
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "amtoolkit" / "frames"


class FrameCache:
    """Per-frame analysis results in a folder, one file per frame and set of analyses.

    Args:
        directory: the cache folder (made when the first entry is written).
        potential: the potential's name or potential file (None for analyses without
            one); a file counts by its content and that of the parameter files it names.
        potential_options: keyword arguments the potential was built with.

    Attributes:
        hits: entries read back since the cache was made.
        stored: entries written since the cache was made.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        potential: str | None,
        potential_options: Mapping[str, Any] | None = None,
    ) -> None:
        from amtoolkit import __version__

        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"cache {self.directory} is a file, not a folder")
        identity = potential
        if potential is not None:
            from amtoolkit.potentials.files import is_potential_file, load_potential

            if is_potential_file(potential):
                identity = load_potential(potential).digest
        self._context = _canonical([_FORMAT, __version__, identity, dict(potential_options or {})])
        self.hits = 0
        self.stored = 0

    def __repr__(self) -> str:
        return f"FrameCache({str(self.directory)!r})"

    def key(self, tasks: FrameTasks, atoms: Atoms) -> str:
        """The entry name of the results of `tasks` on `atoms` (hex SHA-256)."""
        digest = hashlib.sha256(self._context.encode())
        digest.update(_canonical([[name, dict(options)] for name, options in tasks]).encode())
        digest.update(frame_digest(atoms).encode())
        digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
        for name in ("masses", "initial_charges"):
            if atoms.has(name):
                digest.update(name.encode())
                digest.update(np.asarray(atoms.arrays[name], dtype=np.float64).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> FrameResults | None:
        """The results stored under `key`, or None (absent, or unreadable: e.g. written by
        an amtoolkit whose result types differ)."""
        path = self.directory / (key + _SUFFIX)
        try:
            with open(path, "rb") as fh:
                entry = pickle.load(fh)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a broken or foreign entry is a miss; rewritten later
            return None
        if not isinstance(entry, FrameResults):
            return None
        self.hits += 1
        return entry

    def put(self, key: str, results: FrameResults) -> None:
        """Store `results` under `key`, atomically (temporary file, then rename)."""
        from amtoolkit.data._files import atomic_path

        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / (key + _SUFFIX)) as tmp, open(tmp, "wb") as fh:
            pickle.dump(results, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.stored += 1


def cached_frames(runner: FrameRunner, cache: FrameCache) -> FrameRunner:
    """A `FrameRunner` that reads the frames `cache` holds and runs only the others
    through `runner`, storing each one's results as it finishes (failures are not
    stored: a rerun tries those frames again)."""

    def run_frames(
        tasks: FrameTasks, frames: Sequence[Atoms]
    ) -> Iterator[tuple[int, FrameOutcome]]:
        keys = [cache.key(tasks, atoms) for atoms in frames]
        todo = []
        for k, key in enumerate(keys):
            found = cache.get(key)
            if found is None:
                todo.append(k)
            else:
                yield k, found
        if not todo:
            return
        storing = True
        for j, outcome in runner(tasks, [frames[k] for k in todo]):
            k = todo[j]
            if storing and isinstance(outcome, FrameResults):
                try:
                    cache.put(keys[k], outcome)
                except OSError as err:  # a full disk loses the cache, not the run
                    storing = False
                    warnings.warn(
                        f"cannot write the analysis cache {cache.directory}: {err}; the "
                        "results are not kept for a rerun",
                        UserWarning,
                        stacklevel=2,
                    )
            yield k, outcome

    return run_frames


def _canonical(value: Any) -> str:
    """One JSON text per value (sorted keys; arrays as lists, other values by their repr)."""
    return json.dumps(to_jsonable(value), sort_keys=True, default=repr, separators=(",", ":"))
