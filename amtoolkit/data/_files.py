"""File helpers shared by the dataset readers and writers: atomic writes, provenance."""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def check_writable(path: str | os.PathLike) -> Path:
    """Return `path` as a Path if a file can be written there, before any work is done.

    Raises:
        FileNotFoundError: its folder does not exist (both named).
        IsADirectoryError: `path` is a folder.
        PermissionError: its folder cannot be written to.
    """
    target = Path(path)
    if not str(path).strip():
        raise FileNotFoundError("cannot write to an empty file name")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):  # the file is written beside, then moved
        raise PermissionError(f"cannot write {target}: folder {directory} is not writable")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path` atomically.

    The temporary file lives in the same directory (so ``os.replace`` is atomic), ends
    like `path` (so writers that go by the ending, e.g. matplotlib, pick the same
    format) and is removed if the body raises; an existing `path` is untouched until the
    body succeeds, and keeps its permissions (a new file gets 0666 minus the umask).

    Raises:
        FileNotFoundError, IsADirectoryError: `path` cannot be written (`check_writable`).
    """
    target = check_writable(path)
    prefix, suffix = _temporary_affixes(target)
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600 files
        _fsync(tmp)  # the data reach the disk before the name does: a crash leaves old or new
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def temporaries(target: str | os.PathLike, pattern: bool = False) -> list[Path]:
    """The temporary files `atomic_path` left beside `target`: those of writes killed
    half-way (``.<name>.<8 random characters><suffix>``, e.g.
    ``.sample-000002.json.9knb32wq.json``). `pattern`: the name of `target` is a glob
    (``parts/sample-*.json`` finds those of every sample file)."""
    target = Path(target)
    prefix, suffix = _temporary_affixes(target)
    if not pattern:
        prefix = glob.escape(prefix)
    return sorted(p for p in target.parent.glob(f"{prefix}*{suffix}") if p.is_file())


def _temporary_affixes(target: Path) -> tuple[str, str]:
    """Prefix and suffix of `atomic_path`'s temporary file for `target`: hidden, and
    ending like `target` (writers that go by the ending pick the same format)."""
    return f".{target.name}.", target.suffix or ".tmp"


def _fsync(path: Path) -> None:
    """Flush `path`'s data to the disk (no-op where a file cannot be opened to sync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _mode_for(target: Path) -> int:
    """Permissions of an existing `target`, else the usual 0666 minus the umask."""
    if target.exists():
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_readable(path: str | os.PathLike, what: str = "file") -> Path:
    """Return `path` as a Path, raising FileNotFoundError naming it if it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def provenance(source: Any, command: str, **extra: Any) -> dict[str, Any]:
    """Provenance record of a dataset: where it came from, how, when, with which version."""
    from amtoolkit import __version__

    record: dict[str, Any] = {
        "source": source,
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "amtoolkit_version": __version__,
    }
    record.update(extra)
    return record


PER_SAMPLE_KEYS = ("samples", "failed_samples")
"""Provenance keys that hold one record per sample (the melt-quench workflows)."""


def condensed_provenance(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with each per-sample list replaced by its length and a SHA-256 digest.

    A model card names its dataset; it need not carry the log of every LAMMPS run that
    made it (hundreds of kB). ``samples: [...]`` becomes ``samples: {"count": n,
    "sha256": ...}``, the digest of the list as compact, key-sorted JSON, so a copy of
    the dataset can still be matched to the card. Other keys are kept as they are.
    """
    condensed = dict(record)
    for key in PER_SAMPLE_KEYS:
        value = condensed.get(key)
        if isinstance(value, list):
            condensed[key] = {"count": len(value), "sha256": records_digest(value)}
    return condensed


def records_digest(records: list[Any]) -> str:
    """SHA-256 of `records` as compact, key-sorted JSON (kept by `condensed_provenance`)."""
    text = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _holder(fd: int) -> str:
    """The process id a lock's holder wrote in its lock file (open as `fd`)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def lock_holder(path: str | os.PathLike) -> str | None:
    """The process id written in lock file `path` when a live run holds it, else None
    (no such file, nobody holds it, or no ``fcntl``). Takes no lock that outlives the
    call."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops a lock taken here
    return None


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike,
    what: str,
    remove: bool = False,
    error: type[Exception] = ValueError,
) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing; it holds the holder's
    process id) while a run uses `what` (its work folder or progress file).

    The lock is the kernel's (``flock``): it goes with the process that holds it, so a
    run killed with ``kill -9`` does not block its resume. `remove`: delete `path` when
    the run ends. A lock file removed by the run that held it (one that finished) is
    made again. No lock where ``fcntl`` is missing (Windows).

    Raises:
        `error`: another live run holds the lock (its process id named), or the
            folder of `path` is gone (removed by another run that finished).
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # no flock on this system: runs are not guarded
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            raise error(f"{path.parent} is gone: another run into it finished meanwhile?") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise error(f"another run is using {what} (pid {holder})") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as it ended: lock a new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(fd)
