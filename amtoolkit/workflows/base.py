"""What every melt-quench protocol shares: option handling and the labelling helpers.

A protocol is a frozen dataclass holding every parameter of the recipe (durations,
temperatures, sizes, label settings) with a `run_sample(index, seed)` method that
builds one structure and its labels from nothing but those parameters and the seed.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import warnings
from typing import Any, ClassVar, TypeVar

from ase import Atoms

from amtoolkit.workflows.lammps_md import MDSettings

P = TypeVar("P", bound="MeltQuenchProtocol")


@dataclasses.dataclass(frozen=True)
class MeltQuenchProtocol(abc.ABC):
    """Base of the protocol dataclasses (`ASiProtocol`, `ASiO2Protocol`, `MEGProtocol`).

    Subclasses set the class attributes `name` (registry key) and `potential`
    (`amtoolkit.potentials` name), declare their parameters as dataclass fields,
    validate them in ``__post_init__`` and implement `run_sample`.
    """

    name: ClassVar[str] = ""
    potential: ClassVar[str] = ""
    labels: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        """Make sample `index` from `seed`: the stored structure and its labels.

        The result depends only on the protocol's parameters and `seed` (`index` is
        informational). Run metadata (thermo summary per stage, LAMMPS version, ...)
        is returned in ``atoms.info["workflow"]`` (a JSON-ready dict).
        """

    @classmethod
    def full(cls: type[P]) -> P:
        """The protocol with the paper's settings (the defaults unless overridden)."""
        return cls()

    @classmethod
    def from_options(cls: type[P], full: bool = False, **options: Any) -> P:
        """Defaults (or `full()`) with `options` replacing same-named parameters.

        Raises:
            ValueError: for an unknown option (listing the allowed ones) or a bad value.
        """
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for protocol {cls.name!r} "
                f"(allowed: {', '.join(allowed)})"
            )
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in options.items():  # 5 -> 5.0 for float parameters (stable provenance)
            default = defaults[key]
            if (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                options[key] = float(value)
        try:  # without `full`, made once from the options (a protocol may need some given)
            return dataclasses.replace(cls.full(), **options) if full else cls(**options)
        except TypeError as err:  # wrong value types surface as TypeError in comparisons
            raise ValueError(f"protocol {cls.name!r}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-ready dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def md_settings(self) -> MDSettings:
        """Integrator settings from the `timestep`, `tdamp`, `pdamp`, `pressure` fields."""
        return MDSettings(
            timestep=float(getattr(self, "timestep", 1.0)),
            tdamp=float(getattr(self, "tdamp", 0.1)),
            pdamp=float(getattr(self, "pdamp", 1.0)),
            pressure=float(getattr(self, "pressure", 0.0)),
            thermo_every=int(getattr(self, "thermo_every", 100)),
        )


def check_integers(obj: object) -> None:
    """Raise ValueError naming the first field of dataclass `obj` declared ``int`` whose
    value is not an integer (``--set atoms=8.5`` must not become 8 atoms)."""
    for field in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, field.name)
        if field.type in (int, "int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{field.name} must be an integer, got {value!r}")


def check_positive(obj: object, *names: str) -> None:
    """Raise ValueError naming the first of `names` whose value on `obj` is not > 0."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_non_negative(obj: object, *names: str) -> None:
    """Raise ValueError naming the first of `names` whose value on `obj` is not >= 0."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_range(obj: object, name: str, low: float, high: float, why: str) -> None:
    """Raise ValueError naming option `name` of `obj` when it lies outside [low, high]
    (`why`: what breaks beyond the range, for the message)."""
    value = getattr(obj, name)
    if not low <= value <= high:
        raise ValueError(f"{name}={value:g} is outside [{low:g}, {high:g}]: {why}")


PRESSURE_RANGE = (-20.0, 100.0)
"""NPT target pressures a protocol takes, GPa: a value in bar (1e5 for 10 GPa) would
squeeze a-Si to 19 g/cm3 and run to the end without an error."""


def check_pressure(obj: object) -> None:
    """Raise ValueError when the ``pressure`` option of `obj` lies outside `PRESSURE_RANGE`."""
    check_range(
        obj,
        "pressure",
        *PRESSURE_RANGE,
        "pressure is in GPa (1 bar = 1e-4 GPa); beyond this range the potentials describe no glass",
    )


MAX_COOLING_RATE = 1.0e6
"""Fastest cooling ramp a protocol takes, K/ps (MD quenches run at 0.01-1000 K/ps, quick
tests faster; a rate in K/s, 1e13 for 10 K/ps, makes the ramp shorter than one step: an
instant quench labelled with a rate it never had)."""


def check_cooling_rate(obj: object) -> None:
    """Raise ValueError when the ``cooling_rate`` of `obj` exceeds `MAX_COOLING_RATE`."""
    check_range(
        obj, "cooling_rate", 0.0, MAX_COOLING_RATE, "the rate is in K/ps (1e13 K/s = 10 K/ps)"
    )


def warn_below(obj: object, name: str, floor: float, why: str) -> None:
    """Warn (the run goes on) when option `name` of `obj` is below `floor`."""
    value = getattr(obj, name)
    if value is not None and value < floor:
        warnings.warn(f"{name}={value:g} is below {floor:g}: {why}", UserWarning, stacklevel=3)


ELASTIC_DELTA_MAX = 0.05
"""Largest strain increment of the elastic fits: beyond a few percent strain the
stress-strain response of a glass is no longer linear (a 0.5 step gave nu = -0.92)."""

RING_MAXLENGTH_MIN = 3
"""The smallest ring a ring search can find."""


def relaxed_labels(
    atoms: Atoms,
    potential: str,
    *,
    fmax: float,
    elastic: bool = False,
    elastic_delta: float = 0.005,
    elastic_steps: int = 5,
    elastic_fmax: float | None = None,
    moduli: str = "cubic",
) -> tuple[dict[str, float], dict[str, Any]]:
    """Labels measured after relaxing positions and cell at zero pressure.

    ``relaxed_energy`` is measured after the relaxation to `fmax` whether or not the
    elastic labels are asked for; a tighter `elastic_fmax` relaxes further from there
    for the elastic fit only.

    Args:
        atoms: the stored snapshot (not modified).
        potential: registry name of the classical potential.
        fmax: force criterion of the relaxations (eV/Å).
        elastic: also fit the relaxed-ion elastic tensor (`amtoolkit.analysis.elastic`).
        elastic_delta: strain increment of the elastic fit.
        elastic_steps: strains per strain pattern of the elastic fit.
        elastic_fmax: force criterion of the elastic fit and of its relaxation (default
            `fmax`).
        moduli: "cubic" (the cubic averages of the fitted tensor, G = C44: the a-sio2 and
            meg labels) or "hill" (Voigt-Reuss-Hill averages, consistent for any
            anisotropy).

    Returns:
        (labels, notes): labels ``relaxed_energy`` (eV/atom), and with `elastic`
        ``shear_modulus``, ``bulk_modulus``, ``youngs_modulus`` (GPa) and
        ``poisson_ratio``; notes (JSON-ready) count the relaxations that stopped at
        their step limit above `fmax` (``unconverged_relaxations``; their warnings are
        not printed) and give the elastic fit residual (GPa).
    """
    from amtoolkit.analysis.elastic import elastic as elastic_fit
    from amtoolkit.analysis.energy import energy, relax_structure
    from amtoolkit.potentials import get_calculator

    if moduli not in ("cubic", "hill"):
        raise ValueError(f"moduli must be 'cubic' or 'hill', got {moduli!r}")
    calc = get_calculator(potential)
    notes: dict[str, Any] = {}
    out: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            relaxed = relax_structure(atoms, calc, fmax=fmax, cell=True)
            out["relaxed_energy"] = float(energy(relaxed, calc, relax=False).energy_per_atom[0])
            if elastic:
                tight = fmax if elastic_fmax is None else elastic_fmax
                if tight < fmax:
                    relaxed = relax_structure(relaxed, calc, fmax=tight, cell=True)
                result = elastic_fit(
                    relaxed,
                    calc,
                    relax=False,
                    delta=elastic_delta,
                    fmax=tight,
                    n_steps=elastic_steps,
                )
                hill = result.hill if moduli == "hill" else None
                for key in ("shear_modulus", "bulk_modulus", "youngs_modulus", "poisson_ratio"):
                    values = hill[key] if hill is not None else getattr(result, key)
                    out[key] = float(values[0])
                notes["elastic_residual"] = float(result.residual[0])
                if result.unstable[0]:  # warned too; the labels are kept, flagged here
                    notes["elastic_unstable"] = True
        finally:
            calc.close()
    unconverged = [w for w in caught if "did not reach fmax" in str(w.message)]
    unstable = [w for w in caught if "stiffness matrix has a negative eigenvalue" in str(w.message)]
    for w in caught:  # pass on any other warning (the unstable fit is in `notes`)
        if w not in unconverged and w not in unstable:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    notes["unconverged_relaxations"] = len(unconverged)
    return out, notes
