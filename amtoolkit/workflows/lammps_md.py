"""Melt-quench runs inside LAMMPS: an input script built from stages, run, read back to ASE.

A run is a list of `Stage` objects (NPT/NVT segments with a linear temperature ramp,
minimisations, velocity draws). `lammps_input` turns them into a plain LAMMPS input
script (units metal) that reads the start structure from a data file written by
`write_lammps_data`; `run_stages` runs that script in one serial LAMMPS instance,
parses the thermo output of every stage from the LAMMPS log (`parse_thermo`) and
returns the final snapshot as ase.Atoms. Nothing is run between stages from Python,
so a run costs what the same script costs in a bare `lammps` process
(benchmarks/bench_workflows.py measures this).

Stage temperatures are targets of a Nose-Hoover thermostat (and isotropic barostat for
"npt"); LAMMPS ramps the target linearly from ``t_start`` to ``t_stop`` over a stage.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from amtoolkit.analysis._result import Result
from amtoolkit.potentials import (
    check_elements,
    get_spec,
    interruptible,
    lammps_frame,
    new_lammps,
    pair_commands,
    wrap_into,
)

STAGE_KINDS = ("npt", "nvt", "minimize", "velocity")
THERMO_COLUMNS = ("Step", "Temp", "PotEng", "KinEng", "TotEng", "Press", "Volume", "Density")
LAMMPS_SEED_MAX = 900_000_000  # LAMMPS' Park-Miller / Marsaglia generators need 0 < seed <= 9e8
BAR_PER_GPA = 1.0e4
SCRATCH_PREFIX = "amt-mq-"
"""Name prefix of `run_stages`' temporary folders (data file, script, log)."""
_SCRATCH: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "amtoolkit_md_scratch", default=None
)
FS_PER_PS = 1000.0
# minimisation: LAMMPS' energy tolerance (relative) and the cap on force evaluations per iteration
MIN_ETOL = 1.0e-10
MIN_EVALS_PER_ITERATION = 10
MAX_STAGE_STEPS = 1_000_000_000
"""Most MD steps (or minimiser iterations) of one stage: 1 µs at 1 fs, 50 times the
slowest quench any protocol documents (0.1 K/ps); a cooling rate in K/s instead of K/ps
(1e-12 for 1 K/s) would plan 10^15 steps and never end."""
MAX_TEMPERATURE = 100_000.0
"""Highest stage temperature, K (silicate melts need 4000-5000 K; beyond this the
potentials describe nothing and atoms fly apart)."""
MAX_TIMESTEP = 10.0
"""Longest MD time step, fs (1-2 fs for oxides; 1000, meant as 1 ps, blows the cell
apart)."""
MIN_TIMESTEP = 0.1
"""Shortest MD time step, fs (0.001, LAMMPS' metal-units value of 1 fs in ps, plans a
thousand times the steps of the run meant)."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One segment of a melt-quench run.

    Attributes:
        kind: "npt" / "nvt" (Nose-Hoover MD, isotropic barostat for npt), "minimize"
            (conjugate gradients, with the cell relaxed isotropically to the run's
            pressure when `relax_cell`), or "velocity" (draw Maxwell-Boltzmann
            velocities at `t_start` from the stage seed, zero total momentum).
        name: label used in the thermo summary, e.g. "melt".
        steps: MD steps (npt, nvt) or maximum iterations (minimize).
        t_start: thermostat target at the start (K); velocity temperature for "velocity".
        t_stop: thermostat target at the end (K); linear ramp in between.
        fmax: force tolerance of a minimisation (eV/Å, max-norm of the force vector).
        relax_cell: a minimisation also relaxes the cell volume (fix box/relax iso).
    """

    kind: str
    name: str
    steps: int = 0
    t_start: float = 0.0
    t_stop: float = 0.0
    fmax: float = 1.0e-3
    relax_cell: bool = False

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"stage kind must be one of {STAGE_KINDS}, got {self.kind!r}")
        if int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(
                f"stage {self.name!r}: steps must be an integer >= 0, got {self.steps}"
            )
        if self.steps > MAX_STAGE_STEPS:
            raise ValueError(
                f"stage {self.name!r}: {self.steps:.3g} steps is more than {MAX_STAGE_STEPS:.0e} "
                "(times are in ps, cooling rates in K/ps)"
            )
        hottest = max(self.t_start, self.t_stop)
        if not hottest <= MAX_TEMPERATURE:  # NaN too
            raise ValueError(
                f"stage {self.name!r}: {hottest:g} K is above {MAX_TEMPERATURE:g} K "
                "(temperatures are in K)"
            )
        if self.kind in ("npt", "nvt") and not (self.t_start > 0 and self.t_stop > 0):
            raise ValueError(f"stage {self.name!r}: temperatures must be > 0 K for {self.kind}")
        if self.kind == "velocity" and not self.t_start > 0:
            raise ValueError(f"stage {self.name!r}: velocity temperature must be > 0 K")
        if self.kind == "minimize" and not self.fmax > 0:
            raise ValueError(f"stage {self.name!r}: fmax must be > 0 eV/Å")

    @property
    def is_md(self) -> bool:
        """True for the MD stages (npt, nvt), which count atom-steps."""
        return self.kind in ("npt", "nvt")


def md_stage(
    kind: str, name: str, time_ps: float, t_start: float, t_stop: float | None, timestep_fs: float
) -> Stage:
    """An npt/nvt stage lasting `time_ps` (rounded to whole steps of `timestep_fs`).

    Args:
        kind: "npt" or "nvt".
        name: stage label.
        time_ps: duration (ps), >= 0.
        t_start: thermostat target at the start (K).
        t_stop: thermostat target at the end (K); None = `t_start`.
        timestep_fs: MD time step (fs).
    """
    if not time_ps >= 0:
        raise ValueError(f"stage {name!r}: time must be >= 0 ps, got {time_ps}")
    steps = int(round(time_ps * FS_PER_PS / timestep_fs))
    return Stage(kind, name, steps, float(t_start), float(t_start if t_stop is None else t_stop))


@dataclasses.dataclass(frozen=True)
class MDSettings:
    """Integrator settings shared by all stages of a run.

    Attributes:
        timestep: MD time step (fs).
        tdamp: thermostat damping time (ps).
        pdamp: barostat damping time (ps).
        pressure: target pressure of npt stages and cell minimisations (GPa).
        thermo_every: thermo output interval (steps).
    """

    timestep: float = 1.0
    tdamp: float = 0.1
    pdamp: float = 1.0
    pressure: float = 0.0
    thermo_every: int = 100

    def __post_init__(self) -> None:
        if not (self.timestep > 0 and self.tdamp > 0 and self.pdamp > 0):
            raise ValueError("timestep, tdamp and pdamp must be > 0")
        if not MIN_TIMESTEP <= self.timestep <= MAX_TIMESTEP:
            raise ValueError(
                f"timestep={self.timestep:g} fs is outside [{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] "
                "fs (the time step is in fs, 1 fs = 0.001 ps; 1-2 fs suits these glasses)"
            )
        if int(self.thermo_every) != self.thermo_every or self.thermo_every < 1:
            raise ValueError(f"thermo_every must be an integer >= 1, got {self.thermo_every}")


@dataclasses.dataclass(frozen=True)
class MeltQuenchRun(Result):
    """The outcome of `run_stages`.

    Attributes:
        atoms: final snapshot (positions wrapped into the cell, no calculator).
        thermo: one dict per stage (velocity stages give an empty dict) mapping a
            THERMO_COLUMNS name to its values ``[n_rows]`` (Temp K, PotEng/KinEng/TotEng
            eV, Press bar, Volume Å^3, Density g/cm^3).
        stages: the stages that were run.
        script: the LAMMPS input script (the data-file path refers to a removed
            temporary folder).
        lammps_version: LAMMPS version number, e.g. 20250722.
        md_steps: total MD steps of the npt/nvt stages.
        wall_s: wall time of the LAMMPS script (setup, all stages), s.
    """

    atoms: Atoms
    thermo: list[dict[str, np.ndarray]]
    stages: tuple[Stage, ...]
    script: str
    lammps_version: int
    md_steps: int
    wall_s: float

    def summary(self) -> list[dict[str, Any]]:
        """Per stage: name, kind, steps and the last thermo row (JSON-ready)."""
        out = []
        for stage, table in zip(self.stages, self.thermo, strict=True):
            row: dict[str, Any] = {"name": stage.name, "kind": stage.kind, "steps": stage.steps}
            if table and len(table["Step"]):
                row["final"] = {k: float(v[-1]) for k, v in table.items() if k != "Step"}
                row["iterations"] = int(table["Step"][-1] - table["Step"][0])
            out.append(row)
        return out

    def record(self) -> dict[str, Any]:
        """The run's provenance entries: stage summary, MD steps, MD wall time, LAMMPS version."""
        return {
            "stages": self.summary(),
            "md_steps": self.md_steps,
            "md_wall_s": self.wall_s,
            "lammps_version": self.lammps_version,
        }


def species_of(atoms: Atoms) -> list[str]:
    """Element symbols present in `atoms`, sorted by atomic number (LAMMPS type order)."""
    return [chemical_symbols[z] for z in sorted({int(z) for z in atoms.numbers})]


def lammps_seed(seed: int) -> int:
    """Map any non-negative integer onto LAMMPS' valid seed range 1..9e8."""
    return int(seed) % LAMMPS_SEED_MAX + 1


def write_lammps_data(
    path: str | os.PathLike, atoms: Atoms, species: Sequence[str], atom_style: str = "atomic"
) -> np.ndarray:
    """Write a 3D-periodic structure as a LAMMPS data file (type i+1 = species[i]).

    The cell is rotated into LAMMPS' lower-triangular frame (`lammps_frame`) and the
    positions are wrapped into it; coordinates are written with 17 significant digits.

    Args:
        path: output file.
        atoms: 3D-periodic structure, elements in `species`.
        species: element symbols of atom types 1, 2, ...
        atom_style: "atomic" or "charge" (charges written as 0; the potential sets them).

    Returns:
        rotation ``[3, 3]``: row vectors map ASE -> LAMMPS frame as ``v @ rotation``.
    """
    if not np.all(atoms.pbc):
        raise ValueError("melt-quench runs need a cell periodic in all three directions")
    if atom_style not in ("atomic", "charge"):
        raise ValueError(f"atom_style must be 'atomic' or 'charge', got {atom_style!r}")
    types = {atomic_numbers[s]: i + 1 for i, s in enumerate(species)}
    box, rotation = lammps_frame(atoms.cell.array)
    positions = wrap_into(atoms.positions @ rotation, box)  # [n, 3] LAMMPS frame
    lx, ly, lz = box[0, 0], box[1, 1], box[2, 2]
    xy, xz, yz = box[1, 0], box[2, 0], box[2, 1]
    lines = [
        "amtoolkit.workflows start structure",
        "",
        f"{len(atoms)} atoms",
        f"{len(species)} atom types",
        "",
        f"0.0 {_num(lx)} xlo xhi",
        f"0.0 {_num(ly)} ylo yhi",
        f"0.0 {_num(lz)} zlo zhi",
    ]
    if xy or xz or yz:
        lines.append(f"{_num(xy)} {_num(xz)} {_num(yz)} xy xz yz")
    lines += ["", f"Atoms # {atom_style}", ""]
    charge = " 0.0" if atom_style == "charge" else ""
    for k, (z, r) in enumerate(zip(atoms.numbers, positions, strict=True)):
        lines.append(f"{k + 1} {types[int(z)]}{charge} {_num(r[0])} {_num(r[1])} {_num(r[2])}")
    Path(path).write_text("\n".join(lines) + "\n")
    return rotation


def lammps_input(
    data_file: str | os.PathLike,
    species: Sequence[str],
    potential: str,
    stages: Sequence[Stage],
    settings: MDSettings,
    seed: int,
    *,
    log_file: str | os.PathLike | None = None,
    potential_options: Mapping[str, Any] | None = None,
) -> str:
    """The LAMMPS input script (units metal) of a melt-quench run.

    Velocity stages use seeds ``lammps_seed(seed + k)`` for the k-th velocity stage, so
    one `seed` fixes the whole run.

    Args:
        data_file: LAMMPS data file of the start structure (`write_lammps_data`).
        species: element symbols of atom types 1, 2, ...
        potential: registry name ("sw-si", "tersoff-sio2", "bmp-glass").
        stages: stages in order.
        settings: integrator settings.
        seed: non-negative integer seed.
        log_file: where LAMMPS writes its log (thermo output); None = no log.
        potential_options: options of the potential (see `POTENTIALS[name].options`).

    Returns:
        The script text.
    """
    spec = get_spec(potential)
    pair_lines = pair_commands(potential, species, **dict(potential_options or {}))
    dt_ps = settings.timestep / FS_PER_PS
    p_bar = settings.pressure * BAR_PER_GPA
    lines = ["# amtoolkit.workflows melt-quench run (LAMMPS metal units)"]
    if log_file is not None:
        lines.append(f'log "{log_file}"')
    lines += [
        "units metal",
        f"atom_style {spec.atom_style}",
        "atom_modify map array",
        "boundary p p p",
        f'read_data "{data_file}"',
    ]
    lines += [
        f"mass {i + 1} {_num(atomic_masses[atomic_numbers[s]])}" for i, s in enumerate(species)
    ]
    lines += pair_lines
    lines += [
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        f"thermo_style custom {' '.join(_THERMO_KEYWORDS)}",
        "thermo_modify norm no flush no lost error",
        f"thermo {int(settings.thermo_every)}",
        f"timestep {_num(dt_ps)}",
    ]
    n_velocity = 0
    for stage in stages:
        lines.append(f"# stage {stage.name}: {stage.kind}")
        if stage.kind == "velocity":
            s = lammps_seed(seed + n_velocity)
            n_velocity += 1
            lines.append(
                f"velocity all create {_num(stage.t_start)} {s} "
                "dist gaussian mom yes rot no loop geom"
            )
        elif stage.kind == "minimize":
            lines.append("min_style cg")
            if stage.relax_cell:
                lines.append(f"fix amt_box all box/relax iso {_num(p_bar)} vmax 0.001")
            lines.append(
                f"minimize {MIN_ETOL} {_num(stage.fmax)} {stage.steps} "
                f"{MIN_EVALS_PER_ITERATION * stage.steps}"
            )
            if stage.relax_cell:
                lines.append("unfix amt_box")
        else:
            thermostat = f"temp {_num(stage.t_start)} {_num(stage.t_stop)} {_num(settings.tdamp)}"
            barostat = (
                f" iso {_num(p_bar)} {_num(p_bar)} {_num(settings.pdamp)}"
                if stage.kind == "npt"
                else ""
            )
            lines += [
                f"fix amt_md all {stage.kind} {thermostat}{barostat}",
                f"run {stage.steps}",
                "unfix amt_md",
            ]
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    """A number as LAMMPS input text, exact (shortest repr of the float64)."""
    return repr(float(x))


_THERMO_KEYWORDS = ("step", "temp", "pe", "ke", "etotal", "press", "vol", "density")


def parse_thermo(log_text: str) -> list[dict[str, np.ndarray]]:
    """Thermo tables of a LAMMPS log, one per `run`/`minimize`, in order.

    A table starts at a header line whose first word is "Step" and ends at the
    "Loop time" line; warning lines inside a table are skipped; a table cut short
    (killed run) is returned up to its last complete row.

    Returns:
        One dict column name -> float64 ``[n_rows]`` per run/minimize.
    """
    tables: list[dict[str, np.ndarray]] = []
    header: list[str] | None = None
    rows: list[list[float]] = []

    def close() -> None:
        if header is not None:
            data = np.array(rows, dtype=np.float64).reshape(-1, len(header))
            tables.append({name: data[:, k] for k, name in enumerate(header)})

    for line in log_text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "Step" and header is None:
            header, rows = words, []
        elif header is not None:
            if words[0].startswith("WARNING"):  # LAMMPS may warn in the middle of a run
                continue
            if words[0] == "Loop" or len(words) != len(header):
                close()
                header = None
                continue
            try:
                rows.append([float(w) for w in words])
            except ValueError:
                close()
                header = None
    close()
    return tables


@contextlib.contextmanager
def scratch_folder(folder: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, `run_stages` makes its temporary folders in `folder` (an
    existing folder; None: the system's temporary folder). `make_dataset` points them
    into the run's work folder, so the files of a killed worker stay there, where the
    next run of that folder removes them, instead of in /tmp."""
    token = _SCRATCH.set(None if folder is None else Path(folder))
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def scratch_dir() -> Path | None:
    """Where `run_stages` makes its temporary folders now (`scratch_folder`; None: the
    system's temporary folder)."""
    return _SCRATCH.get()


def run_stages(
    atoms: Atoms,
    potential: str,
    stages: Sequence[Stage],
    settings: MDSettings,
    seed: int,
    *,
    potential_options: Mapping[str, Any] | None = None,
    workdir: str | os.PathLike | None = None,
) -> MeltQuenchRun:
    """Run `stages` on `atoms` in one serial LAMMPS instance and return the final snapshot.

    The start structure goes to LAMMPS through a data file and the script through
    ``lammps.file`` (both in a temporary folder, removed afterwards unless `workdir`
    is given; it is made where `scratch_folder` says); the final positions and box are
    gathered from LAMMPS and rotated back into the frame of `atoms`.

    Args:
        atoms: 3D-periodic start structure (not modified).
        potential: registry name.
        stages: stages in order.
        settings: integrator settings.
        seed: non-negative integer seed of the velocity stages.
        potential_options: options of the potential.
        workdir: keep the data file, script and log in this existing folder.

    Returns:
        MeltQuenchRun with the final snapshot, per-stage thermo tables and the script.

    Raises:
        Exception: LAMMPS' own error (message included) if the run fails.

    References:
        Martyna, Tobias, Klein, J. Chem. Phys. 101, 4177 (1994) (Nose-Hoover NPT).
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    species = species_of(atoms)
    check_elements(potential, species)
    stages = tuple(stages)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=scratch_dir()) as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        data_file, script_file, log_file = (
            folder / "start.data",
            folder / "in.melt_quench",
            folder / "log.lammps",
        )
        rotation = write_lammps_data(data_file, atoms, species, get_spec(potential).atom_style)
        script = lammps_input(
            data_file,
            species,
            potential,
            stages,
            settings,
            seed,
            log_file=log_file,
            potential_options=potential_options,
        )
        script_file.write_text(script)
        lmp = new_lammps()
        start = time.perf_counter()
        try:
            with interruptible(lambda: lmp):  # Ctrl-C stops the script within a step
                lmp.file(os.fspath(script_file))
            wall = time.perf_counter() - start
            lmp.command("log none")
            final = _read_back(lmp, atoms.numbers, rotation)
            version = int(lmp.version())
        finally:
            lmp.close()
        tables = parse_thermo(log_file.read_text())
    thermo: list[dict[str, np.ndarray]] = []
    it = iter(tables)
    for stage in stages:
        thermo.append({} if stage.kind == "velocity" else next(it, {}))
    return MeltQuenchRun(
        atoms=final,
        thermo=thermo,
        stages=stages,
        script=script,
        lammps_version=version,
        md_steps=int(sum(s.steps for s in stages if s.is_md)),
        wall_s=wall,
    )


def _read_back(lmp: Any, numbers: np.ndarray, rotation: np.ndarray) -> Atoms:
    """Final snapshot from LAMMPS: positions by atom id (= input order), box, ASE frame."""
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3).copy()
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    lx, ly, lz = (boxhi[k] - boxlo[k] for k in range(3))
    box = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    positions = wrap_into(x - np.asarray(boxlo), box) @ rotation.T
    out = Atoms(numbers=np.array(numbers), positions=positions, cell=box @ rotation.T, pbc=True)
    out.wrap()
    return out
