"""`HMC`: Hamiltonian Monte Carlo on one `ase.Atoms` with ASE's velocity Verlet.

The ASE counterpart of `amtoolkit.diffusion.hmc.hmc_step`, for any calculator whose
energy is in units of k_B T (e.g. `amtoolkit.calculator.NoiseEnergyCalculator`, where
k_B T = 1 "eV"). One iteration:

    p ~ N(0, I) per coordinate, mean removed       (unit masses: p = velocities)
    H0 = E + |p|^2 / 2
    n_leapfrog steps of ase.md.verlet.VelocityVerlet with timestep dt
    accept with min(1, exp(-(H1 - H0))), else restore the positions.

Units: masses are set to 1 during the dynamics (and restored afterwards), and dt is
passed to VelocityVerlet as a plain number in ASE time units, so its update
``p += F dt/2; X += p dt / m; p += F' dt/2`` is exactly the dimensionless leapfrog of
the batched path. dt = sigma_X(t) dt0 for a noise-energy calculator (`dt0` in units of
the noise scale), else dt = dt0. The momenta and the Metropolis uniform are drawn with
`amtoolkit.diffusion.hmc.draw_momenta` from a torch generator seeded with `seed`, so for
the same seed, model and structure this driver and the batched `hmc_step` make the same
moves and decisions.

References:
    Duane et al., Phys. Lett. B 195 (1987); Neal, "MCMC using Hamiltonian dynamics"
    (2011), section 5.2; AMDEN (HMC denoising); docs/energy.md.
"""

from __future__ import annotations

import math
import os
from typing import IO, Any

import numpy as np
import torch
from ase import Atoms
from ase.md.verlet import VelocityVerlet
from ase.parallel import world
from ase.utils import IOContext

from amtoolkit.calculator import check_atoms
from amtoolkit.diffusion.hmc import check_dt0, draw_momenta, kinetic_energy, metropolis_accept
from amtoolkit.generator import check_int

__all__ = ["HMC"]


class HMC(IOContext):
    """Hamiltonian Monte Carlo driver for one structure, ASE style (``HMC(atoms).run(n)``).

    Args:
        atoms: the structure; only its positions change (masses and momenta are restored
            after each iteration). Constraints are not supported.
        calculator: the energy (k_B T = 1); default ``atoms.calc``. It is attached to
            `atoms`.
        dt0: step size; in units of sigma_X(t) for a calculator with ``sde`` and ``t``
            (`NoiseEnergyCalculator`; AMDEN: 0.4, 0.2 for MEG), else in ASE time units.
        t: diffusion time of the noise energy; given, it is set on the calculator
            (``calculator.set(t=t)``); None keeps the calculator's.
        n_leapfrog: velocity-Verlet steps per iteration, >= 1.
        seed: seed of the torch generator of momenta and uniforms (None: random).
        logfile: file name, open file or ``"-"`` (stdout) for one line per iteration.

    Attributes:
        n_iterations, n_accepted, n_nonfinite: running counts over all `run` calls.
        generator: the torch generator of the random draws.
    """

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any = None,
        dt0: float = 0.4,
        t: float | None = None,
        n_leapfrog: int = 15,
        seed: int | None = None,
        logfile: IO[str] | str | os.PathLike | None = None,
    ) -> None:
        check_atoms(atoms, "HMC", "refine(structures, model, method='hmc') takes a set")
        if calculator is not None:
            atoms.calc = calculator
        if atoms.calc is None:
            raise ValueError("HMC needs a calculator: pass calculator= or set atoms.calc")
        if atoms.constraints:
            raise ValueError(f"HMC does not support constraints, got {atoms.constraints}")
        check_dt0(dt0)
        n_leapfrog = check_int("n_leapfrog", n_leapfrog, 1)
        self.atoms = atoms
        self.calc = atoms.calc
        if t is not None:
            self.calc.set(t=float(t))
        self.dt0 = float(dt0)
        self.n_leapfrog = n_leapfrog
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))
        self.logfile = self.openfile(file=logfile, comm=world, mode="a")
        self.n_iterations = 0
        self.n_accepted = 0
        self.n_nonfinite = 0

    def __repr__(self) -> str:
        model = getattr(self.calc, "model_name", None)
        energy = f"model={model!r}" if model else f"calculator={type(self.calc).__name__}"
        return f"HMC({energy}, dt0={self.dt0:g}, n_leapfrog={self.n_leapfrog})"

    @property
    def dt(self) -> float:
        """Time step: sigma_X(t) dt0 for a noise-energy calculator, else dt0."""
        sde, t = getattr(self.calc, "sde", None), getattr(self.calc, "t", None)
        if sde is None or t is None:
            return self.dt0
        return float(sde.sigma_x(float(t))) * self.dt0

    @property
    def acceptance(self) -> float:
        """Fraction of accepted iterations so far (NaN before the first)."""
        return self.n_accepted / self.n_iterations if self.n_iterations else math.nan

    def step(self) -> bool:
        """One HMC iteration; returns whether the move was accepted."""
        atoms = self.atoms
        n_atoms = len(atoms)
        masses, momenta_before = atoms.get_masses(), atoms.get_momenta()
        x0 = atoms.get_positions()
        p, u = draw_momenta([n_atoms], self.generator, dtype=torch.float64)
        idx = torch.zeros(n_atoms, dtype=torch.long)

        e0 = atoms.get_potential_energy()
        forces = atoms.get_forces()
        finite = bool(np.isfinite(e0) and np.isfinite(forces).all())
        h0 = torch.tensor([e0]) + kinetic_energy(p, idx, 1)
        energy = e0
        try:
            atoms.set_masses(np.ones(n_atoms))
            atoms.set_momenta(p.numpy(), apply_constraint=False)
            dynamics = VelocityVerlet(atoms, timestep=self.dt, logfile=None)
            for _ in range(self.n_leapfrog):
                if not finite:
                    break
                forces = dynamics.step(forces)
                energy = atoms.get_potential_energy()
                finite = bool(np.isfinite(energy) and np.isfinite(forces).all())
            p1 = torch.as_tensor(atoms.get_momenta())
        finally:
            atoms.set_masses(masses)
        h1 = torch.tensor([energy]) + kinetic_energy(p1, idx, 1)
        accepted = finite and bool(metropolis_accept(h0, h1, u)[0])
        if not accepted:
            atoms.set_positions(x0, apply_constraint=False)
        atoms.set_momenta(momenta_before, apply_constraint=False)

        self.n_iterations += 1
        self.n_accepted += int(accepted)
        self.n_nonfinite += int(not finite)
        self._log(accepted, float(h0[0]), float(h1[0]), float(e0), float(energy))
        return accepted

    def run(self, n_iterations: int) -> float:
        """Run `n_iterations` iterations; returns their acceptance rate."""
        n_iterations = check_int("n_iterations", n_iterations, 0)
        accepted = sum(self.step() for _ in range(n_iterations))
        return accepted / n_iterations if n_iterations else math.nan

    def _log(self, accepted: bool, h0: float, h1: float, e0: float, e1: float) -> None:
        if self.n_iterations == 1:
            self.logfile.write(
                f"{'HMC':<5}{'iter':>6}{'accept':>8}{'E0':>16}{'E1':>16}{'dH':>14}{'rate':>8}\n"
            )
        self.logfile.write(
            f"{'HMC':<5}{self.n_iterations:>6d}{int(accepted):>8d}{e0:>16.6f}{e1:>16.6f}"
            f"{h1 - h0:>14.6g}{self.acceptance:>8.3f}\n"
        )
        self.logfile.flush()
