"""Multicomponent oxide glasses (MEG) with the BMP-shrm potential.

Recipe (the AMDEN MEG set; docs/workflows.md, *Protocols*, `meg`): a composition drawn by
`amtoolkit.workflows.composition.sample_composition` (SiO2 and/or P2O5 formers plus
1-4 modifiers from Al2O3, Li2O, BeO, K2O, CaO, TiO2, BaO, ZnO, each <= 40 mol%),
turned into whole oxide formula units for about `atoms` atoms (charge neutral); a
random start at `start_density` no closer than `min_distance`; a short minimisation;
NPT melt for `melt_time` at the composition's melt temperature
(`composition.melt_temperature`: 2500 K + 1500 K x_SiO2 + 1000 K x_Al2O3, rounded to
50 K); linear cooling at `cooling_rate` to `final_temperature`; `final_time` at that
temperature; 2 fs steps throughout.

The defaults are a small version for a 2-core machine (200 atoms, 5 ps melt, 100 K/ps,
2 ps at 300 K, 3 strains per elastic strain pattern); `MEGProtocol.full()` (``--full``
on the command line) is the paper's: 800 atoms, 20 ps melt, 5 K/ps, 10 ps at 300 K,
5 strains per pattern.

Labels: ``youngs_modulus`` (E), ``shear_modulus`` (G), ``bulk_modulus`` (K),
``poisson_ratio`` (GPa / 1; relaxed-ion stress-strain fit after relaxing positions and
cell), ``li_fraction`` (atom fraction of Li), ``relaxed_energy`` (eV/atom) and
``density`` (g/cm^3 of the stored snapshot). The drawn composition (mole fractions)
and melt temperature go to the per-sample provenance.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import numpy as np
from ase import Atoms

from amtoolkit.analysis.energy import density
from amtoolkit.potentials.registry import get_spec
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
)
from amtoolkit.workflows.composition import (
    FORMERS,
    MODIFIERS,
    check_fraction_limits,
    check_oxides,
    composition_label,
    covered_oxides,
    element_counts,
    formula_units,
    melt_temperature,
    mole_fractions,
    parse_composition,
    sample_composition,
)
from amtoolkit.workflows.lammps_md import Stage, md_stage, run_stages
from amtoolkit.workflows.structures import random_packing

POTENTIAL = "bmp-glass"

SAMPLER_OPTIONS = (
    "formers",
    "modifiers",
    "max_modifiers",
    "max_modifier_fraction",
    "min_former_fraction",
)
"""The options that shape drawn compositions (none apply beside a fixed `composition`)."""

COMPOSITION_TOL = 0.01
"""Mole fraction by which whole formula units may miss a fixed composition before the
protocol warns (30 mol% Li2O in about 20 atoms: 28.6 %)."""


@dataclasses.dataclass(frozen=True)
class MEGProtocol(MeltQuenchProtocol):
    """Oxide-glass melt-quench with the BMP-shrm potential ("bmp-glass").

    Attributes:
        atoms: target number of atoms (whole formula units: the count is approximate).
        composition: one fixed composition for every sample, ``"SiO2:70,Li2O:30"``
            (mole percent or fractions, normalised; a mapping from JSON works too), kept
            in the canonical mole-percent form; None draws a composition per sample
            from the options below.
        formers: network-former oxides the sampler draws from.
        modifiers: modifier oxides the sampler draws from.
        max_modifiers: most modifiers per glass.
        max_modifier_fraction: largest mole fraction of one modifier.
        min_former_fraction: smallest total mole fraction of the formers.
        start_density: density of the random start (g/cm^3).
        min_distance: smallest interatomic distance of the random start (Å).
        prerelax_steps: iterations of the minimisation of the random start.
        melt_base_temperature: melt temperature without SiO2 and Al2O3 (K).
        melt_silica_increment: added per unit mole fraction of SiO2 (K).
        melt_alumina_increment: added per unit mole fraction of Al2O3 (K).
        melt_time: melt duration (ps).
        cooling_rate: linear cooling rate from the melt to `final_temperature` (K/ps).
        final_temperature: end temperature (K).
        final_time: time at `final_temperature` (ps).
        timestep: MD time step (fs).
        tdamp: thermostat damping time (ps).
        pdamp: barostat damping time (ps).
        pressure: NPT target pressure (GPa).
        relax_fmax: force criterion of the label relaxations (eV/Å).
        elastic_delta: strain increment of the elastic fit.
        elastic_steps: strains per strain pattern of the elastic fit.
        thermo_every: thermo output interval (steps).
    """

    name: ClassVar[str] = "meg"
    potential: ClassVar[str] = POTENTIAL
    labels: ClassVar[tuple[str, ...]] = (
        "youngs_modulus",
        "shear_modulus",
        "bulk_modulus",
        "poisson_ratio",
        "li_fraction",
        "relaxed_energy",
        "density",
    )

    atoms: int = 200
    composition: str | None = None
    formers: tuple[str, ...] = FORMERS
    modifiers: tuple[str, ...] = MODIFIERS
    max_modifiers: int = 4
    max_modifier_fraction: float = 0.4
    min_former_fraction: float = 0.3
    start_density: float = 2.5
    min_distance: float = 1.6
    prerelax_steps: int = 200
    melt_base_temperature: float = 2500.0
    melt_silica_increment: float = 1500.0
    melt_alumina_increment: float = 1000.0
    melt_time: float = 5.0
    cooling_rate: float = 100.0
    final_temperature: float = 300.0
    final_time: float = 2.0
    timestep: float = 2.0
    tdamp: float = 0.1
    pdamp: float = 1.0
    pressure: float = 0.0
    relax_fmax: float = 1.0e-3
    elastic_delta: float = 0.005
    elastic_steps: int = 3
    thermo_every: int = 100

    @classmethod
    def full(cls) -> MEGProtocol:
        """The paper's protocol: 800 atoms, 20 ps melt, 5 K/ps, 10 ps at 300 K (5 strains
        per elastic strain pattern instead of 3)."""
        return cls(atoms=800, melt_time=20.0, cooling_rate=5.0, final_time=10.0, elastic_steps=5)

    def __post_init__(self) -> None:
        check_integers(self)
        check_pressure(self)
        # lists from JSON, or one comma-separated string from the command line
        # (--set modifiers=CaO,Li2O); tuples keep the dataclass hashable
        for name in ("formers", "modifiers"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            object.__setattr__(self, name, tuple(value))
        check_positive(
            self,
            "atoms",
            "max_modifier_fraction",
            "min_former_fraction",
            "start_density",
            "melt_base_temperature",
            "cooling_rate",
            "final_temperature",
            "timestep",
            "tdamp",
            "pdamp",
            "relax_fmax",
            "elastic_delta",
            "elastic_steps",
            "thermo_every",
        )
        check_non_negative(
            self,
            "max_modifiers",
            "min_distance",
            "prerelax_steps",
            "melt_silica_increment",
            "melt_alumina_increment",
            "melt_time",
            "final_time",
        )
        check_oxides(self.formers, "formers")
        check_oxides(self.modifiers, "modifiers")
        check_fraction_limits(
            self.max_modifier_fraction, self.min_former_fraction, self.max_modifiers
        )
        named = (*self.formers, *self.modifiers)
        if self.composition is not None:
            named = tuple(self._fixed_composition())
        covered = covered_oxides(get_spec(POTENTIAL).elements, named)
        missing = [ox for ox in named if ox not in covered]
        if missing:
            raise ValueError(f"oxide(s) {missing} are not covered by potential {POTENTIAL!r}")
        if not self.formers:
            raise ValueError("formers must name at least one network former")
        if self.final_temperature >= self.melt_base_temperature:
            raise ValueError("final_temperature must be below melt_base_temperature")
        check_range(
            self,
            "start_density",
            1.0,
            6.0,
            "oxide glasses lie near 2-4 g/cm3; far outside "
            "this range the start is a gas or cannot be packed",
        )
        check_range(
            self, "elastic_delta", 0.0, ELASTIC_DELTA_MAX, "the elastic fit needs small strains"
        )
        # the integrator settings and stages, once: a time step, stage length or temperature
        # past `lammps_md`'s bounds is refused now, not in a worker
        self.md_settings()
        check_cooling_rate(self)
        hottest = self.melt_base_temperature + max(
            self.melt_silica_increment, self.melt_alumina_increment
        )
        self.stages(hottest)

    def _fixed_composition(self) -> dict[str, float]:
        """Check and normalise the `composition` option (kept as ``"SiO2:70,Li2O:30"``),
        refuse sampler options beside it, warn when whole formula units for `atoms`
        atoms miss it by more than `COMPOSITION_TOL`; return its mole fractions."""
        fractions = parse_composition(self.composition)
        object.__setattr__(self, "composition", composition_label(fractions))
        sampler_options = ("formers", "modifiers", "max_modifiers", "max_modifier_fraction")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        given = [
            n for n in (*sampler_options, "min_former_fraction") if getattr(self, n) != defaults[n]
        ]
        if given:
            raise ValueError(
                f"composition={self.composition} fixes the glass, and {', '.join(given)} "
                "apply to drawn compositions only: give one or the other"
            )
        realised = mole_fractions(formula_units(fractions, int(self.atoms)))
        if max(abs(realised.get(ox, 0.0) - x) for ox, x in fractions.items()) > COMPOSITION_TOL:
            warnings.warn(
                f"composition {self.composition} in whole formula units of about "
                f"{self.atoms} atoms is {composition_label(realised)} (mol%); more atoms "
                "come nearer",
                UserWarning,
                stacklevel=4,
            )
        return fractions

    def sample_fractions(self, rng: np.random.Generator) -> dict[str, float]:
        """The mole fractions of one sample: the fixed `composition`, or a draw."""
        if self.composition is not None:
            return parse_composition(self.composition)
        return sample_composition(
            rng,
            formers=self.formers,
            modifiers=self.modifiers,
            max_modifiers=self.max_modifiers,
            max_modifier_fraction=self.max_modifier_fraction,
            min_former_fraction=self.min_former_fraction,
        )

    def composition_units(self, rng: np.random.Generator) -> dict[str, int]:
        """Whole formula units per oxide of one sample (`sample_fractions`)."""
        return formula_units(self.sample_fractions(rng), int(self.atoms))

    def melt_temperature(self, units: dict[str, int]) -> float:
        """The melt temperature rule (K) applied to realised mole fractions."""
        return melt_temperature(
            mole_fractions(units),
            base=self.melt_base_temperature,
            silica=self.melt_silica_increment,
            alumina=self.melt_alumina_increment,
        )

    def stages(self, t_melt: float) -> list[Stage]:
        """The LAMMPS stages for melt temperature `t_melt`, in order."""
        dt = self.timestep
        ramp = (t_melt - self.final_temperature) / self.cooling_rate
        return [
            Stage("minimize", "prerelax", steps=int(self.prerelax_steps), fmax=0.1),
            Stage("velocity", "melt-velocities", t_start=t_melt),
            md_stage("npt", "melt", self.melt_time, t_melt, None, dt),
            md_stage("npt", "quench", ramp, t_melt, self.final_temperature, dt),
            md_stage("npt", "hold", self.final_time, self.final_temperature, None, dt),
        ]

    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        """Composition and random start from `seed`, melt-quench, elastic labels."""
        rng = np.random.default_rng(seed)
        units = self.composition_units(rng)
        counts = element_counts(units)
        symbols = [el for el, n in counts.items() for _ in range(n)]
        t_melt = self.melt_temperature(units)
        start = random_packing(symbols, self.start_density, self.min_distance, rng)
        run = run_stages(start, self.potential, self.stages(t_melt), self.md_settings(), seed)
        snapshot = run.atoms
        labels = {
            "density": density(snapshot),
            "li_fraction": counts.get("Li", 0) / len(snapshot),
        }
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
            "composition": mole_fractions(units),
            "formula_units": units,
            "melt_temperature": t_melt,
            **run.record(),
            "n_atoms": len(snapshot),
            **notes,
        }
        return snapshot, labels
