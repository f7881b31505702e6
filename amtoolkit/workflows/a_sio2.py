"""Amorphous silica (Tersoff, Munetoh 2007): random start, melt, instant quench, anneal.

Recipe (the AMDEN a-SiO2 set; docs/workflows.md, *Protocols*, `a-sio2`): n atoms with n
uniform among the multiples of 3 in [`min_atoms`, `max_atoms`] (80-250; n/3 Si and
2n/3 O), placed at random in a cube at `start_density` (2.2 g/cm^3) no closer than
`min_distance` (1.5 Å); a short minimisation (`prerelax_steps`, positions only) removes
the worst contacts; NPT melt at `melt_temperature` (3500 K) for `melt_time`; instant
quench by minimisation of positions and cell (zero pressure); new velocities at
`final_temperature` and `final_time` (10 ps) of NPT at 300 K.

Labels: ``shear_modulus``, ``bulk_modulus``, ``youngs_modulus``, ``poisson_ratio``
(GPa; relaxed-ion stress-strain fit, `amtoolkit.analysis.elastic`, after relaxing
positions and cell), ``relaxed_energy`` (eV/atom), ``ring_size`` (mean shortest-path
ring size counted in Si atoms, `amtoolkit.analysis.rings`, of the stored snapshot) and
``density`` (g/cm^3 of the stored snapshot).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from ase import Atoms

from amtoolkit.analysis.energy import AMU_PER_A3_TO_G_PER_CM3, density
from amtoolkit.analysis.rings import MAX_RING_BONDS, rings
from amtoolkit.workflows.base import (
    ELASTIC_DELTA_MAX,
    RING_MAXLENGTH_MIN,
    MeltQuenchProtocol,
    check_integers,
    check_non_negative,
    check_positive,
    check_pressure,
    check_range,
    relaxed_labels,
    warn_below,
)
from amtoolkit.workflows.lammps_md import Stage, md_stage, run_stages
from amtoolkit.workflows.structures import check_packing, random_packing

SIO2_MEAN_MASS = (28.0855 + 2 * 15.999) / 3
"""Mean atomic mass of SiO2, u."""

MIN_NETWORK_ATOMS = 48
"""Fewest atoms of an a-SiO2 cell that the protocol runs without a warning."""


@dataclasses.dataclass(frozen=True)
class ASiO2Protocol(MeltQuenchProtocol):
    """a-SiO2 melt-quench with the Munetoh Tersoff potential ("tersoff-sio2").

    Attributes:
        atoms: fixed number of atoms (a multiple of 3); None draws it per sample.
        min_atoms: smallest drawn size.
        max_atoms: largest drawn size.
        start_density: density of the random start (g/cm^3).
        min_distance: smallest interatomic distance of the random start (Å).
        prerelax_steps: iterations of the minimisation of the random start.
        melt_temperature: melt temperature (K).
        melt_time: melt duration (ps).
        quench_steps: iterations of the quench minimisation (positions and cell).
        final_temperature: anneal temperature after the quench (K).
        final_time: anneal duration (ps).
        timestep: MD time step (fs).
        tdamp: thermostat damping time (ps).
        pdamp: barostat damping time (ps).
        pressure: NPT and cell-minimisation target pressure (GPa).
        relax_fmax: force criterion of the label relaxations (eV/Å).
        elastic_delta: strain increment of the elastic fit.
        elastic_steps: strains per strain pattern of the elastic fit.
        ring_maxlength: largest ring counted (Si atoms per ring, inclusive).
        thermo_every: thermo output interval (steps).
    """

    name: ClassVar[str] = "a-sio2"
    potential: ClassVar[str] = "tersoff-sio2"
    labels: ClassVar[tuple[str, ...]] = (
        "shear_modulus",
        "bulk_modulus",
        "youngs_modulus",
        "poisson_ratio",
        "ring_size",
        "relaxed_energy",
        "density",
    )

    atoms: int | None = None
    min_atoms: int = 80
    max_atoms: int = 250
    start_density: float = 2.2
    min_distance: float = 1.5
    prerelax_steps: int = 200
    melt_temperature: float = 3500.0
    melt_time: float = 20.0
    quench_steps: int = 5000
    final_temperature: float = 300.0
    final_time: float = 10.0
    timestep: float = 1.0
    tdamp: float = 0.1
    pdamp: float = 1.0
    pressure: float = 0.0
    relax_fmax: float = 1.0e-2
    elastic_delta: float = 0.005
    elastic_steps: int = 3
    ring_maxlength: int = 12
    thermo_every: int = 100

    def __post_init__(self) -> None:
        check_integers(self)
        check_pressure(self)
        check_positive(
            self,
            "min_atoms",
            "max_atoms",
            "start_density",
            "melt_temperature",
            "final_temperature",
            "timestep",
            "tdamp",
            "pdamp",
            "relax_fmax",
            "elastic_delta",
            "elastic_steps",
            "thermo_every",
            "quench_steps",
        )
        check_non_negative(self, "min_distance", "prerelax_steps", "melt_time", "final_time")
        if self.atoms is not None:
            if isinstance(self.atoms, bool) or int(self.atoms) != self.atoms or self.atoms < 3:
                raise ValueError(f"atoms must be an integer >= 3, got {self.atoms!r}")
            if self.atoms % 3:
                raise ValueError(f"a-sio2 needs a multiple of 3 atoms (SiO2), got {self.atoms}")
        elif not self.sizes():
            raise ValueError(
                f"no multiple of 3 in [min_atoms, max_atoms] = [{self.min_atoms}, {self.max_atoms}]"
            )
        check_range(
            self,
            "start_density",
            1.0,
            5.0,
            "silica lies between 2.2 (glass) and 4.3 g/cm3 "
            "(stishovite); far outside it the start is a gas or cannot be packed",
        )
        check_range(
            self, "elastic_delta", 0.0, ELASTIC_DELTA_MAX, "the elastic fit needs small strains"
        )
        largest = MAX_RING_BONDS // 2  # rings counted in Si atoms: two bonds per Si
        if not RING_MAXLENGTH_MIN <= self.ring_maxlength <= largest:
            raise ValueError(
                f"ring_maxlength must be in [{RING_MAXLENGTH_MIN}, {largest}] (Si atoms per "
                f"ring; the ring search stops at {MAX_RING_BONDS} bonds), got "
                f"{self.ring_maxlength}"
            )
        n_per_volume = self.start_density / AMU_PER_A3_TO_G_PER_CM3 / SIO2_MEAN_MASS
        check_packing(
            n_per_volume, self.min_distance, f"start_density {self.start_density:g} g/cm3"
        )
        # the integrator settings and stages, once: a time step, stage length or temperature
        # past `lammps_md`'s bounds is refused now, not in a worker
        self.md_settings()
        self.stages()
        warn_below(
            self,
            "atoms" if self.atoms is not None else "min_atoms",
            MIN_NETWORK_ATOMS,
            "cells this small make no silica network (labels such as the Poisson ratio "
            "come out unphysical)",
        )
        warn_below(
            self,
            "melt_temperature",
            2000.0,
            "silica melts near 2000 K; a colder 'melt' "
            "keeps the random start instead of equilibrating a liquid",
        )

    def sizes(self) -> list[int]:
        """The cell sizes a sample is drawn from (multiples of 3)."""
        if self.atoms is not None:
            return [int(self.atoms)]
        first = -(-int(self.min_atoms) // 3) * 3
        return list(range(first, int(self.max_atoms) + 1, 3))

    def start(self, rng: np.random.Generator) -> Atoms:
        """Random stoichiometric start: size drawn from `sizes()`, then the packing."""
        sizes = self.sizes()
        n = sizes[int(rng.integers(len(sizes)))]
        symbols = ["Si"] * (n // 3) + ["O"] * (2 * n // 3)
        return random_packing(symbols, self.start_density, self.min_distance, rng)

    def stages(self) -> list[Stage]:
        """The LAMMPS stages, in order."""
        dt = self.timestep
        return [
            Stage("minimize", "prerelax", steps=int(self.prerelax_steps), fmax=0.1),
            Stage("velocity", "melt-velocities", t_start=self.melt_temperature),
            md_stage("npt", "melt", self.melt_time, self.melt_temperature, None, dt),
            Stage(
                "minimize",
                "quench",
                steps=int(self.quench_steps),
                fmax=self.relax_fmax,
                relax_cell=True,
            ),
            Stage("velocity", "final-velocities", t_start=self.final_temperature),
            md_stage("npt", "anneal", self.final_time, self.final_temperature, None, dt),
        ]

    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        """Random start from `seed`, melt, minimise, anneal; elastic and ring labels."""
        start = self.start(np.random.default_rng(seed))
        run = run_stages(start, self.potential, self.stages(), self.md_settings(), seed)
        snapshot = run.atoms
        labels = {"density": density(snapshot)}
        labels["ring_size"] = float(
            rings(snapshot, count_species="Si", maxlength=self.ring_maxlength).mean_size
        )
        relaxed, notes = relaxed_labels(
            snapshot,
            self.potential,
            fmax=self.relax_fmax,
            elastic=True,
            elastic_delta=self.elastic_delta,
            elastic_steps=self.elastic_steps,
        )
        labels.update(relaxed)
        snapshot.info["workflow"] = {
            **run.record(),
            "n_atoms": len(snapshot),
            **notes,
        }
        return snapshot, labels
