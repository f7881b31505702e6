"""HDF5 store of a `Dataset`: frames concatenated flat, read lazily frame by frame.

Layout (format ``amtoolkit.dataset``, version 1; N = total atoms, n = frames)::

    /                  attrs: format, format_version, n_frames, n_atoms_total
    /numbers           int8     [N]        atomic numbers (0 = ghost)
    /positions         float64  [N, 3]     Å, relative to the cell origin
    /offsets           int64    [n + 1]    frame k = rows offsets[k]:offsets[k+1]
    /cells             float64  [n, 3, 3]  Å, cell vectors as rows
    /pbc               bool     [n, 3]
    /properties/<name> float64  [n]        NaN = missing; attr "names" keeps the order
    /provenance        str                 JSON object
    /normalisation     str                 JSON {name: [mean, std]} (only after a split)

Positions are kept in float64, so an HDF5 round trip is bit-exact. ``numbers`` and
``positions`` are chunked (8192 atoms per positions chunk) and gzip-compressed with
the shuffle filter. `read_hdf5` reads offsets, cells, pbc and the property table at
once and the per-atom arrays only when a frame is asked for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from amtoolkit.analysis._result import to_jsonable
from amtoolkit.data._files import atomic_path, check_readable
from amtoolkit.data.dataset import Dataset, DatasetError, FrameStore

if TYPE_CHECKING:
    import h5py

FORMAT_NAME = "amtoolkit.dataset"
FORMAT_VERSION = 1
POSITIONS_CHUNK = 8192  # atoms per positions chunk (192 kB): ~0.6 ms to read any frame
NUMBERS_CHUNK = 65536  # atoms per numbers chunk (int8: 64 kB)
WRITE_BLOCK = 65536  # atoms buffered in memory before a write
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def _read_rows(dataset: h5py.Dataset, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of an HDF5 dataset (the one place per-atom data is read)."""
    return dataset[start:stop]


class HDF5Frames(FrameStore):
    """Frame store backed by an amtoolkit HDF5 file; per-atom arrays are read on demand.

    The file handle is opened on construction and reopened after a fork or unpickling
    (so the store can be sent to DataLoader worker processes).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_readable(path, "HDF5 dataset")
        self._handle: h5py.File | None = None
        self._pid = -1
        f = self._file()
        _check_format(f, self.path)
        self.offsets = np.asarray(f["offsets"][()], dtype=np.int64)  # [n + 1]
        self.cells = np.asarray(f["cells"][()], dtype=np.float64).reshape(-1, 3, 3)
        self.pbc = np.asarray(f["pbc"][()], dtype=bool).reshape(-1, 3)
        self.n_atoms = np.diff(self.offsets)
        n = len(self.cells)
        n_total = f["numbers"].shape[0]
        if (
            len(self.offsets) != n + 1
            or len(self.pbc) != n
            or self.offsets[0] != 0
            or np.any(self.n_atoms < 0)
            or self.offsets[-1] != n_total
            or f["positions"].shape != (n_total, 3)
        ):
            raise DatasetError(
                f"{self.path}: inconsistent frame layout ({n} cells, {len(self.offsets)} "
                f"offsets ending at {self.offsets[-1]}, {n_total} atoms)"
            )

    def _file(self) -> h5py.File:
        import h5py

        if self._handle is None or self._pid != os.getpid() or not self._handle.id.valid:
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        f = self._file()
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        numbers = _read_rows(f["numbers"], a, b).astype(np.int64)
        positions = _read_rows(f["positions"], a, b).astype(np.float64)
        return numbers, positions

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = -1
        return state


def _check_format(f: h5py.File, path: Path) -> None:
    name = f.attrs.get("format")
    if isinstance(name, bytes):
        name = name.decode()
    if name != FORMAT_NAME:
        raise DatasetError(f"{path}: not an amtoolkit dataset (format attribute is {name!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {version} is newer than this amtoolkit "
            f"reads ({FORMAT_VERSION}); upgrade amtoolkit"
        )
    missing = [k for k in ("numbers", "positions", "offsets", "cells", "pbc") if k not in f]
    if missing:
        raise DatasetError(f"{path}: missing datasets {missing}")


def _read_json(f: h5py.File, key: str) -> Any:
    if key not in f:
        return None
    return json.loads(f[key].asstr()[()])


def read_hdf5(path: str | os.PathLike) -> Dataset:
    """Open an amtoolkit HDF5 dataset lazily (per-atom arrays are read per frame).

    Raises:
        FileNotFoundError: naming a missing file.
        DatasetError: for a file that is not an amtoolkit dataset or is inconsistent.
    """
    p = check_readable(path, "HDF5 dataset")
    try:
        frames = HDF5Frames(p)
    except OSError as err:
        raise DatasetError(f"{p}: cannot read as HDF5: {err}") from None
    f = frames._file()
    n = len(frames)
    table = {}
    if "properties" in f:
        group = f["properties"]
        names = [str(x) for x in group.attrs.get("names", sorted(group))]
        for name in names:
            column = np.asarray(group[name][()], dtype=np.float64)
            if column.shape != (n,):
                raise DatasetError(
                    f"{p}: property {name!r} has shape {column.shape}, expected ({n},)"
                )
            table[name] = column
    provenance = _read_json(f, "provenance") or {}
    stats = _read_json(f, "normalisation")
    normalisation = (
        {name: (float(m), float(s)) for name, (m, s) in stats.items()} if stats else None
    )
    return Dataset(frames, table, provenance, normalisation=normalisation)


def write_hdf5(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write `dataset` (its frames in order) to `path` atomically; return the path.

    Frames are streamed in blocks of about `WRITE_BLOCK` atoms, so a lazily read dataset
    is never loaded whole.
    """
    import h5py

    target = Path(path)
    n_atoms = dataset.n_atoms
    offsets = np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64)
    n_total = int(offsets[-1])
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_frames"] = len(dataset)
        f.attrs["n_atoms_total"] = n_total
        big = n_total > 0
        numbers = f.create_dataset(
            "numbers",
            shape=(n_total,),
            dtype=np.int8,
            **({"chunks": (min(n_total, NUMBERS_CHUNK),), **COMPRESSION} if big else {}),
        )
        positions = f.create_dataset(
            "positions",
            shape=(n_total, 3),
            dtype=np.float64,
            **({"chunks": (min(n_total, POSITIONS_CHUNK), 3), **COMPRESSION} if big else {}),
        )
        f.create_dataset("offsets", data=offsets)
        f.create_dataset("cells", data=dataset.cells.reshape(-1, 3, 3).astype(np.float64))
        f.create_dataset("pbc", data=dataset.pbc.reshape(-1, 3))
        _write_frames(dataset, numbers, positions)
        group = f.create_group("properties")
        names = dataset.property_names
        if names:
            group.attrs["names"] = names
        for name, column in dataset.properties.items():
            group.create_dataset(name, data=column.astype(np.float64))
        f["provenance"] = json.dumps(to_jsonable(dataset.provenance), default=str)
        if dataset.normalisation is not None:
            f["normalisation"] = json.dumps(
                {k: [m, s] for k, (m, s) in dataset.normalisation.items()}
            )
    return target


def _write_frames(dataset: Dataset, numbers: h5py.Dataset, positions: h5py.Dataset) -> None:
    start = 0
    buffer_z: list[np.ndarray] = []
    buffer_x: list[np.ndarray] = []
    buffered = 0

    def flush() -> None:
        nonlocal start, buffered
        if not buffered:
            return
        numbers[start : start + buffered] = np.concatenate(buffer_z).astype(np.int8)
        positions[start : start + buffered] = np.concatenate(buffer_x)
        start += buffered
        buffered = 0
        buffer_z.clear()
        buffer_x.clear()

    for i in range(len(dataset)):
        frame = dataset.frame(i)
        buffer_z.append(frame.numbers)
        buffer_x.append(frame.positions)
        buffered += len(frame.numbers)
        if buffered >= WRITE_BLOCK:
            flush()
    flush()
