"""Structure readers and writers: every frame ASE can read, plus LAMMPS data files done right.

LAMMPS data files carry atom *types*, not elements. `read_structures` maps types to
elements with an explicit type map (``{1: "O", 2: "Si"}`` or ``"1=O,2=Si"``) or, without
one, from the ``Masses`` section when every mass matches an element. The atom style comes
from the ``Atoms # <style>`` comment (as written by LAMMPS ``write_data``) and the units
from the ``units = <style>`` note on the first line, so the DM2 SiO2 files
(``atom_style charge``, ``units real``) read without options.

Every failure is an exception whose message is one line naming the file.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import ase.io
import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.io.formats import UnknownFileTypeError, filetype, ioformats

from amtoolkit.data._files import atomic_path, check_writable
from amtoolkit.errors import user_stacklevel

__all__ = [
    "atomic_output",
    "DATASET_SUFFIXES",
    "check_writable",
    "frame_numbers",
    "read_numbered",
    "read_stream",
    "LAMMPS_DATA_SUFFIXES",
    "MASS_TOLERANCE",
    "ReadError",
    "parse_type_map",
    "read_structures",
    "write_json",
    "write_structures",
]

LAMMPS_DATA_SUFFIXES = (".data", ".dat", ".lmp", ".lammps", ".lammps-data")
"""File name endings taken to be LAMMPS data files when no format is given."""

DATASET_SUFFIXES = (".h5", ".hdf5")
"""File name endings read as amtoolkit HDF5 datasets (`amtoolkit.data.hdf5`) when no
format is given."""

MASS_TOLERANCE = 0.1
"""Largest difference (atomic mass units) between a ``Masses`` entry and an element's mass
for the element to be inferred from it."""

_LAMMPS_FORMATS = ("lammps-data", "lammps", "lammpsdata")
_LAMMPS_DUMP_TEXT = "lammps-dump-text"
_LAMMPS_DUMP_BINARY = "lammps-dump-binary"
_LAMMPS_DUMP_FORMATS = (_LAMMPS_DUMP_TEXT, _LAMMPS_DUMP_BINARY)
_HEADER_SCAN_LINES = 200  # lines searched for the "xlo xhi" box line when sniffing a format


class ReadError(ValueError):
    """A structure file cannot be read; the message is one line naming the file."""


TypeMap = Mapping[int, str | int]


def parse_type_map(text: str | TypeMap | None) -> dict[int, int] | None:
    """Parse a LAMMPS type -> element map.

    Args:
        text: ``"1=O,2=Si"`` (as given on the command line), a mapping ``{1: "O", 2: 14}``
            (element symbols or atomic numbers), or None.

    Returns:
        ``{type: atomic_number}``, or None when `text` is None or empty.

    Raises:
        ValueError: with a one-line message naming the bad entry (missing ``=``, a type
            that is not a positive integer, an unknown element, a type given twice).

    Examples:
        >>> parse_type_map("1=O,2=Si")
        {1: 8, 2: 14}
    """
    if text is None:
        return None
    if isinstance(text, str):
        entries = [e.strip() for e in text.split(",") if e.strip()]
        if not entries:
            return None
        pairs = []
        for entry in entries:
            if entry.count("=") != 1:
                raise ValueError(f"bad type map entry {entry!r}: expected TYPE=ELEMENT, e.g. 1=O")
            key, value = (s.strip() for s in entry.split("="))
            pairs.append((entry, key, value))
    else:
        pairs = [(f"{k}={v}", k, v) for k, v in text.items()]
        if not pairs:
            return None

    out: dict[int, int] = {}
    for entry, key, value in pairs:
        try:
            lammps_type = int(key)
        except (TypeError, ValueError):
            raise ValueError(
                f"bad type map entry {entry!r}: LAMMPS type {key!r} is not an integer"
            ) from None
        if lammps_type < 1:
            raise ValueError(f"bad type map entry {entry!r}: LAMMPS types start at 1")
        if lammps_type in out:
            raise ValueError(f"bad type map: LAMMPS type {lammps_type} is given twice")
        out[lammps_type] = _atomic_number(value, entry)
    return out


def _atomic_number(value: str | int, entry: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= int(value) < len(chemical_symbols):
            return int(value)
    elif isinstance(value, str) and value in atomic_numbers:
        return atomic_numbers[value]
    meant = str(value).strip().capitalize()
    hint = f" (did you mean {meant}?)" if meant in atomic_numbers else ""
    raise ValueError(f"bad type map entry {entry!r}: {value!r} is not an element symbol{hint}")


def read_structures(
    path: str | os.PathLike,
    index: str | int | slice = ":",
    format: str | None = None,
    type_map: str | TypeMap | None = None,
    *,
    units: str | None = None,
    atom_style: str | None = None,
) -> list[Atoms]:
    """Read the frames of a structure file as a list of Atoms.

    Reads anything ``ase.io.read`` reads (extxyz with ``atoms.info`` properties and ghost
    atoms ``X``, POSCAR, CIF, ...), LAMMPS data files, which are recognised by their
    ending (`LAMMPS_DATA_SUFFIXES`) or by an ``xlo xhi`` box line in the header, and
    amtoolkit HDF5 datasets (`DATASET_SUFFIXES`; their properties in ``atoms.info``).

    Args:
        path: file to read.
        index: frames to return, as in ``ase.io.read`` (``":"`` all, ``-1`` last,
            ``"0:10:2"``, an int or a slice). A LAMMPS data file holds one frame.
        format: ASE format name; None guesses it. ``"lammps-data"`` forces the LAMMPS reader.
        type_map: LAMMPS type -> element, ``{1: "O", 2: "Si"}`` or ``"1=O,2=Si"``. Without
            it the elements of a data file come from its ``Masses`` section; a text dump
            (ASE's ``lammps-dump-text``, e.g. ``*.lammpstrj``) needs it unless it has an
            ``element`` column, which then wins; a binary dump (``lammps-dump-binary``,
            recognised by its header, its columns read from it) always needs it.
        units: LAMMPS units style of a data file; None reads it from the ``units = ...``
            note on the first line (LAMMPS ``write_data``) and falls back to ``metal``.
        atom_style: LAMMPS atom style of a data file (``atomic``, ``charge``, ``full``,
            ...); None reads it from the ``Atoms # style`` line and, without one, lets
            ASE guess it from the number of columns.

    Returns:
        The selected frames (a list, also for a single frame). LAMMPS frames keep the
        arrays ``type`` and ``id`` (and ``initial_charges``, velocities when present).

    Raises:
        FileNotFoundError: `path` does not exist.
        ReadError: the file cannot be parsed, selects no frame, or has a LAMMPS type
            that cannot be mapped to an element (the message names the type and file).
        ValueError: `type_map` is malformed.
    """
    path = Path(path)
    if format is not None and format not in ioformats:
        import difflib

        close = difflib.get_close_matches(format, list(ioformats), n=3)
        raise ReadError(
            f"unknown format {format!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + "; e.g. extxyz, vasp, cif, lammps-data, lammps-dump-text "
            "(ase.io.formats.ioformats lists all)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ReadError(f"{path}: is a directory, not a structure file")
    if path.stat().st_size == 0:
        raise ReadError(f"{path}: the file is empty")
    numbers_of_type = parse_type_map(type_map)

    if format is None and _starts_like_a_text_dump(path):  # whatever its ending says
        format = _LAMMPS_DUMP_TEXT
    if format is None and _uncompressed_suffix(path) in DATASET_SUFFIXES:
        frames = _read_dataset(path, index)
    elif _is_lammps_data(path, format):
        frames = [_read_lammps_data(path, numbers_of_type, units, atom_style)]
        frames = _select(frames, index, path)
    else:
        found = format or _guess_format(path)
        with _plain_copy(path) as source:
            frames = _read_with_ase(source, path, index, found, format, numbers_of_type)
    if not frames:
        raise ReadError(f"{path}: no frames selected by index {index!r}")
    return frames


@contextlib.contextmanager
def _plain_copy(path: Path) -> Iterator[Path]:
    """`path`, or for a compressed file (.gz, .bz2, .xz) a decompressed temporary copy:
    ASE reads a compressed trajectory again from its start for every frame (44 s for
    the last of 400 frames of 3000 atoms against 3 s uncompressed)."""
    from ase.io.formats import get_compression

    if get_compression(path.name)[1] is None:
        yield path
        return
    plain_name = Path(get_compression(path.name)[0]).name
    with tempfile.TemporaryDirectory(prefix="amtoolkit-") as folder:
        plain = Path(folder) / plain_name
        with _open_binary(path) as fh, open(plain, "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        yield plain


def _open_binary(path: Path) -> IO[bytes]:
    """`path` opened for reading bytes, decompressed when it ends in .gz, .bz2 or .xz."""
    from ase.io.formats import open_with_compression

    return open_with_compression(str(path), "rb")


def _read_with_ase(
    source: Path,
    path: Path,
    index: str | int | slice,
    found: str | None,
    format: str | None,
    numbers_of_type: Any,
) -> list[Atoms]:
    """The frames `index` of `source` (`path` itself, or its decompressed copy; messages
    name `path`) read by ASE as format `found` (`format`: what the caller asked for)."""
    options: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        readable: Any = source
        if found == _LAMMPS_DUMP_TEXT:  # a cut last frame is left out: -1 the last whole one
            readable = _whole_dump_frames(source, path, stack)
        try:
            read = _read_frames_with_ase(readable, path, index, found, options)
        except ReadError:
            raise
        except (StopIteration, IndexError):  # an int index past the last frame
            raise ReadError(
                f"{path}: frame {index} does not exist ({_frame_count(readable, found, options)})"
            ) from None
        except Exception as exc:  # ASE raises many types; all mean "cannot read this file"
            whole = _whole_extxyz_frames(source, path) if found == "extxyz" else None
            if whole is not None:  # the file ends inside its last frame: the others
                return _select(whole, index, path)
            where, why = _failing_frame(source, found, options)
            why = why or f"cannot read{_as(format)}: {_one_line(exc)}"
            raise ReadError(f"{path}{where}: {why}") from exc
    frames = [read] if isinstance(read, Atoms) else list(read)
    if found in _LAMMPS_DUMP_FORMATS:
        _elements_of_dump(frames, path, numbers_of_type, found)
    return frames


def _frame_count(source: Any, format: str | None, options: dict[str, Any]) -> str:
    """How many frames `source` holds, as "N frame(s)" (read once more; for a message)."""
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0)
    try:
        count = sum(1 for _ in ase.io.iread(source, index=":", format=format, **options))
        return f"{count} frame(s)"
    except Exception:  # noqa: BLE001 - the count is a courtesy
        return "the file has fewer"


def _read_frames_with_ase(
    source: Any, path: Path, index: str | int | slice, found: str | None, options: dict
) -> Any:
    """``ase.io.read`` of the frames `index` of `source` (a path, or an open text dump),
    recording in `options` the reader options it passed."""
    if found == _LAMMPS_DUMP_BINARY:
        options["colnames"] = _binary_dump_columns(source)
    wanted = _parse_index(index, path) if isinstance(index, str) else index
    if isinstance(wanted, int) and wanted < 0:  # ASE clamps -k past the start to 0
        every = ase.io.read(source, index=":", format=found, **options)
        return _select(every, wanted, path)
    if isinstance(wanted, int):  # one frame: readers given K build K to the end
        read = ase.io.read(source, index=slice(wanted, wanted + 1), format=found, **options)
        if not read:
            raise IndexError(wanted)
        return read
    return ase.io.read(source, index=index, format=found, **options)


def frame_numbers(
    index: str | int | slice, n_selected: int, count_frames: Callable[[], int]
) -> list[int]:
    """Position in its file of each of the `n_selected` frames an ase-style `index` chose.

    ``"::10"`` chose frames 0, 10, 20, ...: labels such as ``run.extxyz[20]`` then name
    the frame a user finds in the file, not its place in the selection. A negative
    start, step or int index needs the number of frames in the file, which
    `count_frames` gives (called only then).

    Raises:
        ReadError: a malformed index string.
    """
    wanted = _parse_index(index, Path("index")) if isinstance(index, str) else index
    if not _from_start(wanted):
        places = range(count_frames())[wanted]
        return list(places) if isinstance(wanted, slice) else [places]
    if isinstance(wanted, slice):
        return [(wanted.start or 0) + k * (wanted.step or 1) for k in range(n_selected)]
    return [wanted]


def _from_start(wanted: int | slice) -> bool:
    """Whether a parsed index selects frames without counting from the end of the file."""
    if isinstance(wanted, slice):
        return (wanted.start is None or wanted.start >= 0) and (
            wanted.step is None or wanted.step > 0
        )
    return wanted >= 0


def read_numbered(
    path: str | os.PathLike, index: str | int | slice = ":", **options: Any
) -> tuple[list[Atoms], list[int]]:
    """`read_structures` of `path` with each frame's place in the file (`frame_numbers`).

    An index that counts from the end (``-1``, ``"-2:"``, ``"::-1"``) reads the file once,
    whole, and selects in memory; any other reads only what it selects.

    Args:
        path: file to read.
        index: frames to return, as in `read_structures`.
        **options: the other arguments of `read_structures`.

    Returns:
        (frames, their 0-based places in the file).

    Raises:
        As `read_structures`.
    """
    path = Path(path)
    wanted = _parse_index(index, path) if isinstance(index, str) else index
    if _from_start(wanted):
        frames = read_structures(path, index, **options)
        return frames, frame_numbers(wanted, len(frames), lambda: len(frames))
    everything = read_structures(path, ":", **options)
    places = _select(list(range(len(everything))), wanted, path)
    if not places:
        raise ReadError(f"{path}: no frames selected by index {index!r}")
    return [everything[k] for k in places], places


def read_stream(path: str | os.PathLike) -> tuple[list[Atoms], bool]:
    """The whole structures of an extended XYZ file that a run was appending to.

    A last structure cut short (the writer was killed: fewer lines than its header says,
    or a last line without its newline) is left out.

    Returns:
        (the whole structures, none for an empty file; whether a structure cut short
        followed them).

    Raises:
        ReadError: a structure that cannot be read before the end of the file (the file
            was damaged, not cut short).
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    blocks: list[str] = []
    pos = 0
    while pos < len(lines):
        try:
            count = int(lines[pos].strip())
        except ValueError:
            count = -1
        end = pos + count + 2
        if count < 0 or end > len(lines) or not lines[end - 1].endswith("\n"):
            if blocks and len(lines) - pos <= len(blocks[-1].splitlines()):
                break  # the tail of the last structure written: cut short
            raise ReadError(
                f"{path}[{len(blocks)}] (line {pos + 1}) cannot be read, and it is not the "
                "end of the file"
            )
        blocks.append("".join(lines[pos:end]))
        pos = end
    frames = []
    for k, block in enumerate(blocks):
        try:
            frames.append(ase.io.read(io.StringIO(block), format="extxyz"))
        except Exception as exc:  # ASE raises many types; all mean "cannot read this frame"
            raise ReadError(f"{path}[{k}] cannot be read ({_one_line(exc)})") from exc
    return frames, pos < len(lines)


def write_structures(
    path: str | os.PathLike, structures: Atoms | Iterable[Atoms], format: str | None = None
) -> Path:
    """Write structures atomically (a temporary file in the same folder, then rename).

    Args:
        path: destination; the format follows its ending unless `format` is given
            (``.extxyz``/``.xyz`` keep ``atoms.info`` properties and ghost atoms).
        structures: one Atoms or a sequence of them.
        format: ASE format name, or None to guess from `path`.

    Returns:
        The path written.

    Raises:
        TypeError: an element of `structures` is not an Atoms.
        ValueError: `structures` is empty.
    """
    path = check_writable(path)
    frames = [structures] if isinstance(structures, Atoms) else list(structures)
    for k, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"frame {k} is {type(atoms).__name__}, not ase.Atoms")
    if not frames:
        raise ValueError(f"{path}: no structures to write")
    if format is None:
        format = "extxyz" if path.suffix in (".extxyz", ".xyz") else None
    fmt = format or ase.io.formats.filetype(path, read=False)
    with atomic_output(path) as tmp:
        ase.io.write(tmp, frames if len(frames) > 1 else frames[0], format=fmt)
    return path


atomic_output = atomic_path
"""Yield a temporary path next to a file; on success it replaces the file in one step
(`amtoolkit.data._files.atomic_path`): readers never see a half-written file, and a
failed write leaves the file untouched."""


# --------------------------------------------------------------------------- helpers


def _as(format: str | None) -> str:
    return f" as {format}" if format else ""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        key = exc.args[0]  # ASE's readers look chemical symbols up in a dict
        if key and key[0].isupper() and len(key) <= 3:
            return f"unknown element symbol {key!r}"
        return f"missing entry {key!r}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_dataset(path: Path, index: str | int | slice) -> list[Atoms]:
    """The `index` frames of an amtoolkit HDF5 dataset, properties in ``atoms.info``."""
    from amtoolkit.data.dataset import Dataset, DatasetError

    try:
        dataset = Dataset.from_hdf5(path)
    except DatasetError as err:
        raise ReadError(f"{path}: not an amtoolkit dataset: {_one_line(err)}") from None
    try:
        places = _select(list(range(len(dataset))), index, path)
        return [dataset.atoms(k) for k in places]
    finally:
        dataset.close()


def _select(frames: list[Atoms], index: str | int | slice, path: Path) -> list[Atoms]:
    """Apply an ase-style index to an in-memory list of frames."""
    if isinstance(index, str):
        index = _parse_index(index, path)
    if isinstance(index, slice):
        return frames[index]
    try:
        return [frames[index]]
    except IndexError:
        raise ReadError(f"{path}: frame {index} does not exist ({len(frames)} frame(s))") from None


def _parse_index(text: str, path: Path) -> int | slice:
    text = text.strip()
    try:
        if ":" not in text:
            return int(text)
        parts = [int(p) if p.strip() else None for p in text.split(":")]
    except ValueError:
        raise ReadError(f"{path}: bad frame index {text!r}") from None
    if len(parts) > 3:
        raise ReadError(f"{path}: bad frame index {text!r}")
    if len(parts) == 3 and parts[2] == 0:
        raise ReadError(f"{path}: bad frame index {text!r}: the step cannot be zero")
    return slice(*parts)


def _open_text(path: Path) -> IO[str]:
    """`path` opened for reading text, decompressed when it ends in .gz, .bz2 or .xz (as
    ``ase.io.read`` reads it); undecodable bytes are replaced."""
    return io.TextIOWrapper(_open_binary(path), errors="replace")


def _failing_frame(
    path: Path, format: str | None, options: dict[str, Any]
) -> tuple[str, str | None]:
    """(``"[k]"`` for the first frame of a multi-frame file that cannot be read, after k
    good ones, or "" when the file fails before its first frame or cannot be iterated;
    why, when it is a dump frame holding fewer atom lines than its header says, else
    None)."""
    count = 0
    try:
        if format == _LAMMPS_DUMP_TEXT:  # ASE parses a text dump whole: frame by frame here
            for frame in _text_dump_frames(path):
                short = _short_dump_frame(frame)
                if short is not None:
                    return f"[{count}]", short
                ase.io.read(io.StringIO(frame), format=format)
                count += 1
        else:
            for _ in ase.io.iread(path, index=":", format=format, **options):
                count += 1
    except Exception:  # the failure being located
        return (f"[{count}]" if count else ""), None
    return "", None


def _atom_lines(lines: list[str]) -> tuple[int, int] | None:
    """(atoms the header announces, non-empty atom lines present) of the lines of one text
    dump frame, or None when its header cannot be read."""
    try:
        expected = int(lines[lines.index("ITEM: NUMBER OF ATOMS") + 1].split()[0])
        first = next(k for k, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    except (ValueError, IndexError, StopIteration):
        return None
    return expected, sum(1 for line in lines[first:] if line.strip())


def _short_dump_frame(frame: str) -> str | None:
    """Why a text dump frame with fewer atom lines than its header announces cannot be
    read (what a crashed run restarted into the same dump leaves), or None."""
    counts = _atom_lines(frame.splitlines())
    if counts is None or counts[1] >= counts[0]:
        return None
    expected, found = counts
    return (
        f"the frame holds {found} of the {expected} atoms its header announces, and more "
        "frames follow (a run restarted into the same dump?); remove that frame"
    )


_TAIL_BLOCK = 1 << 20
"""Bytes read at a time from the end of a dump to find its last frame."""


def _whole_dump_frames(source: Path, path: Path, stack: contextlib.ExitStack) -> Path | IO[str]:
    """A text dump to read less its last frame when the file ends inside it (a run still
    writing, a copy cut short, even inside an atom line): `source` itself when it is
    whole, else an open stream of its bytes before that frame (closed by `stack`),
    with a warning naming `path` (`source`: the file read, `path` or its decompressed
    copy). ASE would build such a frame from the atom lines it finds (a 1000-of-3000-atom
    frame analysed as a structure) or refuse the whole file at a cut line."""
    tail = _last_dump_frame(source)
    if tail is None:
        return source
    expected, found, start = tail
    if found >= expected:
        return source
    warnings.warn(
        f"{path}: the last frame holds {found} of its {expected} atoms (the file ends "
        "inside it): left out",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    raw = stack.enter_context(open(source, "rb"))
    return io.TextIOWrapper(io.BufferedReader(_Prefix(raw, start)), encoding="utf-8")


def _whole_extxyz_frames(source: Path, path: Path) -> list[Atoms] | None:
    """The frames of an extended XYZ file before its last one when the file ends inside
    that one (a run still writing, a copy cut short), with a warning naming `path`; None
    when the file is not cut that way (a damaged frame elsewhere is reported as such)."""
    try:
        frames, cut = read_stream(source)
    except (ReadError, OSError):
        return None
    if not cut or not frames:
        return None
    warnings.warn(
        f"{path}: the file ends inside frame {len(frames)} (a run still writing?): left out",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return frames


class _Prefix(io.RawIOBase):
    """The first `end` bytes of a file opened for reading bytes, seekable."""

    def __init__(self, raw: IO[bytes], end: int) -> None:
        super().__init__()
        self._raw, self._end = raw, end

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._end - self._raw.tell()
        if left <= 0:
            return 0
        return self._raw.readinto(memoryview(buffer)[:left])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            return self._raw.seek(self._end + offset)
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def _last_dump_frame(path: Path) -> tuple[int, int, int] | None:
    """(atoms its header announces, atom lines present, its byte offset) of a text dump's
    last frame, read from the end of the file; None when no frame header is found."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        read = 0
        while read < size:
            read = min(size, read + _TAIL_BLOCK)
            fh.seek(size - read)
            data = fh.read(read)
            start = data.rfind(b"ITEM: TIMESTEP")
            if start >= 0:
                break
        else:
            return None
    counts = _atom_lines(data[start:].decode("utf-8", errors="replace").splitlines())
    if counts is None:
        return None
    expected, found = counts
    if found and not data.endswith(b"\n"):  # the file ends inside an atom line
        found -= 1
    return expected, found, size - read + start


def _text_dump_frames(path: Path) -> Iterator[str]:
    """The frames of a LAMMPS text dump as text, each from its ``ITEM: TIMESTEP`` line."""
    frame: list[str] = []
    with _open_text(path) as fh:
        for line in fh:
            if line.startswith("ITEM: TIMESTEP") and frame:
                yield "".join(frame)
                frame = []
            frame.append(line)
    if frame:
        yield "".join(frame)


def _starts_like_a_text_dump(path: Path) -> bool:
    """Whether `path` begins as a LAMMPS text dump does (``ITEM: TIMESTEP``)."""
    try:
        with _open_text(path) as fh:
            return fh.readline().strip() == "ITEM: TIMESTEP"
    except (OSError, EOFError, ValueError):  # unreadable or a broken compressed file
        return False


def _uncompressed_suffix(path: Path) -> str:
    """The file ending that says the format: ``.data`` for ``glass.data.gz``."""
    from ase.io.formats import get_compression

    return Path(get_compression(path.name)[0]).suffix.lower()


def _is_lammps_data(path: Path, format: str | None) -> bool:
    if format is not None:
        return format.lower() in _LAMMPS_FORMATS
    name = path.name.lower()
    suffix = _uncompressed_suffix(path)
    if suffix in LAMMPS_DATA_SUFFIXES or name.startswith("data."):
        return True
    if suffix in (".xyz", ".extxyz", ".cif", ".traj", ".json", ".db", ".h5", ".lammpstrj"):
        return False
    try:
        with _open_text(path) as fh:
            for _, line in zip(range(_HEADER_SCAN_LINES), fh, strict=False):
                if re.search(r"\sxlo\s+xhi\b", line):
                    return True
    except OSError:
        return False
    return False


def _lammps_header(path: Path) -> tuple[str | None, str | None, bool]:
    """(units, atom_style, has an ``Atoms`` section) from the first line's ``units = X``
    and the ``Atoms # X`` line."""
    units = style = None
    atoms_section = False
    with _open_text(path) as fh:
        first = fh.readline()
        match = re.search(r"units\s*=\s*(\w+)", first)
        if match:
            units = match.group(1)
        for line in fh:
            match = re.match(r"\s*Atoms\s*(?:#\s*(\S+))?", line)
            if match:
                style, atoms_section = match.group(1), True
                break
    return units, style, atoms_section


def _ase_style_keyword() -> str:
    from ase.io.lammpsdata import read_lammps_data

    params = inspect.signature(read_lammps_data).parameters
    return "atom_style" if "atom_style" in params else "style"


def _read_lammps_data(
    path: Path, numbers_of_type: dict[int, int] | None, units: str | None, atom_style: str | None
) -> Atoms:
    try:
        file_units, style, atoms_section = _lammps_header(path)
    except OSError as exc:
        raise ReadError(f"{path}: cannot read: {_one_line(exc)}") from exc
    if not atoms_section:
        raise ReadError(f"{path}: not a LAMMPS data file (no Atoms section)")
    units = units or file_units or "metal"
    style = atom_style or style
    kwargs = {"units": units}
    if style is not None:
        kwargs[_ase_style_keyword()] = style
    try:
        atoms = ase.io.read(path, format="lammps-data", **kwargs)
    except Exception as exc:  # ASE raises RuntimeError/ValueError/StopIteration/KeyError here
        hint = ""
        if style is None:
            hint = " (its Atoms line names no style: give it, e.g. --atom-style charge)"
        raise ReadError(f"{path}: cannot read as LAMMPS data: {_one_line(exc)}{hint}") from exc

    types = np.asarray(atoms.arrays["type"], dtype=int)
    file_masses = atoms.arrays.get("masses")  # present only if the file has a Masses section
    mass_of_type = (
        {int(t): float(file_masses[np.argmax(types == t)]) for t in np.unique(types)}
        if file_masses is not None
        else {}
    )
    if numbers_of_type is None:
        numbers_of_type = _elements_from_masses(mass_of_type, path)
    else:
        _warn_mass_mismatch(numbers_of_type, mass_of_type, path)

    atoms.numbers = _elements_of_types(types, numbers_of_type, str(path))
    # element masses follow the elements; the file's masses were used only to identify them
    atoms.arrays.pop("masses", None)
    atoms.arrays.pop("mmcharges", None)  # a copy of initial_charges kept by ASE for QM/MM
    atoms.info.pop("comment", None)
    return atoms


def _elements_of_types(
    types: np.ndarray, numbers_of_type: dict[int, int], where: str
) -> np.ndarray:
    """Atomic numbers of LAMMPS atom `types`; ReadError naming a type the map lacks."""
    missing = sorted(set(np.unique(types).tolist()) - set(numbers_of_type))
    if missing:
        given = ",".join(f"{t}={chemical_symbols[z]}" for t, z in sorted(numbers_of_type.items()))
        raise ReadError(f"{where}: LAMMPS atom type {missing[0]} is not in the type map ({given})")
    return np.array([numbers_of_type[int(t)] for t in types], dtype=int)


def _guess_format(path: Path) -> str | None:
    """The ASE format of `path` as ``ase.io.read`` would guess it, except that LAMMPS binary
    dumps (which ASE takes for another format) are recognised by their header.

    Raises:
        ReadError: ASE recognises neither the ending nor the contents.
    """
    if _binary_dump_header(path):
        return _LAMMPS_DUMP_BINARY
    try:
        found = filetype(str(path))
    except UnknownFileTypeError:
        found = None
    if found is None or found not in ioformats:  # e.g. "txt": an ending ASE cannot read
        raise ReadError(
            f"{path}: cannot read: not a structure format ASE recognises; name it with "
            "format= (amtool: --format), e.g. extxyz, vasp, cif, lammps-data"
        )
    return found


def _binary_dump_header(path: Path) -> tuple[int, bytes] | None:
    """(revision, the bytes after it) of a LAMMPS binary dump of the format of 29Oct2020
    on (a negative first integer, then a ``DUMP...`` name), or None for any other file."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or not -64 <= struct.unpack("=q", head)[0] < 0:
            return None
        name = fh.read(-struct.unpack("=q", head)[0])
        if not name.startswith(b"DUMP"):
            return None
        flags = fh.read(8)  # endianness flag, revision
        if len(flags) < 8:
            return None
        return struct.unpack("=ii", flags)[1], fh.read(4096)


def _binary_dump_columns(path: Path) -> list[str]:
    """The column names a LAMMPS binary dump records in its first frame's header.

    Raises:
        ReadError: the dump predates column names (LAMMPS before 29Oct2020, revision 1).
    """
    header = _binary_dump_header(path)
    if header is None or header[0] < 2:
        raise ReadError(
            f"{path}: this LAMMPS binary dump does not name its columns (written before "
            "LAMMPS 29Oct2020); convert it to text with LAMMPS tools/binary2txt"
        )
    data, at = header[1], 0

    def take(fmt: str) -> tuple:
        nonlocal at
        size = struct.calcsize(fmt)
        if at + size > len(data):
            raise ReadError(f"{path}: LAMMPS binary dump header is cut short")
        values = struct.unpack_from(fmt, data, at)
        at += size
        return values

    _, _, triclinic = take("=qqi")  # timestep, number of atoms, box style
    take("=6i")  # boundary flags
    take({0: "=6d", 1: "=9d", 2: "=12d"}.get(triclinic, "=6d"))  # box
    take("=i")  # values per atom
    (units,) = take("=i")
    take(f"={units}s")
    if take("=c")[0] != b"\x00":
        take("=d")  # time
    (length,) = take("=i")
    return take(f"={length}s")[0].decode("ascii", "replace").split()


def _dump_has_elements(path: Path) -> bool:
    """Whether a LAMMPS text dump's first ``ITEM: ATOMS`` line has an ``element`` column."""
    with _open_text(path) as fh:
        for line in fh:
            if line.startswith("ITEM: ATOMS"):
                return "element" in line.split()[2:]
    return False


def _elements_of_dump(
    frames: list[Atoms], path: Path, numbers_of_type: dict[int, int] | None, format: str
) -> None:
    """Set the elements of LAMMPS dump frames from their atom types (ASE reads type t as Z = t).
    A binary dump holds numbers only, so never an element column."""
    if format == _LAMMPS_DUMP_TEXT and _dump_has_elements(path):
        return
    if numbers_of_type is None:
        raise ReadError(
            f"{path}: a LAMMPS dump without an element column gives atom types, not elements; "
            "give a type map, e.g. 1=O,2=Si"
        )
    for k, atoms in enumerate(frames):
        types = np.asarray(atoms.arrays.get("type", atoms.numbers), dtype=int)
        atoms.numbers = _elements_of_types(types, numbers_of_type, f"{path}[{k}]")


def _element_of_mass(mass: float) -> int | None:
    """The atomic number whose mass is within `MASS_TOLERANCE` of `mass`, or None."""
    z = int(np.argmin(np.abs(atomic_masses[1:] - mass))) + 1
    return z if abs(atomic_masses[z] - mass) <= MASS_TOLERANCE else None


def _elements_from_masses(mass_of_type: dict[int, float], path: Path) -> dict[int, int]:
    if not mass_of_type:
        raise ReadError(
            f"{path}: LAMMPS data file has no Masses section; give a type map, e.g. 1=O,2=Si"
        )
    out = {}
    for lammps_type, mass in mass_of_type.items():
        z = _element_of_mass(mass)
        if z is None:
            raise ReadError(
                f"{path}: LAMMPS atom type {lammps_type} has mass {mass:g}, which matches no "
                "element; give a type map, e.g. 1=O,2=Si"
            )
        out[lammps_type] = z
    return out


def _warn_mass_mismatch(
    numbers_of_type: dict[int, int], mass_of_type: dict[int, float], path: Path
) -> None:
    for lammps_type, mass in mass_of_type.items():
        z = numbers_of_type.get(lammps_type)
        if z and abs(atomic_masses[z] - mass) > MASS_TOLERANCE:
            nearest = _element_of_mass(mass)
            hint = (
                f" ({chemical_symbols[nearest]}'s mass: is the type map swapped?)"
                if nearest is not None
                else ""
            )
            warnings.warn(
                f"{path}: type map says type {lammps_type} is {chemical_symbols[z]} "
                f"({atomic_masses[z]:.4g} u) but the Masses section gives {mass:g}{hint}",
                stacklevel=3,
            )


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON atomically (temporary file, then ``os.replace``).

    NaN and infinity are written as ``null`` so that the file is strict JSON.

    Args:
        path: destination file.
        data: JSON-ready data (e.g. a result's ``to_dict()``).

    Returns:
        The path written.
    """
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(data) + "\n")
    return path


def json_text(data: Any) -> str:
    """`data` as indented strict JSON, NaN and infinity written as ``null``."""
    return json.dumps(_finite_or_none(data), indent=2, allow_nan=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
