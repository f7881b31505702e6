"""`LammpsCalculator`: an ASE calculator for the named potentials, backed by one LAMMPS instance.

The LAMMPS box and atoms are (re)created only when the atomic numbers, the number of
atoms or the periodicity change; a new cell is applied with `change_box` and new
positions with `scatter_atoms`, followed by `run 0`. Units are LAMMPS `metal`
(eV, Å, bar), converted to ASE's eV, eV/Å and eV/Å^3 at the boundary.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, Parameters, all_changes
from ase.data import atomic_masses, chemical_symbols

from amtoolkit.analysis._structures import check_structure
from amtoolkit.analysis.neighbors import neighbor_list
from amtoolkit.errors import StructureError
from amtoolkit.potentials._lammps import (
    box_parameters,
    lammps_frame,
    new_lammps,
    rotate_stress,
    wrap_into,
)
from amtoolkit.potentials.registry import PotentialSpec, check_elements, get_spec

_PRESSURE = "amt_pvirial"
_PE_ATOM = "amt_pe_atom"
_PE_SUM = "amt_pe_sum"
_NONPERIODIC_PADDING = 2.0  # Å around a cluster's bounding box
OVERLAP = 0.5
"""Atoms nearer than this (Å) overlap: an error from LAMMPS on such a structure (NaN,
"Lost atoms") is reported as a StructureError naming the pair."""

COINCIDENT = 0.1
"""Atoms nearer than this (Å) are refused before LAMMPS runs: one atom entered twice,
for which LAMMPS returns a huge but finite energy (8e7 eV at 1e-6 Å under bmp-glass).
Pairs between this and `OVERLAP` are evaluated: a relaxation can push them apart (a
rattled or generated start)."""


_OVERLAP_SEARCH = 2.0
"""Å: the pair search of `overlapping_pair` (then cut at `OVERLAP`). vesin's cell list is
fastest with cells of about this size: 0.34 ms for 1000 atoms of diamond Si against 7.3
ms searching 0.5 Å directly, whose tiny cells cost more than the pairs they save."""


def overlapping_pair(atoms: Atoms, within: float = OVERLAP) -> tuple[int, int, float] | None:
    """The nearest pair of atoms closer than `within` Å as (i, j, distance), or None."""
    i, j, d = neighbor_list(atoms, max(_OVERLAP_SEARCH, within), "ijd", full_list=False)
    close = np.flatnonzero(d < within)
    if not len(close):
        return None
    k = close[int(np.argmin(d[close]))]
    return int(i[k]), int(j[k]), float(d[k])


NEUTRAL_TOLERANCE = 1e-6
"""e: a cell whose fixed charges sum to more than this (in magnitude) is charged."""


def net_charge(atoms: Atoms, spec: PotentialSpec) -> float:
    """Sum of the potential's fixed charges over `atoms`, e (0 for an uncharged potential)."""
    if not spec.charges:
        return 0.0
    return float(sum(spec.charges[symbol] for symbol in atoms.get_chemical_symbols()))


def charge_message(atoms: Atoms, spec: PotentialSpec) -> str | None:
    """Why `atoms` is charged under `spec`, or None when it is neutral."""
    net = net_charge(atoms, spec)
    if abs(net) <= NEUTRAL_TOLERANCE:
        return None
    return (
        f"the cell {atoms.get_chemical_formula()} is not neutral under {spec.name!r}: "
        f"its charges sum to {net:+.3g} e"
    )


def _warn_if_charged(atoms: Atoms, spec: PotentialSpec) -> None:
    """Warn when the potential's fixed charges of `atoms` do not sum to zero: the Coulomb
    energy of a charged periodic cell depends on the summation (DSF here) and its
    stress and energy are not those of a real glass."""
    message = charge_message(atoms, spec)
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=4)


def _lammps_message(err: Exception) -> str:
    """A LAMMPS error on one line: its lines joined, without the source location and the
    echo of the input line (``All pair coeffs are not set. Status: 1 1: is set; 1 2: is
    not set``)."""
    lines = [line.strip() for line in str(err).removeprefix("ERROR: ").splitlines()]
    kept = [line for line in lines if line and not line.startswith("Last input line")]
    text = re.sub(r"\s+", " ", "; ".join(kept).replace(":;", ":"))
    return re.sub(r";?\s*\(src/[^)]*\)", "", text).rstrip("; ")


def species_of(atoms: Atoms) -> list[str]:
    """Element symbols present in `atoms`, sorted by atomic number (LAMMPS type order)."""
    return [chemical_symbols[z] for z in sorted({int(z) for z in atoms.numbers})]


class LammpsCalculator(Calculator):
    """ASE calculator for a named classical potential (see `amtoolkit.potentials.POTENTIALS`).

    Args:
        potential: registry name, e.g. "sw-si", "tersoff-sio2", "bmp-glass", or the path
            of a potential file (docs/potentials.md, *Any LAMMPS potential*).
        **options: potential options (see `POTENTIALS[name].options`).

    Properties: "energy", "free_energy" (eV), "forces" [n, 3] (eV/Å), "stress"
    Voigt-6 xx yy zz yz xz xy (eV/Å^3, ASE sign: positive = tensile; 3D-periodic cells
    only) and "energies" [n] per-atom energies (eV) when asked for.

    Cells must be periodic in all three directions or in none (a cluster).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    default_parameters: dict[str, Any] = {"potential": "sw-si"}

    def __init__(self, potential: str = "sw-si", **options: Any):
        self.spec: PotentialSpec = get_spec(potential)
        resolved = self.spec.resolve_options(options)
        self._lmp: Any = None
        self._species: list[str] | None = None
        self._numbers: np.ndarray | None = None
        self._box: np.ndarray | None = None  # box currently set in LAMMPS
        self._rotation = np.eye(3)
        self._reduction = np.eye(3)  # integer basis change: LAMMPS box = M @ (cell @ rotation)
        self._periodic = True
        super().__init__(potential=potential, **resolved)

    # ------------------------------------------------------------------ ASE API

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        per_atom = "energies" in properties
        with self.running(self.atoms):
            self.load(self.atoms)
            self._run0(per_atom)
            results = self._read_results(per_atom)
            if not all(np.isfinite(value).all() for value in results.values()):
                raise FloatingPointError(f"{self.spec.name!r} gave a non-finite energy or force")
        self.results = results

    def set(self, **kwargs: Any) -> dict[str, Any]:
        if "potential" in kwargs and kwargs["potential"] != self.parameters.get("potential"):
            self.spec = get_spec(kwargs["potential"])
            self.parameters = Parameters({"potential": kwargs["potential"], **self.spec.options})
            self._species = None
        options = {k: v for k, v in kwargs.items() if k != "potential"}
        if options:
            self.spec.resolve_options(options)  # raises on unknown options
        changed = super().set(**kwargs)
        if changed:
            self._species = None  # rebuild LAMMPS with the new parameters on next use
            self.reset()
        return changed

    # --------------------------------------------------------- LAMMPS handling

    @property
    def lammps(self) -> Any:
        """The underlying `lammps.lammps` instance (None before the first calculation)."""
        return self._lmp

    @property
    def rotation(self) -> np.ndarray:
        """[3, 3] orthogonal map ASE frame -> LAMMPS frame (row vectors: v @ rotation)."""
        return self._rotation

    @property
    def periodic(self) -> bool:
        """Whether the loaded structure is 3D-periodic."""
        return self._periodic

    def load(self, atoms: Atoms) -> None:
        """Put `atoms` into LAMMPS.

        The box and atoms are rebuilt when the atomic numbers (hence species and count)
        or the periodicity differ from what LAMMPS holds; otherwise only the cell
        (`change_box`) and positions (`scatter_atoms`) are updated.
        """
        species = species_of(atoms)
        check_elements(self.spec, species)
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise StructureError(
                f"mixed periodicity pbc={pbc.tolist()} is not supported: use a cell periodic "
                "in all three directions or in none"
            )
        check_structure(atoms, periodic=bool(pbc.all()))
        pair = overlapping_pair(atoms, COINCIDENT)  # LAMMPS: a huge but finite energy
        if pair is not None:
            i, j, d = pair
            raise StructureError(
                f"atoms {i} and {j} are {d:.3g} Å apart (under {COINCIDENT} Å): overlapping "
                f"atoms, which {self.spec.name!r} cannot evaluate"
            )
        if (
            self._lmp is None
            or self._species is None
            or self._numbers is None
            or not np.array_equal(self._numbers, atoms.numbers)
            or self._periodic != bool(pbc.all())
        ):
            self._build(atoms, species)
        else:
            self._update(atoms)

    @contextlib.contextmanager
    def running(self, atoms: Atoms) -> Iterator[None]:
        """Context for a LAMMPS run on `atoms`, from `calculate` or driven from outside.

        On an error LAMMPS's state is forgotten (`invalidate`: the next use rebuilds it),
        a LAMMPS error under a potential file becomes a ValueError naming the file, and
        an error on atoms nearer than `OVERLAP` Å, which LAMMPS reports only as
        "Non-numeric atom coords" or "Lost atoms" (or not at all: a NaN energy), becomes a
        StructureError naming the two atoms.
        """
        try:
            yield
        except (ValueError, KeyboardInterrupt):  # found before LAMMPS ran; or stopped in it
            self.invalidate()
            raise
        except Exception as err:
            self.invalidate()
            pair = overlapping_pair(atoms)
            if pair is None and self.spec.source and str(err).startswith("ERROR"):
                # LAMMPS refused the commands of a potential file: the file is at fault
                types = ", ".join(f"{k + 1} {el}" for k, el in enumerate(species_of(atoms)))
                raise ValueError(
                    f"potential file {self.spec.source}: LAMMPS: {_lammps_message(err)} "
                    f"(types: {types})"
                ) from err
            if pair is None:
                raise
            i, j, d = pair
            raise StructureError(
                f"atoms {i} and {j} are {d:.3f} Å apart: overlapping atoms, which "
                f"{self.spec.name!r} cannot evaluate"
            ) from err

    def invalidate(self) -> None:
        """Forget what LAMMPS holds (after an error inside a run driven from outside
        `calculate`, e.g. atoms lost in a minimisation): the next use rebuilds it."""
        self._species = None
        self._box = None
        Calculator.reset(self)

    def mark_box_changed(self) -> None:
        """Tell the calculator that LAMMPS' box or atoms were moved outside `calculate`."""
        self._box = None
        Calculator.reset(self)

    def read_structure(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions [n, 3] (Å), cell [3, 3] (Å) and velocities [n, 3] (ASE units), ASE frame.

        The cell is expressed in the basis of the last loaded Atoms (LAMMPS works with a
        tilt-reduced basis of the same lattice); positions are wrapped into LAMMPS' box.
        Atom order is the order of the loaded Atoms.
        """
        lmp = self._lmp
        x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3)
        v = np.ctypeslib.as_array(lmp.gather_atoms("v", 1, 3)).reshape(-1, 3)
        boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
        lx, ly, lz = (boxhi[k] - boxlo[k] for k in range(3))
        box = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
        back = self._rotation.T
        positions = (x - np.asarray(boxlo)) @ back if self._periodic else x @ back
        cell = np.linalg.solve(self._reduction, box) @ back  # in the caller's cell basis
        velocities = v @ back / (1000.0 * units.fs)  # metal Å/ps -> ASE
        return positions, cell, velocities

    def loaded_results(self) -> dict[str, Any]:
        """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å^3, Voigt) of
        what LAMMPS holds now, in the ASE frame (a ``run 0``): for runs driven from
        outside `calculate`, e.g. frames of an MD run."""
        self._run0(per_atom=False)
        return self._read_results(per_atom=False)

    def close(self) -> None:
        """Close the LAMMPS instance (a later calculation opens a new one)."""
        if self._lmp is not None:
            self._lmp.close()
        self._lmp = None
        self._species = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    # ------------------------------------------------------------------ private

    def _build(self, atoms: Atoms, species: list[str]) -> None:
        if self.spec.charges:
            _warn_if_charged(atoms, self.spec)
        if self._lmp is None:
            self._lmp = new_lammps()
        lmp = self._lmp
        self._periodic = bool(np.all(atoms.pbc))
        types = {z: i + 1 for i, z in enumerate(sorted({int(z) for z in atoms.numbers}))}
        box, rotation, positions = self._frame(atoms)
        lx, ly, lz, xy, xz, yz = box_parameters(box)
        origin = positions.min(axis=0) - _NONPERIODIC_PADDING if not self._periodic else 0.0
        lo = np.zeros(3) + origin
        boundary = "p p p" if self._periodic else "s s s"
        lmp.command("clear")
        lmp.commands_list(
            [
                "units metal",
                f"atom_style {self.spec.atom_style}",
                "atom_modify map array sort 0 0",
                f"boundary {boundary}",
                f"region amt_box prism {lo[0]} {lo[0] + lx} {lo[1]} {lo[1] + ly} "
                f"{lo[2]} {lo[2] + lz} {xy} {xz} {yz} units box",
                f"create_box {len(species)} amt_box",
            ]
            + [f"mass {t} {atomic_masses[z]}" for z, t in types.items()]
        )
        n = len(atoms)
        atom_types = [types[int(z)] for z in atoms.numbers]
        created = lmp.create_atoms(n, list(range(1, n + 1)), atom_types, positions.ravel().tolist())
        if created != n:
            raise RuntimeError(f"LAMMPS created {created} of {n} atoms")
        lmp.commands_list(
            self.spec.commands(species, self.parameters)
            + [
                # a cluster's shrink-wrapped box can be thinner than the cutoff, which
                # neighbour binning refuses; all pairs are few in a cluster
                *([] if self._periodic else ["neighbor 2.0 nsq"]),
                "neigh_modify every 1 delay 0 check yes",
                f"compute {_PRESSURE} all pressure NULL virial",
                f"compute {_PE_ATOM} all pe/atom",
                f"compute {_PE_SUM} all reduce sum c_{_PE_ATOM}",
                "thermo_style custom step pe",
                "thermo_modify lost error norm no",
            ]
        )
        self._species = species
        self._numbers = np.array(atoms.numbers)
        self._box = box
        self._rotation = rotation

    def _update(self, atoms: Atoms) -> None:
        box, rotation, positions = self._frame(atoms)
        lmp = self._lmp
        if self._periodic and (self._box is None or not np.array_equal(box, self._box)):
            lx, ly, lz, xy, xz, yz = box_parameters(box)
            lmp.command(
                f"change_box all x final 0 {lx} y final 0 {ly} z final 0 {lz} "
                f"xy final {xy} xz final {xz} yz final {yz} units box"
            )
            self._box = box
        self._rotation = rotation
        flat = np.ascontiguousarray(positions.ravel())
        lmp.scatter_atoms("x", 1, 3, np.ctypeslib.as_ctypes(flat))

    def _frame(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if np.all(atoms.pbc):
            box, rotation = lammps_frame(atoms.cell.array)
            self._reduction = np.rint(box @ np.linalg.inv(atoms.cell.array @ rotation))
            return box, rotation, wrap_into(atoms.positions @ rotation, box)
        self._reduction = np.eye(3)
        positions = np.array(atoms.positions, dtype=float)
        extent = np.ptp(positions, axis=0) + 2 * _NONPERIODIC_PADDING
        return np.diag(extent), np.eye(3), positions

    def _run0(self, per_atom: bool) -> None:
        # asking thermo for the sum of pe/atom makes LAMMPS tally per-atom energies
        thermo = "thermo_style custom step pe" + (f" c_{_PE_SUM}" if per_atom else "")
        self._lmp.commands_list([thermo, "run 0 post no"])

    def _read_results(self, per_atom: bool) -> dict[str, Any]:
        lmp = self._lmp
        energy = float(lmp.get_thermo("pe"))
        forces_lmp = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)
        results: dict[str, Any] = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces_lmp @ self._rotation.T,
        }
        if self._periodic:
            p = lmp.extract_compute(_PRESSURE, 0, 1)  # pxx pyy pzz pxy pxz pyz (bar)
            bar_per_ev_a3 = lmp.extract_global("nktv2p")  # LAMMPS' own conversion constant
            voigt = -np.array([p[0], p[1], p[2], p[5], p[4], p[3]]) / bar_per_ev_a3
            results["stress"] = rotate_stress(voigt, self._rotation)
        if per_atom:
            results["energies"] = np.array(lmp.gather("c_" + _PE_ATOM, 1, 1), dtype=float)
        return results
