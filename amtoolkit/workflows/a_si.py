"""Amorphous silicon (Stillinger-Weber): melt, quench and anneal snapshots.

Recipe (the AMDEN a-Si sets; docs/workflows.md, *Protocols*, `a-si`): diamond Si,
k x k x k conventional cells (216 atoms by default), NPT at zero pressure with
Nose-Hoover thermostat and barostat (Tdamp 0.1 ps, Pdamp 1 ps, 1 fs steps): `melt_time`
at `melt_temperature` (3000 K, 20 ps), then `liquid_time` at `liquid_temperature`
(2500 K, 20 ps). Then

- ``melt``: the 2500 K snapshot is stored;
- ``quench``: thermostat target set to `final_temperature` (300 K) at once, `final_time`
  (10 ps);
- ``anneal``: linear ramp from 2500 K to 300 K at `cooling_rate` (10 K/ps), then
  `final_time` (10 ps) at 300 K.

Labels: ``relaxed_energy`` (eV/atom after relaxing positions and cell at zero pressure),
``density`` (g/cm^3 of the stored snapshot) and, for ``anneal``, ``cooling_rate`` (K/ps).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ase import Atoms

from amtoolkit.analysis.energy import density
from amtoolkit.workflows.base import (
    MeltQuenchProtocol,
    check_cooling_rate,
    check_integers,
    check_non_negative,
    check_positive,
    check_pressure,
    check_range,
    relaxed_labels,
    warn_below,
)
from amtoolkit.workflows.lammps_md import Stage, md_stage, run_stages
from amtoolkit.workflows.structures import diamond_supercell

VARIANTS = ("melt", "quench", "anneal")


@dataclasses.dataclass(frozen=True)
class ASiProtocol(MeltQuenchProtocol):
    """a-Si melt-quench with the Stillinger-Weber potential ("sw-si").

    Attributes:
        variant: "melt", "quench" or "anneal" (see the module docstring).
        atoms: number of atoms, 8 k^3 (64, 216, 512, ...).
        lattice_constant: diamond lattice constant of the start (Å).
        melt_temperature: first melt stage (K).
        melt_time: duration of the first melt stage (ps).
        liquid_temperature: second melt stage, the stored ``melt`` snapshot (K).
        liquid_time: duration of the second melt stage (ps).
        final_temperature: quench / anneal end temperature (K).
        final_time: time at `final_temperature` (ps; quench and anneal).
        cooling_rate: anneal ramp rate (K/ps).
        timestep: MD time step (fs).
        tdamp: thermostat damping time (ps).
        pdamp: barostat damping time (ps).
        pressure: NPT target pressure (GPa).
        relax_fmax: force criterion of the relaxation for ``relaxed_energy`` (eV/Å).
        thermo_every: thermo output interval (steps).
    """

    name: ClassVar[str] = "a-si"
    potential: ClassVar[str] = "sw-si"
    labels: ClassVar[tuple[str, ...]] = ("relaxed_energy", "density", "cooling_rate")

    variant: str = "quench"
    atoms: int = 216
    lattice_constant: float = 5.431
    melt_temperature: float = 3000.0
    melt_time: float = 20.0
    liquid_temperature: float = 2500.0
    liquid_time: float = 20.0
    final_temperature: float = 300.0
    final_time: float = 10.0
    cooling_rate: float = 10.0
    timestep: float = 1.0
    tdamp: float = 0.1
    pdamp: float = 1.0
    pressure: float = 0.0
    relax_fmax: float = 0.01
    thermo_every: int = 100

    @classmethod
    def from_options(cls, full: bool = False, **options: Any) -> ASiProtocol:
        """As `MeltQuenchProtocol.from_options`; a cooling rate is refused for the
        variants that have no ramp (``melt`` and ``quench`` would silently ignore it)."""
        variant = options.get("variant", cls.variant)
        if "cooling_rate" in options and variant != "anneal":
            raise ValueError(
                f"cooling_rate applies to the anneal variant only; variant {variant!r} has "
                "no cooling ramp (add variant=anneal)"
            )
        return super().from_options(full=full, **options)

    def __post_init__(self) -> None:
        check_integers(self)
        check_pressure(self)
        if self.variant not in VARIANTS:
            raise ValueError(
                f"unknown a-si variant {self.variant!r} (choose from {', '.join(VARIANTS)})"
            )
        check_positive(
            self,
            "atoms",
            "lattice_constant",
            "melt_temperature",
            "liquid_temperature",
            "final_temperature",
            "cooling_rate",
            "timestep",
            "tdamp",
            "pdamp",
            "relax_fmax",
            "thermo_every",
        )
        check_non_negative(self, "melt_time", "liquid_time", "final_time")
        diamond_supercell(int(self.atoms), self.lattice_constant)  # raises for non-8k^3 sizes
        check_range(
            self,
            "lattice_constant",
            4.8,
            6.5,
            "diamond Si has 5.431 Å (2.33 g/cm3); outside "
            "this range (3.4-1.4 g/cm3) the start is far from any silicon",
        )
        # the integrator settings and stages, once: a time step, stage length or temperature
        # past `lammps_md`'s bounds is refused now, not in a worker
        self.md_settings()
        check_cooling_rate(self)
        self.stages()
        warn_below(
            self,
            "atoms",
            64,
            "a cell this small stays crystalline (its periodic images hold "
            "the diamond order through the melt)",
        )
        for name in ("melt_temperature", "liquid_temperature"):
            warn_below(
                self,
                name,
                1800.0,
                "Stillinger-Weber silicon melts near 1690 K; below about "
                "1800 K the diamond start does not melt and the samples stay crystalline",
            )
        if self.variant == "anneal" and not self.liquid_temperature > self.final_temperature:
            raise ValueError("anneal needs liquid_temperature > final_temperature")

    def stages(self) -> list[Stage]:
        """The LAMMPS stages of this variant, in order."""
        dt = self.timestep
        stages = [
            Stage("velocity", "velocities", t_start=self.melt_temperature),
            md_stage("npt", "melt", self.melt_time, self.melt_temperature, None, dt),
            md_stage("npt", "liquid", self.liquid_time, self.liquid_temperature, None, dt),
        ]
        if self.variant == "quench":
            stages.append(
                md_stage("npt", "quench", self.final_time, self.final_temperature, None, dt)
            )
        elif self.variant == "anneal":
            ramp = (self.liquid_temperature - self.final_temperature) / self.cooling_rate
            stages += [
                md_stage(
                    "npt", "anneal", ramp, self.liquid_temperature, self.final_temperature, dt
                ),
                md_stage("npt", "hold", self.final_time, self.final_temperature, None, dt),
            ]
        return stages

    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        """Melt-quench one cell from the diamond start with velocities drawn from `seed`."""
        start = diamond_supercell(int(self.atoms), self.lattice_constant)
        run = run_stages(start, self.potential, self.stages(), self.md_settings(), seed)
        snapshot = run.atoms
        labels = {"density": density(snapshot)}
        relaxed, notes = relaxed_labels(snapshot, self.potential, fmax=self.relax_fmax)
        labels.update(relaxed)
        if self.variant == "anneal":
            labels["cooling_rate"] = float(self.cooling_rate)
        snapshot.info["workflow"] = {
            **run.record(),
            **notes,
        }
        return snapshot, labels
