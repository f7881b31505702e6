"""Any composition under any potential: random start, melt, linear cooling, hold.

Recipe (docs/workflows.md, *Protocols*, `glass`): `atoms` atoms of `composition` (e.g.
"Cu50Zr50", "Cu64Zr36", "SiO2"; counts by largest remainder), placed at random in a cube
at `start_density` no closer than `min_distance`; a short minimisation (positions only)
removes the worst contacts; NPT melt at `melt_temperature` for `melt_time`; a linear
ramp to `final_temperature` at `cooling_rate`; `final_time` of NPT at that temperature.
The potential is a name (`amtool potentials`) or a potential file (any LAMMPS potential,
docs/potentials.md), so a dataset for a material without a named protocol is one
command.

Labels: ``density`` (g/cm^3 of the stored snapshot), ``relaxed_energy`` (eV/atom after
relaxing positions and cell), and with `elastic` the Voigt-Reuss-Hill moduli of the
relaxed-ion stiffness tensor: ``shear_modulus``, ``bulk_modulus``, ``youngs_modulus``
(GPa) and ``poisson_ratio`` (isotropic averages that stay consistent for small,
anisotropic cells, unlike the cubic averages of the a-sio2 and meg labels).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from amtoolkit.analysis.energy import AMU_PER_A3_TO_G_PER_CM3, density
from amtoolkit.workflows.base import (
    ELASTIC_DELTA_MAX,
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
from amtoolkit.workflows.structures import check_packing, random_packing

_TERM = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")

NEUTRAL_TOLERANCE = 1e-6
"""Largest net charge (e) of a cell under a charged potential that counts as neutral."""


def parse_composition(text: str) -> dict[str, float]:
    """Element -> amount of a formula such as "Cu50Zr50", "Cu0.64Zr0.36" or "SiO2".

    Raises:
        ValueError: not a formula of element symbols and positive amounts.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"composition must be a formula such as 'Cu50Zr50', got {text!r}")
    compact = text.replace(" ", "")
    terms = list(_TERM.finditer(compact))
    if not terms or "".join(t.group(0) for t in terms) != compact:
        raise ValueError(
            f"composition {text!r} is not a formula of element symbols and amounts "
            "(e.g. 'Cu50Zr50', 'Cu0.64Zr0.36', 'SiO2')"
        )
    amounts: dict[str, float] = {}
    for term in terms:
        symbol, number = term.group(1), term.group(2)
        if symbol not in chemical_symbols[1:]:
            raise ValueError(f"composition {text!r}: {symbol!r} is not an element symbol")
        try:
            amount = float(number) if number else 1.0
        except ValueError:
            raise ValueError(f"composition {text!r}: bad amount {number!r} of {symbol}") from None
        if not amount > 0:
            raise ValueError(f"composition {text!r}: the amount of {symbol} must be > 0")
        amounts[symbol] = amounts.get(symbol, 0.0) + amount
    return amounts


def element_counts(composition: str, n_atoms: int) -> dict[str, int]:
    """How many atoms of each element a cell of `n_atoms` of `composition` holds: the
    proportional shares rounded by largest remainder (so they sum to `n_atoms`)."""
    amounts = parse_composition(composition)
    total = sum(amounts.values())
    shares = {el: n_atoms * a / total for el, a in amounts.items()}
    counts = {el: int(math.floor(s)) for el, s in shares.items()}
    left = n_atoms - sum(counts.values())
    for el in sorted(shares, key=lambda e: counts[e] - shares[e])[:left]:
        counts[el] += 1
    return counts


@dataclasses.dataclass(frozen=True)
class GlassProtocol(MeltQuenchProtocol):
    """Melt-quench of any composition under any potential (name or potential file).

    Attributes:
        composition: formula, e.g. "Cu50Zr50" (required).
        potential: potential name or potential file (required).
        atoms: atoms per cell.
        start_density: density of the random start (g/cm^3, required): near the glass's.
        min_distance: smallest interatomic distance of the random start (Å).
        prerelax_steps: iterations of the minimisation of the random start.
        melt_temperature: melt temperature (K).
        melt_time: melt duration (ps).
        cooling_rate: linear cooling rate from the melt to `final_temperature` (K/ps).
        final_temperature: temperature of the hold after the ramp (K).
        final_time: hold duration (ps).
        timestep: MD time step (fs).
        tdamp: thermostat damping time (ps).
        pdamp: barostat damping time (ps).
        pressure: NPT target pressure (GPa).
        relax_fmax: force criterion of the label relaxations (eV/Å).
        elastic: also label the elastic moduli (Voigt-Reuss-Hill).
        elastic_delta: strain increment of the elastic fit: small, as small glass cells
            yield at a few tenths of a percent (0.005 left 6 of 100 fast-quenched
            100-atom Cu50Zr50 cells with a negative-eigenvalue stiffness matrix, 0.002 one).
        elastic_steps: strains per strain pattern of the elastic fit.
        thermo_every: thermo output interval (steps).
        potential_digest: the hash of a potential file and its parameter files, set from
            the file (`PotentialSpec.digest`): a resume with an edited file is refused.
    """

    name: ClassVar[str] = "glass"
    labels: ClassVar[tuple[str, ...]] = (
        "density",
        "relaxed_energy",
        "shear_modulus",
        "bulk_modulus",
        "youngs_modulus",
        "poisson_ratio",
    )

    composition: str = ""
    potential: str = ""  # type: ignore[misc]  # a parameter here, a class constant elsewhere
    atoms: int = 200
    start_density: float | None = None
    min_distance: float = 1.5
    prerelax_steps: int = 200
    melt_temperature: float = 2500.0
    melt_time: float = 10.0
    cooling_rate: float = 10.0
    final_temperature: float = 300.0
    final_time: float = 10.0
    timestep: float = 1.0
    tdamp: float = 0.1
    pdamp: float = 1.0
    pressure: float = 0.0
    relax_fmax: float = 1.0e-3
    elastic: bool = True
    elastic_delta: float = 0.002  # 0.005 left 6 of 100 small Cu-Zr cells unstable (yield)
    elastic_steps: int = 3
    thermo_every: int = 100
    potential_digest: str = ""

    def __post_init__(self) -> None:
        from amtoolkit.potentials import check_elements, get_spec
        from amtoolkit.potentials.files import is_potential_file, load_potential

        if not self.potential or not isinstance(self.potential, str):
            raise ValueError(
                "glass needs a potential: a name (amtool potentials) or a potential file, "
                "e.g. --potential cuzr.yaml"
            )
        if is_potential_file(self.potential):  # absolute: workers and resumes run anywhere
            object.__setattr__(self, "potential", load_potential(self.potential).source)
        parse_composition(self.composition)
        if self.start_density is None:
            raise ValueError(
                "glass needs start_density (g/cm3), near the glass's density: e.g. "
                "--set start_density=7.0 for Cu50Zr50"
            )
        check_integers(self)
        check_pressure(self)
        check_positive(
            self,
            "atoms",
            "start_density",
            "melt_temperature",
            "final_temperature",
            "cooling_rate",
            "timestep",
            "tdamp",
            "pdamp",
            "relax_fmax",
            "elastic_delta",
            "elastic_steps",
            "thermo_every",
        )
        check_non_negative(self, "min_distance", "prerelax_steps", "melt_time", "final_time")
        check_cooling_rate(self)
        check_range(self, "start_density", 0.1, 25.0, "densities are in g/cm3")
        check_range(
            self, "elastic_delta", 0.0, ELASTIC_DELTA_MAX, "the elastic fit needs small strains"
        )
        if not isinstance(self.elastic, bool):
            raise ValueError(f"elastic must be true or false, got {self.elastic!r}")
        if not self.melt_temperature > self.final_temperature:
            raise ValueError(
                f"melt_temperature ({self.melt_temperature:g} K) must be above "
                f"final_temperature ({self.final_temperature:g} K)"
            )
        counts = element_counts(self.composition, int(self.atoms))
        missing = [el for el, n in counts.items() if n == 0]
        if missing:
            raise ValueError(
                f"{self.atoms} atoms of {self.composition} hold no {', '.join(missing)}: "
                "give more atoms"
            )
        try:
            spec = get_spec(self.potential)
        except KeyError as err:  # an unknown name: bad input like any other option
            raise ValueError(str(err.args[0])) from None
        check_elements(spec, counts)
        if spec.digest:  # the file's version is a parameter: a resume must use the same
            object.__setattr__(self, "potential_digest", spec.digest)
        if spec.charges:
            net = sum(n * spec.charges[el] for el, n in counts.items())
            if abs(net) > NEUTRAL_TOLERANCE:
                formula = " ".join(f"{n} {el}" for el, n in counts.items())
                raise ValueError(
                    f"{self.atoms} atoms of {self.composition} ({formula}) carry {net:+g} e "
                    f"under {spec.name!r}: give a number of atoms that makes whole formula units"
                )
        mean_mass = sum(n * atomic_masses[atomic_numbers[el]] for el, n in counts.items())
        n_per_volume = self.start_density / AMU_PER_A3_TO_G_PER_CM3 / (mean_mass / self.atoms)
        check_packing(
            n_per_volume, self.min_distance, f"start_density {self.start_density:g} g/cm3"
        )
        self.md_settings()  # the integrator settings and stages, checked now
        self.stages()
        warn_below(self, "atoms", 32, "cells this small give noisy labels")

    @classmethod
    def full(cls) -> GlassProtocol:
        raise ValueError("protocol 'glass' has no paper setting (--full): set its options")

    def element_counts(self) -> dict[str, int]:
        """Atoms of each element in a cell."""
        return element_counts(self.composition, int(self.atoms))

    def stages(self) -> list[Stage]:
        """The LAMMPS stages, in order."""
        dt = self.timestep
        ramp = (self.melt_temperature - self.final_temperature) / self.cooling_rate
        return [
            Stage("minimize", "prerelax", steps=int(self.prerelax_steps), fmax=0.1),
            Stage("velocity", "melt-velocities", t_start=self.melt_temperature),
            md_stage("npt", "melt", self.melt_time, self.melt_temperature, None, dt),
            md_stage("npt", "cool", ramp, self.melt_temperature, self.final_temperature, dt),
            md_stage("npt", "hold", self.final_time, self.final_temperature, None, dt),
        ]

    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        """Random start from `seed`, melt, cool, hold; density, energy and Hill moduli."""
        rng = np.random.default_rng(seed)
        symbols = [el for el, n in self.element_counts().items() for _ in range(n)]
        start = random_packing(symbols, float(self.start_density), self.min_distance, rng)
        run = run_stages(start, self.potential, self.stages(), self.md_settings(), seed)
        snapshot = run.atoms
        labels: dict[str, Any] = {"density": density(snapshot)}
        relaxed, notes = relaxed_labels(
            snapshot,
            self.potential,
            fmax=self.relax_fmax,
            elastic=self.elastic,
            elastic_delta=self.elastic_delta,
            elastic_steps=self.elastic_steps,
            moduli="hill",
        )
        labels.update(relaxed)
        labels["cooling_rate"] = float(self.cooling_rate)
        snapshot.info["workflow"] = {**run.record(), "n_atoms": len(snapshot), **notes}
        return snapshot, labels
