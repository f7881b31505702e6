"""Relaxation (positions and cell) and short molecular dynamics with a named potential.

Both functions take `potential` as a registry name or any ASE calculator. With a
`LammpsCalculator` the work runs inside LAMMPS (minimiser + `fix box/relax`, or
`fix nve/nvt/npt`); with any other calculator it runs with ASE (FIRE +
FrechetCellFilter, or ASE's integrators). Convergence is always judged the ASE way:
the largest force on the atoms and on the cell degrees of freedom of
`FrechetCellFilter` must be at most `fmax`; a LAMMPS minimisation that stops short is
finished with FIRE, so the result meets `fmax` whichever engine did the bulk.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from amtoolkit.potentials._lammps import interruptible
from amtoolkit.potentials.calculator import LammpsCalculator, overlapping_pair
from amtoolkit.potentials.registry import get_spec

RELAX_METHODS = ("auto", "lammps", "ase")
ENSEMBLES = ("nve", "nvt", "npt")
_BAR_PER_GPA = 1.0e4
_MAX_CYCLES = 10  # LAMMPS FIRE + box/relax cycles before handing over to ASE FIRE

ASE_FINISH_CHUNK = 1000
"""Steps of the ASE FIRE finish between checks of its progress: the finish stops when a
chunk lowers the max force by less than 10 % (the rule of the LAMMPS cycles). A stalled
3000-atom Tersoff MD frame otherwise spent 10000 steps (196 s) ending at the 0.083 eV/Å
it started near."""


def as_calculator(potential: str | Calculator) -> Calculator:
    """A calculator for `potential`: a registry name (new LammpsCalculator) or a calculator."""
    if isinstance(potential, str):
        get_spec(potential)  # KeyError listing names for an unknown one
        return LammpsCalculator(potential)
    if isinstance(potential, Calculator):
        return potential
    kind = type(potential).__name__
    raise TypeError(f"potential must be a name or an ASE Calculator, got {kind}")


def relax(
    atoms: Atoms,
    potential: str | Calculator,
    fmax: float = 0.01,
    cell: bool = True,
    steps: int = 10000,
    *,
    pressure: float = 0.0,
    method: str = "auto",
) -> Atoms:
    """Relax positions (and the cell, to `pressure`) until all forces are below `fmax`.

    Args:
        atoms: structure; not modified.
        potential: registry name or ASE calculator.
        fmax: force criterion (eV/Å) on atoms and on FrechetCellFilter's cell forces
            (virial / n_atoms, so |stress| <~ fmax * n_atoms / volume).
        cell: also relax the cell (3D-periodic structures only).
        steps: maximum number of optimiser steps of each minimisation (each LAMMPS
            FIRE or box relaxation of a cycle, and the ASE FIRE).
        pressure: target hydrostatic pressure (GPa) when `cell` is True.
        method: "lammps" (cycles of LAMMPS FIRE on positions and CG with fix
            box/relax on the cell, finished with ASE FIRE if needed), "ase" (ASE FIRE +
            FrechetCellFilter) or "auto": "lammps" for a LammpsCalculator, else "ase".
            "lammps" is the faster engine by measurement (benchmarks/bench_potentials.py:
            216-atom SW a-Si 0.57 s vs 3.6 s; 192-atom BMP silica 5.0 s vs > 76 s).

    Returns:
        A relaxed copy with a SinglePointCalculator holding energy, forces and stress,
        and `info` keys "relax_converged" (bool), "relax_steps" (int), "relax_method".
        A run that does not converge within `steps` warns (RuntimeWarning).

    References: Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006) (FIRE).
    """
    if method not in RELAX_METHODS:
        raise ValueError(f"method must be one of {RELAX_METHODS}, got {method!r}")
    if not (math.isfinite(fmax) and fmax > 0):
        raise ValueError(f"fmax must be a positive force in eV/Å, got {fmax}")
    calc = as_calculator(potential)
    work = atoms.copy()
    work.calc = None
    periodic = bool(np.all(work.pbc))
    relax_cell = bool(cell) and periodic
    if method == "auto":
        method = "lammps" if isinstance(calc, LammpsCalculator) else "ase"
    if method == "lammps" and not isinstance(calc, LammpsCalculator):
        raise ValueError("method='lammps' needs a LammpsCalculator (a potential name)")

    nsteps = 0
    with warnings.catch_warnings(), _single_threaded_blas():
        # FrechetCellFilter's matrix logarithm warns about round-off near the identity
        warnings.filterwarnings("ignore", message="logm result may be inaccurate")
        if method == "lammps":
            # LAMMPS afresh for each relaxation: what an earlier run left there (neighbour
            # lists, ghost atoms) changes the round-off, and a minimisation of a
            # generated cell can turn round-off into another minimum; so a result must
            # not depend on which structures the calculator relaxed before
            calc.invalidate()
            # atoms lost: the next structure starts afresh; Ctrl-C: within a step
            with calc.running(work), interruptible(lambda: calc.lammps):
                nsteps += _separate(work, calc, steps)
                nsteps += _lammps_minimize(work, calc, fmax, relax_cell, steps, pressure)
        work.calc = calc
        target = _filtered(work, relax_cell, pressure)
        if _max_force(target) > fmax:
            from ase.optimize import FIRE  # imported here: ase.optimize pulls in scipy.optimize

            opt = FIRE(target, logfile=None)
            best = _max_force(target)
            kept = _state(work)
            while opt.nsteps < steps:  # one FIRE run, looked at every chunk of steps
                if opt.run(fmax=fmax, steps=min(ASE_FINISH_CHUNK, steps - opt.nsteps)):
                    break
                force = _max_force(target)
                if force < best:
                    kept = _state(work)
                if force > 0.9 * best:  # stalled: more steps would not get there
                    break
                best = min(best, force)
            nsteps += opt.nsteps
            if _max_force(target) > best:  # stalled further out: hand back the best seen
                _restore(work, kept)
                target = _filtered(work, relax_cell, pressure)
        final_force = _max_force(target)
    converged = final_force <= fmax
    if not converged:
        warnings.warn(
            f"relax did not reach fmax={fmax} eV/Å in {nsteps} steps "
            f"(max force {final_force:.3g} eV/Å)",
            RuntimeWarning,
            stacklevel=2,
        )
    _freeze_results(work, calc)
    work.info.update(relax_converged=bool(converged), relax_steps=int(nsteps), relax_method=method)
    return work


def run_md(
    atoms: Atoms,
    potential: str | Calculator,
    temperature: float,
    steps: int,
    timestep: float = 1.0,
    ensemble: str = "nvt",
    seed: int = 0,
    *,
    pressure: float = 0.0,
    tdamp: float | None = None,
    pdamp: float | None = None,
    trajectory: str | os.PathLike | list[Atoms] | None = None,
    interval: int = 100,
) -> Atoms:
    """Run a short MD trajectory and return the final frame.

    Velocities: those of `atoms` if it has non-zero momenta, else drawn from
    Maxwell-Boltzmann at `temperature` with `seed` (zero total momentum).

    With `trajectory`, a frame is kept at step 0 and every `interval` steps: appended to
    the list, or written to the file (extxyz, frame by frame as the run goes, so an
    interrupted run keeps what it made; an existing file is replaced). Each frame holds
    positions (wrapped), cell, velocities, a SinglePointCalculator (energy, forces,
    stress) and `info` keys "md_step", "md_time" (fs) and "md_temperature" (K). On
    LAMMPS the run goes in chunks of `interval` steps (thermostat and barostat state
    carried over), which reorders floating-point sums: the trajectory is the same for
    the same `interval`, and equal to an unchunked run only to round-off.

    Args:
        atoms: start structure; not modified.
        potential: registry name or ASE calculator.
        temperature: thermostat target and initial-velocity temperature (K).
        steps: number of MD steps.
        timestep: fs.
        ensemble: "nve", "nvt" (Nose-Hoover) or "npt" (Nose-Hoover, isotropic barostat).
        seed: random seed for the initial velocities.
        pressure: npt target pressure (GPa).
        tdamp: thermostat damping time (fs), default 100 timesteps.
        pdamp: barostat damping time (fs), default 1000 timesteps.
        trajectory: where to keep frames along the run: a list, an extxyz path, or None.
        interval: steps between kept frames (with `trajectory`).

    Returns:
        The final frame (positions wrapped into the cell, velocities set) with a
        SinglePointCalculator (energy, forces, stress) and `info` keys "md_steps",
        "md_ensemble", "md_temperature" (instantaneous final temperature, K).

    References: Martyna, Tobias, Klein, J. Chem. Phys. 101, 4177 (1994) (NVT/NPT).
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    if ensemble != "nve" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 K for ensemble {ensemble!r}")
    if steps < 0 or timestep <= 0:
        raise ValueError("steps must be >= 0 and timestep > 0")
    if trajectory is not None and (int(interval) != interval or interval < 1):
        raise ValueError(f"interval must be a positive number of steps, got {interval}")
    calc = as_calculator(potential)
    work = atoms.copy()
    work.calc = None
    if ensemble == "npt" and not np.all(work.pbc):
        raise ValueError("ensemble 'npt' needs a 3D-periodic cell")
    settings = _MDSettings(
        temperature=temperature,
        steps=steps,
        timestep=timestep,
        ensemble=ensemble,
        seed=seed,
        pressure=pressure,
        tdamp=100.0 * timestep if tdamp is None else tdamp,
        pdamp=1000.0 * timestep if pdamp is None else pdamp,
        has_velocities=bool(np.any(work.get_momenta() != 0.0)),
    )
    with _frame_sink(trajectory, timestep) as keep:
        if isinstance(calc, LammpsCalculator):
            with calc.running(work), interruptible(lambda: calc.lammps):
                _lammps_md(work, calc, settings, keep, int(interval))
        else:
            _ase_md(work, calc, settings, keep, int(interval))
    work.wrap()
    _freeze_results(work, calc)
    work.info.update(
        md_steps=int(steps), md_ensemble=ensemble, md_temperature=float(work.get_temperature())
    )
    return work


# ---------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _MDSettings:
    temperature: float  # K
    steps: int
    timestep: float  # fs
    ensemble: str
    seed: int
    pressure: float  # GPa
    tdamp: float  # fs
    pdamp: float  # fs
    has_velocities: bool


def _single_threaded_blas() -> Any:
    """Limit BLAS to one thread: FrechetCellFilter does many 3x3 solves, which a threaded
    OpenBLAS slows down ~90x on a loaded 2-core machine (measured: 157 ms -> 1.8 ms per
    get_forces). A no-op when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _filtered(atoms: Atoms, relax_cell: bool, pressure: float) -> Any:
    from ase.filters import FrechetCellFilter

    if relax_cell:
        return FrechetCellFilter(atoms, scalar_pressure=pressure * units.GPa)
    return atoms


def _max_force(target: Any) -> float:
    forces = target.get_forces()
    return float(np.sqrt((forces**2).sum(axis=1).max())) if len(forces) else 0.0


def _freeze_results(atoms: Atoms, calc: Calculator) -> None:
    atoms.calc = calc
    atoms.calc = SinglePointCalculator(atoms, **_results_of(atoms, calc))


def _results_of(atoms: Atoms, calc: Calculator) -> dict[str, Any]:
    """Energy, forces and (3D-periodic cells) stress of `atoms` under its calculator `calc`."""
    results: dict[str, Any] = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
    }
    if np.all(atoms.pbc) and "stress" in calc.implemented_properties:
        results["stress"] = atoms.get_stress()
    return results


def _set_from_lammps(atoms: Atoms, calc: LammpsCalculator, velocities: bool) -> None:
    positions, cell, v = calc.read_structure()
    if calc.periodic:
        atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = positions
    if velocities:
        atoms.set_velocities(v)
    calc.mark_box_changed()


_SEPARATE_STEPS = 500
"""Most ASE FIRE steps `_separate` spends pushing overlapping atoms apart."""


def _separate(atoms: Atoms, calc: LammpsCalculator, steps: int) -> int:
    """Push atoms nearer than `OVERLAP` apart with ASE FIRE on the positions, until none
    is; returns the steps taken (0 for a structure without such a pair).

    The forces between such atoms are huge (about 1e4 eV/Å for Si at 0.3 Å under SW),
    and LAMMPS's minimisers move them so far in one step that atoms leave the box ("Lost
    atoms"); FIRE's 0.2 Å cap on each step separates them, and LAMMPS takes over.
    """
    if overlapping_pair(atoms) is None:
        return 0
    from ase.optimize import FIRE

    atoms.calc = calc
    opt = FIRE(atoms, logfile=None)
    for _ in opt.irun(fmax=0.0, steps=min(steps, _SEPARATE_STEPS)):
        if overlapping_pair(atoms) is None:
            break
    atoms.calc = None
    return opt.nsteps


def _lammps_minimize(
    atoms: Atoms, calc: LammpsCalculator, fmax: float, relax_cell: bool, steps: int, pressure: float
) -> int:
    """Minimise inside LAMMPS; `atoms` gets the result. Returns the number of iterations.

    Cycles of FIRE on the positions (robust where an energy is not smooth, e.g. the
    three-body cutoff of BMP) followed by CG with `fix box/relax tri` (damped-dynamics
    styles cannot move the box), each minimisation with up to `steps` iterations, until
    the ASE criterion is met, a cycle stops improving the max force by 10%, or
    `_MAX_CYCLES` cycles have run. The box relaxation runs in every cycle: when the
    first FIRE spent the whole budget and the box was left unrelaxed, the ASE finish
    with a cell filter stalled on Tersoff a-SiO2 (20000 steps, 200 s, max force 0.19
    eV/Å, where two cycles here converge in 9 s).
    """
    total, best = 0, np.inf
    kept = _state(atoms)
    for _ in range(_MAX_CYCLES):
        calc.load(atoms)
        lmp = calc.lammps
        commands = [
            "reset_timestep 0",
            "min_style fire",
            "min_modify norm max",
            f"minimize 0.0 {fmax} {steps} {10 * steps}",
        ]
        lmp.commands_list(commands)
        total += int(lmp.extract_global("ntimestep"))
        if relax_cell:  # always: a cell left unrelaxed is what the slow ASE finish stalls on
            lmp.commands_list(
                [
                    "reset_timestep 0",
                    "min_style cg",
                    f"fix amt_relax all box/relax tri {pressure * _BAR_PER_GPA} vmax 0.001",
                    f"minimize 0.0 {fmax} {steps} {10 * steps}",
                    "unfix amt_relax",
                ]
            )
            total += int(lmp.extract_global("ntimestep"))
        _set_from_lammps(atoms, calc, velocities=False)
        atoms.calc = calc
        force = _max_force(_filtered(atoms, relax_cell, pressure))
        atoms.calc = None
        if force < best:
            kept = _state(atoms)
        if force <= fmax or force > 0.9 * best:
            break
        best = force
    if force > best:  # a cycle that ended further out: the best cycle's structure
        _restore(atoms, kept)
    return total


def _state(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Positions and cell of `atoms`, copied (a relaxation's best point so far)."""
    return atoms.positions.copy(), atoms.cell.array.copy()


def _restore(atoms: Atoms, state: tuple[np.ndarray, np.ndarray]) -> None:
    """Put `atoms` back to `state` (`_state`), atoms moving with the cell."""
    positions, cell = state
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = positions


Keeper = Callable[[Atoms, int, dict[str, Any]], None] | None
"""Takes a trajectory frame: (atoms, step, results of the current positions)."""


@contextlib.contextmanager
def _frame_sink(
    trajectory: str | os.PathLike | list[Atoms] | None, timestep: float
) -> Iterator[Keeper]:
    """The frame keeper of `run_md`'s `trajectory` (None without one); a file is
    written frame by frame and flushed, so an interrupted run keeps its frames."""
    if trajectory is None:
        yield None
        return

    def frame(atoms: Atoms, step: int, results: dict[str, Any]) -> Atoms:
        out = atoms.copy()
        out.wrap()
        out.calc = SinglePointCalculator(out, **results)
        out.info.update(
            md_step=int(step),
            md_time=float(step * timestep),
            md_temperature=float(out.get_temperature()),
        )
        return out

    if isinstance(trajectory, list):
        yield lambda atoms, step, results: trajectory.append(frame(atoms, step, results))
        return
    from ase.io import write

    with open(trajectory, "w") as fh:

        def keep(atoms: Atoms, step: int, results: dict[str, Any]) -> None:
            write(fh, frame(atoms, step, results), format="extxyz")
            fh.flush()

        yield keep


def _lammps_md(
    atoms: Atoms, calc: LammpsCalculator, md: _MDSettings, keep: Keeper, interval: int
) -> None:
    calc.load(atoms)
    lmp = calc.lammps
    ps = 1.0e-3  # fs -> ps (LAMMPS metal time unit)
    if md.has_velocities:
        v = atoms.get_velocities() @ calc.rotation * (1000.0 * units.fs)  # ASE -> Å/ps
        lmp.scatter_atoms("v", 1, 3, np.ctypeslib.as_ctypes(np.ascontiguousarray(v.ravel())))
    else:
        lmp.command("velocity all set 0.0 0.0 0.0")
        if md.temperature > 0:
            lmp_seed = md.seed % 2_000_000_000 + 1  # LAMMPS seeds must be positive
            lmp.command(
                f"velocity all create {md.temperature} {lmp_seed} "
                "dist gaussian mom yes rot no loop geom"
            )
    thermostat = f"temp {md.temperature} {md.temperature} {md.tdamp * ps}"
    p_bar = md.pressure * _BAR_PER_GPA
    fix = {
        "nve": "fix amt_md all nve",
        "nvt": f"fix amt_md all nvt {thermostat}",
        "npt": f"fix amt_md all npt {thermostat} iso {p_bar} {p_bar} {md.pdamp * ps}",
    }[md.ensemble]
    lmp.commands_list(["reset_timestep 0", f"timestep {md.timestep * ps}", fix])
    chunks = [md.steps] if keep is None else [interval] * (md.steps // interval)
    if keep is not None:
        _set_from_lammps(atoms, calc, velocities=True)  # the velocities LAMMPS drew
        keep(atoms, 0, calc.loaded_results())
    done = 0
    for chunk in chunks:
        lmp.command(f"run {chunk} post no")
        done += chunk
        if keep is not None:
            _set_from_lammps(atoms, calc, velocities=True)
            keep(atoms, done, calc.loaded_results())
    if done < md.steps:
        lmp.command(f"run {md.steps - done} post no")
    lmp.command("unfix amt_md")
    _set_from_lammps(atoms, calc, velocities=True)


def _ase_md(atoms: Atoms, calc: Calculator, md: _MDSettings, keep: Keeper, interval: int) -> None:
    from ase.md import IsotropicMTKNPT, NoseHooverChainNVT, VelocityVerlet
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md import thermalize_momenta  # ASE >= 3.29
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    atoms.calc = calc
    if not md.has_velocities and md.temperature > 0:
        thermalize_momenta(atoms, temperature_K=md.temperature, rng=np.random.default_rng(md.seed))
        Stationary(atoms)
    dt = md.timestep * units.fs
    if md.ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    elif md.ensemble == "nvt":
        dyn = NoseHooverChainNVT(
            atoms, timestep=dt, temperature_K=md.temperature, tdamp=md.tdamp * units.fs
        )
    else:
        dyn = IsotropicMTKNPT(
            atoms,
            timestep=dt,
            temperature_K=md.temperature,
            pressure_au=md.pressure * units.GPa,
            tdamp=md.tdamp * units.fs,
            pdamp=md.pdamp * units.fs,
        )
    if keep is not None:

        def take() -> None:
            keep(atoms, dyn.nsteps, _results_of(atoms, calc))

        dyn.attach(take, interval=interval)
    dyn.run(md.steps)
