"""Property keys of amtoolkit datasets and their units.

The same keys name a property in `atoms.info` of extxyz frames, in the AMDEN JSON
property files, in the HDF5 store (``properties/<name>``) and in model conditioning.
Other names are allowed; these are the ones the project documents and uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660
"""Mass density: 1 amu/Å^3 in g/cm^3."""

PROPERTY_UNITS: dict[str, str] = {
    "relaxed_energy": "eV/atom",  # potential energy per atom after relaxation
    "density": "g/cm3",  # mass density of the real (non-ghost) atoms
    "shear_modulus": "GPa",  # isotropic G = C44 of the relaxed-ion elastic tensor
    "bulk_modulus": "GPa",  # isotropic K = (C11 + 2 C12) / 3
    "youngs_modulus": "GPa",  # isotropic E
    "poisson_ratio": "1",  # dimensionless, nu = E / (2 G) - 1
    "ring_size": "1",  # mean shortest-path ring size (Si atoms per ring for SiO2)
    "li_fraction": "1",  # atom fraction of Li among all atoms
    "cooling_rate": "K/ps",  # melt-quench cooling rate
}
"""Documented property keys -> unit string ("1" = dimensionless)."""

PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "density": (0.0, 30.0),  # osmium, the densest element: 22.6 g/cm3
    "shear_modulus": (0.0, 1000.0),  # diamond, the stiffest solid: G 535, B 443, E 1220 GPa
    "bulk_modulus": (0.0, 1000.0),
    "youngs_modulus": (0.0, 2000.0),
    "poisson_ratio": (-1.0, 0.5),
    "ring_size": (3.0, math.inf),  # the one closed end: 3-rings exist
    "li_fraction": (0.0, 1.0),
    "cooling_rate": (0.0, math.inf),
}
"""Open ranges no material leaves (moduli > 0 and below diamond's twice over, -1 < nu <
0.5, rings of 3 or more atoms): a design target outside one is refused (a modulus in Pa,
36e9, instead of GPa)."""


def check_physical(name: str, value: float) -> None:
    """Raise ValueError when `value` of property `name` lies outside `PHYSICAL_RANGES`."""
    low, high = PHYSICAL_RANGES.get(name, (-math.inf, math.inf))
    closed = name == "ring_size"
    if not ((low <= value if closed else low < value) and value < high):
        bound = f"{'>=' if closed else '>'} {low:g}"
        span = bound if high == math.inf else f"in ({low:g}, {high:g})"
        span += unit_suffix(name)
        raise ValueError(f"target {name}={value:g} is not physical: it must be {span}")


PLAUSIBLE_LABELS: dict[str, tuple[float, float]] = {
    "shear_modulus": (0.0, 1000.0),
    "bulk_modulus": (0.0, 1000.0),
    "youngs_modulus": (0.0, 2000.0),
    "poisson_ratio": (-1.0, 0.5),
    "density": (0.5, 10.0),
    "cooling_rate": (0.0, 1.0e6),  # K/ps; a rate in K/s is 1e12 times larger
}
"""Open ranges (GPa, g/cm^3) outside which a label says the sample went wrong (a gas, a
cell too small to be a material, a broken elastic fit)."""


def implausible_labels(labels: dict[str, float]) -> list[str]:
    """The labels of one sample that are non-finite or outside `PLAUSIBLE_LABELS`, as
    ``"name value"`` strings (empty when all are plausible)."""
    odd = []
    for name, value in labels.items():
        low, high = PLAUSIBLE_LABELS.get(name, (-math.inf, math.inf))
        if not (math.isfinite(value) and low < value < high):
            odd.append(f"{name} {value:.4g}")
    return odd


TARGET_PREFIX = "target_"
"""``atoms.info["target_<property>"]``: the design target a structure was generated for."""


ELASTIC_LABEL_NAMES = ("shear_modulus", "bulk_modulus", "youngs_modulus", "poisson_ratio")
"""The labels an elastic fit gives."""

ELASTIC_LABEL_MODULI = {"glass": "hill", "a-sio2": "cubic", "meg": "cubic"}
"""Melt-quench protocol -> which averages of the fitted stiffness tensor its elastic
labels are: "hill" (Voigt-Reuss-Hill) or "cubic" (G = C44, K = (C11 + 2 C12)/3)."""


def elastic_label_setting(provenance: Mapping[str, Any]) -> dict[str, Any] | None:
    """How the elastic labels of a `make_dataset` dataset were measured, from its
    provenance: ``{"moduli": "hill" | "cubic", "fmax": eV/Å, "n_steps": strains per
    pattern, "delta": strain step}`` (``delta`` where recorded); None when the provenance
    does not say (another source, no elastic labels) or, for a merged set, when its parts
    differ.
    """
    parts = provenance.get("parts")
    if isinstance(parts, list) and parts:  # a merged set: its parts must agree
        settings = [
            elastic_label_setting(part.get("provenance") or {})
            if isinstance(part, Mapping)
            else None
            for part in parts
        ]
        same = all(setting == settings[0] for setting in settings)
        return settings[0] if same else None
    parameters = provenance.get("parameters") or {}
    moduli = ELASTIC_LABEL_MODULI.get(str(provenance.get("protocol")))
    if moduli is None or parameters.get("elastic", True) is False:
        return None
    fmax, steps = parameters.get("relax_fmax"), parameters.get("elastic_steps")
    if fmax is None or steps is None:
        return None
    setting = {"moduli": moduli, "fmax": float(fmax), "n_steps": int(steps)}
    if parameters.get("elastic_delta") is not None:
        setting["delta"] = float(parameters["elastic_delta"])
    return setting


def unit_of(name: str) -> str | None:
    """Return the documented unit of property `name`, or None for an undocumented key."""
    return PROPERTY_UNITS.get(name)


def unit_suffix(name: str) -> str:
    """``" GPa"``-style text to put after a value of property `name` ("" when it has no
    unit or an undocumented one)."""
    unit = unit_of(name)
    return f" {unit}" if unit not in (None, "1") else ""


def label_of(name: str) -> str:
    """`name` with its documented unit, ``"shear_modulus (GPa)"`` (dimensionless and
    undocumented keys as they are)."""
    unit = unit_of(name)
    return f"{name} ({unit})" if unit and unit != "1" else name
