"""Datasets of amorphous structures: frames, a property table and provenance.

A `Dataset` holds frames (atomic numbers, positions, cell, pbc), a table of named
float properties aligned with the frames (NaN = missing) and a provenance record.
Frames live in a frame store: in memory (`MemoryFrames`) or lazily in an HDF5 file
(`amtoolkit.data.hdf5.HDF5Frames`); a dataset is a view of a store through an index,
so subsets and train/val/test splits share the frames without copying them.

Property keys and units: see `amtoolkit.data.properties.PROPERTY_UNITS`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from amtoolkit.analysis._result import to_jsonable
from amtoolkit.data._files import atomic_path, check_readable
from amtoolkit.data._files import provenance as _provenance
from amtoolkit.data.properties import TARGET_PREFIX
from amtoolkit.errors import StructureError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
"""Folder of the datasets shipped with the package (``<name>.h5``), see `Dataset.load`."""

MAX_ATOMIC_NUMBER = len(chemical_symbols) - 1
"""Largest atomic number a dataset stores (0 = ghost)."""

Normalisation = dict[str, tuple[float, float]]
"""Property name -> (mean, std) of the training split."""


class DatasetError(ValueError):
    """A dataset cannot be built, read or split; the message names the file, count or key."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """One structure of a dataset as plain arrays.

    Attributes:
        numbers: atomic numbers ``[n_atoms]`` int64 (0 = ghost).
        positions: Cartesian positions ``[n_atoms, 3]`` float64, Å, relative to the cell origin.
        cell: cell vectors as rows ``[3, 3]`` float64, Å.
        pbc: periodic directions ``[3]`` bool.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray

    def to_atoms(self, info: Mapping[str, Any] | None = None) -> Atoms:
        """The frame as ase.Atoms (positions not wrapped), with `info` copied into atoms.info."""
        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        if info:
            atoms.info.update(info)
        return atoms


class FrameStore(abc.ABC):
    """Frames stored flat: per-frame atom counts, cells and pbc, and a `read(i)` method.

    Subclasses set ``n_atoms`` ``[n_frames]`` int64, ``cells`` ``[n_frames, 3, 3]``
    float64 and ``pbc`` ``[n_frames, 3]`` bool, and implement `read`.
    """

    n_atoms: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    path: Path | None = None  # the file the frames are read from, None in memory

    def __len__(self) -> int:
        return len(self.n_atoms)

    @abc.abstractmethod
    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Atomic numbers ``[n]`` and positions ``[n, 3]`` of frame `i` of the store."""

    def close(self) -> None:  # noqa: B027  (optional hook: in-memory stores hold no file)
        """Release any open file handle (reading again reopens it)."""


class MemoryFrames(FrameStore):
    """Frames held in memory as flat arrays (the HDF5 layout, see `amtoolkit.data.hdf5`)."""

    def __init__(
        self,
        numbers: np.ndarray,
        positions: np.ndarray,
        offsets: np.ndarray,
        cells: np.ndarray,
        pbc: np.ndarray,
    ) -> None:
        self.numbers = np.asarray(numbers, dtype=np.int64)  # [n_total]
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)  # [n_total, 3]
        self.offsets = np.asarray(offsets, dtype=np.int64)  # [n_frames + 1]
        self.cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
        self.pbc = np.asarray(pbc, dtype=bool).reshape(-1, 3)
        self.n_atoms = np.diff(self.offsets)

    @classmethod
    def from_structures(cls, structures: Sequence[Atoms]) -> MemoryFrames:
        """Flatten `structures`; positions are shifted to the cell origin (ASE celldisp)."""
        numbers, positions, cells, pbc = [], [], [], []
        offsets = [0]
        for k, atoms in enumerate(structures):
            z = np.asarray(atoms.numbers, dtype=np.int64)
            if z.size and (z.min() < 0 or z.max() > MAX_ATOMIC_NUMBER):
                raise StructureError(f"frame {k}: invalid atomic number in {sorted(set(z))}")
            pos = atoms.positions - atoms.get_celldisp().reshape(1, 3)
            if not np.all(np.isfinite(pos)):
                bad = int(np.argwhere(~np.isfinite(pos))[0, 0])
                raise StructureError(f"frame {k}: non-finite position (NaN or inf) on atom {bad}")
            numbers.append(z)
            positions.append(pos)
            cells.append(atoms.cell.array)
            pbc.append(atoms.pbc)
            offsets.append(offsets[-1] + len(atoms))
        return cls(
            np.concatenate(numbers) if numbers else np.zeros(0, np.int64),
            np.concatenate(positions) if positions else np.zeros((0, 3)),
            np.asarray(offsets),
            np.asarray(cells) if cells else np.zeros((0, 3, 3)),
            np.asarray(pbc) if pbc else np.zeros((0, 3), bool),
        )

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.numbers[a:b].copy(), self.positions[a:b].copy()


# --------------------------------------------------------------------------- properties


def _check_property_name(name: object, where: str) -> str:
    """`name` if it can name a property everywhere: an HDF5 dataset (no '/'), an extxyz
    info key and ``amtool generate --target NAME=VALUE`` (no '=' or '"', no control
    characters, no surrounding spaces). Spaces inside and units are fine:
    ``"shear modulus (GPa)"``."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise DatasetError(f"{where}: invalid property name {name!r} (non-empty, no '/')")
    if "=" in name or '"' in name or not name.isprintable() or name != name.strip():
        raise DatasetError(
            f"{where}: invalid property name {name!r}: no '=', '\"', control characters or "
            "leading/trailing spaces (it must survive extxyz files and --target NAME=VALUE)"
        )
    return name


def _numeric_scalar(value: Any) -> float | None:
    """float(value) for a real numeric scalar (not bool); None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or not np.issubdtype(value.dtype, np.number):
            return None
        value = value.item()
    if isinstance(value, (Real, np.integer, np.floating)):
        return float(value)
    return None


def table_from_records(
    records: Sequence[Mapping[str, Any] | None], where: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Property table from one dict per frame (missing key or None -> NaN).

    A key whose values are all non-numeric (strings, lists, bools) is not a property and
    is returned in the list of ignored keys; a key with numeric values in some records
    and non-numeric ones in others is an error naming the record.

    Returns:
        (table name -> float64 ``[n_records]``, ignored keys).
    """
    keys: dict[str, None] = {}
    for k, record in enumerate(records):
        if record is not None and not isinstance(record, Mapping):
            raise DatasetError(f"{where}: record {k} is {type(record).__name__}, expected a dict")
        for key in record or {}:
            keys.setdefault(key, None)
    table: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    for key in keys:
        column = np.full(len(records), np.nan)
        numeric, other = [], []
        for k, record in enumerate(records):
            value = (record or {}).get(key)
            if value is None:
                continue
            x = _numeric_scalar(value)
            if x is None:
                other.append((k, value))
            else:
                numeric.append(k)
                column[k] = x
        if other and not numeric:
            ignored.append(str(key))
            continue
        if other:
            k, value = other[0]
            raise DatasetError(
                f"{where}: property {key!r} is numeric in record {numeric[0]} but "
                f"{type(value).__name__} ({value!r:.40}) in record {k}"
            )
        table[_check_property_name(key, where)] = column
    return table, ignored


def table_from_columns(
    columns: Mapping[str, Any], n_frames: int, where: str
) -> dict[str, np.ndarray]:
    """Property table from name -> values aligned with the frames (None/NaN = missing;
    an infinite value is kept as missing, with a warning)."""
    table = {}
    for name, values in columns.items():
        _check_property_name(name, where)
        values = list(values) if not isinstance(values, np.ndarray) else values
        if len(values) != n_frames:
            raise DatasetError(
                f"{where}: property {name!r} has {len(values)} values but there are "
                f"{n_frames} frames"
            )
        try:
            column = np.array(
                [np.nan if v is None else v for v in values], dtype=np.float64
            ).reshape(n_frames)
        except (TypeError, ValueError) as err:
            raise DatasetError(f"{where}: property {name!r} is not numeric: {err}") from None
        infinite = np.isinf(column)
        if infinite.any():
            warnings.warn(
                f"{where}: property {name!r} has {int(infinite.sum())} infinite value(s) "
                f"(first at frame {int(np.argmax(infinite))}); they are kept as missing (NaN)",
                UserWarning,
                stacklevel=3,
            )
            column = np.where(infinite, np.nan, column)
        table[name] = column
    return table


RECORD_KEYS = frozenset(
    {
        # Generator.generate: how the structure was made
        "model", "model_digest", "sampler", "steps", "guidance", "seed", "structure_seed", "index",
        "n_structures", "batch_size", "max_restarts", "restart_t", "rebalance", "accept",
        "accepted",
        "noise_scale", "score_gain", "timesteps", "icg", "max_density", "n_initial",
        "restarts", "relabelled", "charge_balanced", "closest_pair", "hmc_range", "dt0",
        "hmc_acceptance",
        # refine
        "noise_energy",
    }
)  # fmt: skip
"""``atoms.info`` keys amtoolkit writes to record how a structure was made or refined;
with the keys starting with `RECORD_PREFIXES` they are not read as properties."""

RECORD_PREFIXES = (TARGET_PREFIX, "refine_", "relax_", "md_")
"""Prefixes of record keys: generation targets, refine / relax / run_md settings."""


def is_record_key(key: str) -> bool:
    """Whether an ``atoms.info`` key is one of amtoolkit's records, not a property."""
    return key in RECORD_KEYS or key.startswith(RECORD_PREFIXES)


def _info_properties(atoms: Atoms) -> dict[str, float]:
    """Numeric scalars of atoms.info, plus scalar results of a SinglePointCalculator;
    amtoolkit's generation and refinement records (`is_record_key`) are left out."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out: dict[str, Any] = {}
    if isinstance(atoms.calc, SinglePointCalculator):
        out.update(atoms.calc.results)
    out.update({k: v for k, v in atoms.info.items() if not is_record_key(str(k))})
    return out


def grown_sizes(grown_from: int | Sequence[int] | None) -> tuple[int, ...]:
    """The frame counts a dataset grew from, as a tuple: ``grown_from`` of `Dataset.split`
    (None, one count, or increasing counts for data grown more than once)."""
    if grown_from is None:
        return ()
    values = (grown_from,) if np.ndim(grown_from) == 0 else tuple(grown_from)
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in values):
        raise ValueError(f"grown_from must be frame counts (integers), got {grown_from!r}")
    return tuple(int(k) for k in values)


def compute_normalisation(properties: Mapping[str, np.ndarray]) -> Normalisation:
    """Per-property (mean, std) ignoring NaN (missing) values.

    Properties without any finite value are left out; a zero standard deviation (one
    value, or a constant column) is stored as 1.0 so that normalising never divides by 0.
    The std is the population one (ddof = 0).
    """
    stats: Normalisation = {}
    for name, values in properties.items():
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        std = float(x.std())
        stats[name] = (float(x.mean()), std if std > 0 else 1.0)
    return stats


# --------------------------------------------------------------------------- dataset


class Dataset:
    """Frames + property table + provenance; an ASE-style sequence of structures.

    Build one with `from_atoms`, `from_extxyz`, `from_amden`, `from_lammps_data`,
    `from_hdf5` or `load`. ``len(ds)``, ``for atoms in ds``, ``ds[i]`` / ``ds.atoms(i)``
    (ase.Atoms with its properties in ``atoms.info``, missing ones omitted),
    ``ds[2:5]`` / ``ds[[0, 3]]`` (a sub-dataset sharing the frames),
    ``ds.properties[name]`` (float ``[len(ds)]``, NaN = missing), ``ds.property_names``,
    ``ds.provenance``, ``ds.normalisation`` (set by `split`).

    Example:
        >>> ds = Dataset.from_extxyz("train.extxyz")
        >>> train, val, test = ds.split(val=0.1, test=0.1, seed=0)
        >>> train.normalisation["shear_modulus"]  # (mean, std) on the train split
    """

    def __init__(
        self,
        frames: FrameStore,
        properties: Mapping[str, np.ndarray] | None = None,
        provenance: Mapping[str, Any] | None = None,
        *,
        index: np.ndarray | None = None,
        normalisation: Normalisation | None = None,
    ) -> None:
        """Wrap a frame store; `properties` columns are aligned with the store's frames."""
        self._frames = frames
        n_store = len(frames)
        self._table = {
            name: np.asarray(col, dtype=np.float64)
            for name, col in table_from_columns(properties or {}, n_store, "dataset").items()
        }
        self._index = (
            np.arange(n_store, dtype=np.int64) if index is None else np.asarray(index, np.int64)
        )
        self._provenance = dict(provenance or {})
        self._normalisation = dict(normalisation) if normalisation is not None else None

    # ---- constructors

    @classmethod
    def from_atoms(
        cls,
        structures: Iterable[Atoms],
        properties: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Dataset of in-memory structures.

        Args:
            structures: ase.Atoms frames (copied; positions stored relative to the cell origin).
            properties: name -> values aligned with the frames (None/NaN = missing). They
                are added to (and override same-named) numeric scalars found in each
                frame's ``atoms.info`` and SinglePointCalculator results.
            provenance: extra provenance entries (source, command, ...); ``created`` and
                ``amtoolkit_version`` are filled in.
        """
        frames = list(structures)
        for k, atoms in enumerate(frames):
            if not isinstance(atoms, Atoms):
                raise DatasetError(f"frame {k}: expected ase.Atoms, got {type(atoms).__name__}")
        table, _ = table_from_records([_info_properties(a) for a in frames], "atoms.info")
        table.update(table_from_columns(properties or {}, len(frames), "properties"))
        record = _provenance("ase.Atoms", f"Dataset.from_atoms(<{len(frames)} structures>)")
        record.update(provenance or {})
        return cls(MemoryFrames.from_structures(frames), table, record)

    @classmethod
    def concat(
        cls,
        datasets: Sequence[Dataset],
        names: Sequence[str] | None = None,
        command: str | None = None,
    ) -> Dataset:
        """One dataset of the frames of several, in order (runs at several cooling
        rates, or a set grown by another run).

        Property columns are joined by name: a property one part lacks is missing (NaN)
        for its frames. The provenance keeps each part's (``parts``: name, frames and
        provenance); normalisation is dropped (a training run computes its own).

        A frame that repeats one of an earlier part (same elements, cell and positions to
        0.001 Å: the same file given twice, or sets that overlap) is warned about: a
        later train/test split would put copies on both sides.

        Args:
            datasets: two or more datasets (or views).
            names: a name per part for the provenance (default "part k").
            command: how the merge was asked for, for the provenance (default
                ``Dataset.concat(<names>)``).

        Raises:
            DatasetError: fewer than two parts, a part that is not a Dataset, or names
                that do not match them.
        """
        from amtoolkit.held_out import FrameIndex  # light; held_out imports this module

        parts = list(datasets)
        if len(parts) < 2:
            raise DatasetError(f"concat needs at least two datasets, got {len(parts)}")
        for k, part in enumerate(parts):
            if not isinstance(part, Dataset):
                raise DatasetError(f"part {k} is a {type(part).__name__}, not a Dataset")
        if isinstance(names, str):
            raise DatasetError(f"names must be a list of names, one per dataset, got {names!r}")
        labels = list(names) if names is not None else [f"part {k}" for k in range(len(parts))]
        if len(labels) != len(parts):
            raise DatasetError(f"{len(labels)} names for {len(parts)} datasets")
        columns: dict[str, list[np.ndarray]] = {}
        for part in parts:
            for name in part.property_names:
                columns.setdefault(name, [])
        for part in parts:
            table = part.properties
            for name, pieces in columns.items():
                pieces.append(table.get(name, np.full(len(part), np.nan)))
        frames: list[Atoms] = []
        seen = FrameIndex([])  # the frames of the parts before this one
        for label, part in zip(labels, parts, strict=True):
            own = [part.frame(i).to_atoms({}) for i in range(len(part))]
            repeated = sum(atoms in seen for atoms in own)
            if repeated:
                warnings.warn(
                    f"{repeated} of the {len(own)} frames of {label} repeat frames of the "
                    "parts before it; a split of the merge would put copies on both sides",
                    UserWarning,
                    stacklevel=2,
                )
            for atoms in own:
                seen.add(atoms)
            frames += own
        joined = {name: np.concatenate(pieces) for name, pieces in columns.items()}
        record = {
            "source": "Dataset.concat",
            "command": command or f"Dataset.concat({', '.join(labels)})",
            "parts": [
                {"name": label, "frames": len(part), "provenance": part.provenance}
                for label, part in zip(labels, parts, strict=True)
            ],
        }
        return cls.from_atoms(frames, joined, record)

    @classmethod
    def from_extxyz(cls, path: str | os.PathLike, index: str | int = ":") -> Dataset:
        """Read an extxyz file; properties are the numeric scalars of each frame's info line.

        Non-numeric info entries (strings, arrays, booleans) are ignored, and so are
        amtoolkit's records of how a structure was generated or refined (``seed``,
        ``steps``, ``target_*``, ``refine_*``, ...: `RECORD_KEYS`); ``energy`` and
        ``free_energy``, which ASE moves into a SinglePointCalculator, are kept.
        """
        p = check_readable(path, "extxyz file")
        frames = _read_extxyz(p, index)
        table, ignored = table_from_records([_info_properties(a) for a in frames], str(p))
        ignored = sorted(set(ignored) | {k for a in frames for k in a.info if is_record_key(k)})
        record = _provenance(
            str(p), f"Dataset.from_extxyz({str(p)!r})", format="extxyz", ignored_keys=ignored
        )
        try:
            flat = MemoryFrames.from_structures(frames)
        except StructureError as err:  # "frame k: ...": name the file too
            raise StructureError(f"{p}: {err}") from None
        return cls(flat, table, record)

    @classmethod
    def from_amden(cls, extxyz: str | os.PathLike, properties_json: str | os.PathLike) -> Dataset:
        """Import the AMDEN layout: an extxyz file plus a JSON list of property dicts.

        The JSON (or YAML, by suffix) file holds one dict per frame, in frame order;
        ``null`` = missing. Its numeric values become properties, overriding same-named
        info entries of the extxyz frames; keys whose values are all non-numeric are skipped.

        Raises:
            DatasetError: if the list length differs from the number of frames (naming
                both counts and both files) or a record is not a dict.
        """
        xyz = check_readable(extxyz, "extxyz file")
        pj = check_readable(properties_json, "property file")
        frames = _read_extxyz(xyz, ":")
        with open(pj, encoding="utf-8") as fh:
            if pj.suffix.lower() in (".yml", ".yaml"):
                import yaml

                records = yaml.safe_load(fh)
            else:
                try:
                    records = json.load(fh)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{pj}: not valid JSON: {err}") from None
        if not isinstance(records, list):
            raise DatasetError(
                f"{pj}: expected a list of property dicts (one per frame), "
                f"got {type(records).__name__}"
            )
        if len(records) != len(frames):
            raise DatasetError(
                f"{pj} has {len(records)} property records but {xyz} has {len(frames)} frames"
            )
        for k, rec in enumerate(records):
            if rec is not None and not isinstance(rec, dict):
                raise DatasetError(f"{pj}: record {k} is {type(rec).__name__}, expected a dict")
        table, ignored_info = table_from_records([_info_properties(a) for a in frames], str(xyz))
        amden, ignored = table_from_records(records, str(pj))
        table.update(amden)
        record = _provenance(
            {"structures": str(xyz), "properties": str(pj)},
            f"Dataset.from_amden({str(xyz)!r}, {str(pj)!r})",
            format="amden",
            ignored_keys=sorted((set(ignored) | set(ignored_info)) - set(table)),
        )
        return cls(MemoryFrames.from_structures(frames), table, record)

    @classmethod
    def from_lammps_data(
        cls,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        type_map: Mapping[int, str | int] | str,
        properties: Mapping[str, Any] | Callable[[Path], Mapping[str, Any]] | None = None,
        provenance: Mapping[str, Any] | None = None,
        *,
        wrap: bool = False,
    ) -> Dataset:
        """Read LAMMPS data files (one structure each) with `amtoolkit.io.read_structures`.

        Only elements, positions, cell and pbc are kept (charges, velocities and LAMMPS
        ids are dropped). Positions are as ASE reads them: unwrapped with the image flags.

        Args:
            paths: one path or a sequence of paths; frame k comes from ``paths[k]``.
            type_map: LAMMPS atom type -> element (symbol or Z), e.g. ``{1: "O", 2: "Si"}``,
                or the command-line form ``"1=O,2=Si"``.
            properties: name -> values aligned with `paths`, or a callable
                ``f(path) -> {name: value}`` called once per file with its
                `pathlib.Path` (``path.name`` is the file name).
            provenance: extra provenance entries.
            wrap: wrap positions into the cell (the same periodic structure, without the
                MD image-flag offsets).

        Raises:
            FileNotFoundError: naming a missing file.
            DatasetError: if property values do not align with the files.
        """
        from amtoolkit.io import parse_type_map, read_structures

        numbers_of_type = parse_type_map(type_map)
        if not numbers_of_type:
            raise ValueError("type_map is empty: give the element of each LAMMPS type, e.g. 1=O")
        path_list = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else list(paths)
        path_list = [check_readable(p, "LAMMPS data file") for p in map(Path, path_list)]
        frames = []
        for p in path_list:
            read = read_structures(p, index=":", format="lammps-data", type_map=numbers_of_type)
            if len(read) != 1:
                raise DatasetError(f"{p}: expected one structure, found {len(read)}")
            if wrap:
                read[0].wrap()
            frames.append(read[0])
        if properties is None:
            table: dict[str, np.ndarray] = {}
        elif callable(properties):
            table, _ = table_from_records([properties(p) for p in path_list], "properties")
        else:
            table = table_from_columns(properties, len(path_list), "properties")
        record = _provenance(
            [str(p) for p in path_list],
            f"Dataset.from_lammps_data(<{len(path_list)} files>)",
            format="lammps-data",
            type_map={str(k): chemical_symbols[z] for k, z in numbers_of_type.items()},
            wrapped=wrap,
        )
        record.update(provenance or {})
        return cls(MemoryFrames.from_structures(frames), table, record)

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike) -> Dataset:
        """Open an amtoolkit HDF5 dataset lazily (see `amtoolkit.data.hdf5`).

        Cells, pbc, atom counts, the property table, provenance and normalisation are
        read at once; atomic numbers and positions are read frame by frame on access.
        """
        from amtoolkit.data.hdf5 import read_hdf5

        return read_hdf5(path)

    @classmethod
    def load(cls, name: str) -> Dataset:
        """A dataset shipped with amtoolkit (``amtoolkit/data/shipped/<name>.h5``), lazily.

        Raises:
            DatasetError: for an unknown name, listing the available ones.
        """
        names = available_datasets()
        if name not in names:
            listed = ", ".join(names) if names else "none (no dataset is shipped yet)"
            raise DatasetError(f"no shipped dataset named {name!r}; available: {listed}")
        return cls.from_hdf5(SHIPPED_DIR / f"{name}.h5")

    # ---- sequence protocol

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Atoms]:
        for i in range(len(self)):
            yield self.atoms(i)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Atoms | Dataset:
        if isinstance(key, (int, np.integer)):
            return self.atoms(int(key))
        if isinstance(key, slice):
            return self.subset(np.arange(len(self))[key])
        return self.subset(key)

    def __repr__(self) -> str:
        source = self._provenance.get("source", "?")
        if isinstance(source, list):
            source = f"<{len(source)} files>"
        return (
            f"Dataset({len(self)} frames, {int(self.n_atoms.sum())} atoms, "
            f"properties={self.property_names}, source={source!r})"
        )

    def _store_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} is out of range for a dataset of {n} frames")
        return int(self._index[i % n])

    # ---- access

    def frame(self, i: int) -> Frame:
        """Frame `i` as plain arrays (reads it from disk for an HDF5-backed dataset)."""
        j = self._store_index(i)
        numbers, positions = self._frames.read(j)
        return Frame(
            numbers=np.asarray(numbers, dtype=np.int64),
            positions=np.asarray(positions, dtype=np.float64),
            cell=self._frames.cells[j].copy(),
            pbc=self._frames.pbc[j].copy(),
        )

    def atoms(self, i: int) -> Atoms:
        """Frame `i` as ase.Atoms with its non-missing properties in ``atoms.info``."""
        j = self._store_index(i)
        info = {name: float(col[j]) for name, col in self._table.items() if np.isfinite(col[j])}
        return self.frame(i).to_atoms(info)

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per frame ``[len(ds)]`` int64 (ghosts included)."""
        return self._frames.n_atoms[self._index].copy()

    @property
    def cells(self) -> np.ndarray:
        """Cells ``[len(ds), 3, 3]`` float64, Å."""
        return self._frames.cells[self._index].copy()

    @property
    def pbc(self) -> np.ndarray:
        """Periodic directions ``[len(ds), 3]`` bool."""
        return self._frames.pbc[self._index].copy()

    @property
    def property_names(self) -> list[str]:
        """Names of the property columns."""
        return list(self._table)

    @property
    def properties(self) -> dict[str, np.ndarray]:
        """Property table: name -> float64 ``[len(ds)]`` (a copy; NaN = missing)."""
        return {name: col[self._index].copy() for name, col in self._table.items()}

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the data came from: source, command, created, amtoolkit_version, ..."""
        return json.loads(json.dumps(to_jsonable(self._provenance), default=str))

    @property
    def normalisation(self) -> Normalisation | None:
        """Property name -> (mean, std) of the training split (None before `split`)."""
        return dict(self._normalisation) if self._normalisation is not None else None

    @property
    def path(self) -> Path | None:
        """The HDF5 file this dataset reads its frames from (None when held in memory)."""
        return self._frames.path

    def normalised_properties(self) -> dict[str, np.ndarray]:
        """(value - mean) / std per property with the stored normalisation (NaN stays NaN).

        Raises:
            DatasetError: if the dataset has no normalisation or a property lacks one.
        """
        if self._normalisation is None:
            raise DatasetError("dataset has no normalisation; call split() first")
        out = {}
        for name, values in self.properties.items():
            if name not in self._normalisation:
                raise DatasetError(f"no normalisation for property {name!r} (no train values)")
            mean, std = self._normalisation[name]
            out[name] = (values - mean) / std
        return out

    def with_properties(
        self,
        columns: Mapping[str, Any],
        how: str | None = None,
        samples: Sequence[Mapping[str, Any]] | None = None,
    ) -> Dataset:
        """A view of the same frames with property columns added or replaced.

        The provenance records the change: ``labels`` gets one entry ``{"properties":
        [names], "how": how}`` per call, so the dataset's file and the cards of models
        trained on it say where the labels came from.

        Args:
            columns: name -> values aligned with this dataset's frames (None/NaN = missing).
            how: how the values were made, in words or as code (e.g.
                ``"Analyzer().rings(frames).mean_size_per_structure"``); default
                ``"Dataset.with_properties"``.
            samples: notes of the measurement per frame (JSON-ready dicts with the frame's
                ``index``, e.g. ``unconverged_relaxations``), kept in the entry as
                ``"samples"``, as `make_dataset` keeps its samples' notes.

        Returns:
            A new Dataset (the frames are shared; this one is unchanged). Frames of the
            underlying store outside this view get NaN in a new column.
        """
        new = table_from_columns(columns, len(self), "with_properties")
        record = dict(self._provenance)
        entry: dict[str, Any] = {"properties": list(new), "how": how or "Dataset.with_properties"}
        if samples is not None:
            entry["samples"] = [dict(s) for s in samples]
        record["labels"] = [*record.get("labels", []), entry]
        view = self._view(self._index, provenance=record)
        view._table = dict(self._table)
        for name, values in new.items():
            column = view._table.get(name, np.full(len(self._frames), np.nan)).copy()
            column[self._index] = values
            view._table[name] = column
        return view

    # ---- subsets and splits

    def _view(
        self,
        index: np.ndarray,
        provenance: Mapping[str, Any] | None = None,
        normalisation: Normalisation | None = None,
    ) -> Dataset:
        view = Dataset.__new__(Dataset)
        view._frames = self._frames
        view._table = self._table
        view._index = index
        view._provenance = dict(provenance if provenance is not None else self._provenance)
        norm = normalisation if normalisation is not None else self._normalisation
        view._normalisation = dict(norm) if norm is not None else None
        return view

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """Sub-dataset of the frames at `indices` (ints, negative allowed, or a bool mask).

        The frames are shared, not copied; provenance and normalisation are carried over.
        """
        idx = np.asarray(indices)
        n = len(self)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise DatasetError(f"boolean mask has shape {idx.shape}, expected ({n},)")
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if not np.issubdtype(idx.dtype, np.integer):
            raise DatasetError(f"frame indices must be integers, got dtype {idx.dtype}")
        idx = idx.reshape(-1)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(f"frame {int(idx[bad][0])} is out of range for {n} frames")
        return self._view(self._index[idx % n] if n else idx.astype(np.int64))

    def head(self, n: int) -> Dataset:
        """The first `n` frames, as the dataset was when it held `n`: for a dataset grown by
        later samples, its per-sample run records (``provenance["samples"]``) are cut to
        the first `n` too, so a model card made from it names that smaller dataset
        (`amtoolkit.held_out.grown_from` then sees the later frames as new).

        Raises:
            DatasetError: `n` outside 1..len(self).
        """
        total = len(self)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= total:
            raise DatasetError(f"head needs 1 to {total} frames, got {n!r}")
        record = dict(self._provenance)
        samples = record.get("samples")
        if isinstance(samples, list) and len(samples) == total:
            record["samples"] = samples[: int(n)]
        if n < total:
            record["first_frames"] = {"frames": int(n), "of": total}
        return self._view(self._index[: int(n)], record)

    def split(
        self,
        val: float = 0.1,
        test: float = 0.1,
        seed: int = 0,
        *,
        grown_from: int | Sequence[int] | None = None,
    ) -> tuple[Dataset, Dataset, Dataset]:
        """Deterministic random split into (train, val, test) views.

        round(test n) frames go to test and round(val n) to val (halves round up), taken
        from one permutation drawn with ``np.random.default_rng(seed)``; the rest is
        train. Each part keeps the original frame order. Per-property normalisation
        (NaN-ignoring mean, std; see `compute_normalisation`) is computed on train only
        and carried by all three.

        Args:
            val, test: fractions of the frames in the validation and test parts.
            seed: seed of the permutation.
            grown_from: for a dataset that grew by later samples (a resumed workflow):
                the number of frames it grew from. Those frames are split exactly as they
                were on their own, and the later frames by the same rule on theirs, so no
                frame changes part as the data grows: a model trained on the first frames
                never finds its training frames in the test part of the grown split
                (fine-tuning with ``init_from``). For data grown more than once, the
                increasing frame counts it grew from (``[200, 300]``: frames 0-199,
                200-299 and the rest are split each on their own).

        Raises:
            DatasetError: for fractions outside [0, 1), an empty train split or a
                `grown_from` outside 1..n-1.
        """
        n = len(self)
        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise DatasetError(
                f"split fractions must satisfy 0 <= val, test and val + test < 1, "
                f"got val={val}, test={test}"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DatasetError(f"split seed must be an integer >= 0, got {seed!r}")
        try:
            sizes = grown_sizes(grown_from)
        except ValueError:  # not frame counts: refused below
            sizes = ()
        if grown_from is not None and not (
            sizes and all(0 < a < b for a, b in zip(sizes, (*sizes[1:], n), strict=True))
        ):
            raise DatasetError(
                f"grown_from must count some but not all of the {n} frames (increasing "
                f"counts for data grown more than once), got {grown_from}"
            )
        bounds = (0, *sizes, n)
        blocks = list(zip(bounds[:-1], bounds[1:], strict=True))
        chosen: dict[str, list[np.ndarray]] = {"test": [], "val": [], "train": []}
        for start, stop in blocks:
            size = stop - start
            n_test = int(np.floor(test * size + 0.5))
            n_val = int(np.floor(val * size + 0.5))
            order = start + np.random.default_rng(seed).permutation(size)
            chosen["test"].append(order[:n_test])
            chosen["val"].append(order[n_test : n_test + n_val])
            chosen["train"].append(order[n_test + n_val :])
        parts = {part: np.sort(np.concatenate(idx)) for part, idx in chosen.items()}
        if not len(parts["train"]):
            raise DatasetError(
                f"train split would be empty: {n} frames, {len(parts['val'])} val, "
                f"{len(parts['test'])} test"
            )
        train_props = {name: col[self._index[parts["train"]]] for name, col in self._table.items()}
        stats = compute_normalisation(train_props)
        views = {}
        for part, idx in parts.items():
            record = dict(self._provenance)
            record["split"] = {
                "part": part,
                "seed": seed,
                "val": val,
                "test": test,
                "parent_frames": n,
                "frames": len(idx),
            }
            if grown_from is not None:
                record["split"]["grown_from"] = sizes[0] if len(sizes) == 1 else list(sizes)
            views[part] = self._view(self._index[idx], record, stats)
        return views["train"], views["val"], views["test"]

    # ---- writers

    def to_hdf5(self, path: str | os.PathLike) -> Path:
        """Write the dataset (this view's frames only) to an HDF5 file, atomically.

        See `amtoolkit.data.hdf5` for the layout. Returns the path written.
        """
        from amtoolkit.data.hdf5 import write_hdf5

        return write_hdf5(self, path)

    def to_extxyz(self, path: str | os.PathLike) -> Path:
        """Write all frames to an extxyz file (properties on the info line), atomically.

        Positions are written with 8 decimals (ASE's extxyz writer), so a round trip
        through extxyz is exact to 1e-8 Å, not bit for bit; use HDF5 for exact storage.
        """
        import ase.io

        target = Path(path)
        with atomic_path(target) as tmp:
            ase.io.write(tmp, iter(self), format="extxyz")
        return target

    def close(self) -> None:
        """Close the HDF5 file behind a lazily read dataset (it reopens on the next read)."""
        self._frames.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def available_datasets() -> list[str]:
    """Names of the datasets shipped in ``amtoolkit/data/shipped`` (sorted)."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.h5"))


def _read_extxyz(path: Path, index: str | int) -> list[Atoms]:
    """The frames of an extxyz file; DatasetError naming the file when it cannot be read."""
    from amtoolkit.io import ReadError, read_structures

    try:
        return read_structures(path, index=index, format="extxyz")
    except ReadError as err:
        raise DatasetError(str(err)) from None


def open_dataset(spec: str) -> Dataset:
    """A Dataset from a file (``.h5``/``.hdf5``, ``.extxyz``/``.xyz``, any ASE format) or
    the name of a shipped dataset.

    Raises:
        FileNotFoundError: neither a file nor a shipped name (lists the shipped ones).
    """
    path = Path(spec)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".h5", ".hdf5"):
            return Dataset.from_hdf5(path)
        if suffix in (".extxyz", ".xyz"):
            return Dataset.from_extxyz(path)
        from amtoolkit.io import read_structures

        try:
            return Dataset.from_atoms(read_structures(path), provenance={"source": str(path)})
        except StructureError as err:
            raise StructureError(f"{path}: {err}") from None
    if spec in available_datasets():
        return Dataset.load(spec)
    if path.is_dir():
        raise IsADirectoryError(f"dataset {spec!r} is a folder; give an HDF5 or extxyz file")
    shipped = ", ".join(available_datasets()) or "none"
    raise FileNotFoundError(
        f"dataset {spec!r} is neither a file nor a shipped dataset (shipped: {shipped})"
    )
