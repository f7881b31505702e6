"""Oxide-glass compositions for the MEG dataset: sampler, atom counts, melt temperature.

A composition is a dict oxide -> mole fraction (summing to 1). Glasses are built from
whole oxide formula units, so they are charge neutral for any cation charges that are
a common multiple of the formal ones (BMP uses 0.6 x formal): the oxygen count is fixed
by the cations (n_O = sum of formal cation charges / 2).

The sampler follows the MEG recipe of the AMDEN paper (docs/workflows.md, *Protocols*,
`meg`): one or two network formers (SiO2, P2O5) plus 1 to 4 modifiers from Al2O3, Li2O,
BeO, K2O, CaO, TiO2, BaO, ZnO, each modifier at most 40 mol%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

OXIDES: dict[str, dict[str, int]] = {
    "SiO2": {"Si": 1, "O": 2},
    "P2O5": {"P": 2, "O": 5},
    "Al2O3": {"Al": 2, "O": 3},
    "Li2O": {"Li": 2, "O": 1},
    "BeO": {"Be": 1, "O": 1},
    "K2O": {"K": 2, "O": 1},
    "CaO": {"Ca": 1, "O": 1},
    "TiO2": {"Ti": 1, "O": 2},
    "BaO": {"Ba": 1, "O": 1},
    "ZnO": {"Zn": 1, "O": 1},
}
"""Oxide formula -> atoms per formula unit."""

FORMERS: tuple[str, ...] = ("SiO2", "P2O5")
MODIFIERS: tuple[str, ...] = ("Al2O3", "Li2O", "BeO", "K2O", "CaO", "TiO2", "BaO", "ZnO")
MAX_REJECTIONS = 10_000  # draws of modifier fractions before the sampler gives up


def covered_oxides(elements: Iterable[str], oxides: Iterable[str]) -> tuple[str, ...]:
    """The oxides among `oxides` whose elements are all in `elements` (a potential's)."""
    have = set(elements)
    return tuple(ox for ox in oxides if ox in OXIDES and set(OXIDES[ox]) <= have)


def sample_composition(
    rng: np.random.Generator,
    *,
    formers: Sequence[str] = FORMERS,
    modifiers: Sequence[str] = MODIFIERS,
    max_modifiers: int = 4,
    max_modifier_fraction: float = 0.4,
    min_former_fraction: float = 0.3,
) -> dict[str, float]:
    """Draw one oxide-glass composition (mole fractions of oxides).

    1. The former set is drawn uniformly from the non-empty subsets of `formers`
       (SiO2 alone, P2O5 alone, or both).
    2. k modifiers, k uniform in 1..`max_modifiers`, are drawn without replacement.
    3. Their fractions are uniform in (0, `max_modifier_fraction`), redrawn until they
       sum to at most 1 - `min_former_fraction`.
    4. The rest goes to the formers, split uniformly at random when there are two.

    Args:
        rng: random generator.
        formers: network-former oxides (keys of OXIDES).
        modifiers: modifier oxides (keys of OXIDES); may be empty.
        max_modifiers: most modifiers in one glass.
        max_modifier_fraction: largest mole fraction of one modifier.
        min_former_fraction: smallest total mole fraction of the formers.

    Returns:
        dict oxide -> mole fraction, formers first, summing to 1.
    """
    check_oxides(formers, "formers")
    check_oxides(modifiers, "modifiers")
    if not formers:
        raise ValueError("at least one network former is needed")
    check_fraction_limits(max_modifier_fraction, min_former_fraction, max_modifiers)
    subsets = [
        [f for bit, f in enumerate(formers) if mask >> bit & 1]
        for mask in range(1, 2 ** len(formers))
    ]
    chosen_formers = subsets[int(rng.integers(len(subsets)))]
    most = min(max_modifiers, len(modifiers))
    k = int(rng.integers(1, most + 1)) if most else 0  # max_modifiers=0: formers alone
    chosen = [str(m) for m in rng.choice(list(modifiers), size=k, replace=False)] if k else []
    budget = 1.0 - min_former_fraction
    for _ in range(MAX_REJECTIONS):
        x = rng.uniform(0.0, max_modifier_fraction, size=k)
        if x.sum() <= budget:
            break
    else:  # pragma: no cover - only for budgets far below k * max_modifier_fraction / 2
        raise ValueError("could not draw modifier fractions within the former budget")
    former_total = 1.0 - float(x.sum())
    split = rng.dirichlet(np.ones(len(chosen_formers)))
    out = {f: former_total * float(s) for f, s in zip(chosen_formers, split, strict=True)}
    out.update({m: float(v) for m, v in zip(chosen, x, strict=True)})
    return out


def check_fraction_limits(
    max_modifier_fraction: float, min_former_fraction: float, max_modifiers: int
) -> None:
    """Raise ValueError for limits of `sample_composition` that no draw can meet."""
    for name, value in (
        ("max_modifier_fraction", max_modifier_fraction),
        ("min_former_fraction", min_former_fraction),
    ):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be a mole fraction in (0, 1], got {value}")
    if int(max_modifiers) != max_modifiers or max_modifiers < 0:
        raise ValueError(f"max_modifiers must be an integer >= 0, got {max_modifiers}")


def check_fractions(fractions: Mapping[str, float]) -> None:
    """Raise ValueError unless `fractions` names known oxides with finite, non-negative
    amounts and a positive sum."""
    check_oxides(fractions, "composition")
    values = [float(x) for x in fractions.values()]
    if not all(math.isfinite(x) and x >= 0 for x in values) or not sum(values) > 0:
        raise ValueError(
            f"mole fractions must be finite and >= 0 with a positive sum: {dict(fractions)}"
        )


def parse_composition(value: str | Mapping[str, float]) -> dict[str, float]:
    """A fixed composition from ``"SiO2:70,Li2O:30"`` (mole percent or fractions: the
    amounts are normalised to sum to 1) or a mapping oxide -> amount.

    Returns:
        dict oxide -> mole fraction, in the order given, summing to 1.

    Raises:
        ValueError: an entry without ``OXIDE:AMOUNT``, an amount that is not a number,
            an unknown or repeated oxide, a negative or non-finite amount, or no amount
            above zero.
    """
    if isinstance(value, str):
        pairs = []
        for part in (p.strip() for p in value.split(",")):
            oxide, sep, amount = part.partition(":")
            if not sep or not part:
                raise ValueError(
                    f"composition entry {part!r} is not OXIDE:AMOUNT (e.g. SiO2:70,Li2O:30)"
                )
            try:
                pairs.append((oxide.strip(), float(amount)))
            except ValueError:
                raise ValueError(
                    f"composition amount {amount!r} of {oxide} is not a number"
                ) from None
        names = [ox for ox, _ in pairs]
        check_oxides(names, "composition")
        value = dict(pairs)
    check_fractions(value)
    total = sum(float(x) for x in value.values())
    return {ox: float(x) / total for ox, x in value.items() if float(x) > 0}


def formula_units(fractions: Mapping[str, float], n_atoms: int) -> dict[str, int]:
    """Whole formula units of each oxide for about `n_atoms` atoms (at least 1 each).

    u_j = round(x_j n_atoms / sum_k x_k a_k), a_k = atoms per formula unit of oxide k.
    The amounts are normalised first (proportions, not necessarily summing to 1).
    """
    check_fractions(fractions)
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    total = sum(float(x) for x in fractions.values())
    atoms_per_mole = sum(float(x) / total * sum(OXIDES[ox].values()) for ox, x in fractions.items())
    scale = n_atoms / atoms_per_mole
    return {
        ox: max(1, int(round(float(x) / total * scale))) for ox, x in fractions.items() if x > 0
    }


def element_counts(units: Mapping[str, int]) -> dict[str, int]:
    """Atoms of each element in the given formula units (cations first, O last)."""
    counts: dict[str, int] = {}
    for ox, u in units.items():
        for el, m in OXIDES[ox].items():
            if el != "O":
                counts[el] = counts.get(el, 0) + m * int(u)
    counts["O"] = sum(OXIDES[ox]["O"] * int(u) for ox, u in units.items())
    return counts


def mole_fractions(units: Mapping[str, int]) -> dict[str, float]:
    """Mole fractions of oxides realised by whole formula units."""
    total = sum(units.values())
    return {ox: u / total for ox, u in units.items()}


def melt_temperature(
    fractions: Mapping[str, float],
    base: float = 2500.0,
    silica: float = 1500.0,
    alumina: float = 1000.0,
    step: float = 50.0,
) -> float:
    """Melt temperature (K) of a composition: T = base + silica x_SiO2 + alumina x_Al2O3.

    Silica- and alumina-rich melts are the most viscous and need the highest
    temperature to lose memory of the start within picoseconds; phosphate and
    modifier-rich melts are fluid at lower temperature. With the defaults pure SiO2
    melts at 4000 K, 70SiO2-30Li2O at 3550 K and any glass without SiO2 and Al2O3 at
    2500 K. The result is rounded to a multiple of `step`.
    """
    check_fractions(fractions)
    total = sum(float(x) for x in fractions.values())
    x_si = float(fractions.get("SiO2", 0.0)) / total
    x_al = float(fractions.get("Al2O3", 0.0)) / total
    t = base + silica * x_si + alumina * x_al
    return float(step * round(t / step))


def composition_label(fractions: Mapping[str, float]) -> str:
    """Compact text form, mole percent: "SiO2:62.5,Li2O:37.5"."""
    return ",".join(f"{ox}:{100 * float(x):.4g}" for ox, x in fractions.items())


def check_oxides(oxides: Iterable[str], what: str) -> None:
    """Raise ValueError naming any of `oxides` that is not a key of OXIDES, that is named
    twice, or (`what` "formers" / "modifiers") that belongs to the other group."""
    oxides = list(oxides)
    unknown = [ox for ox in oxides if ox not in OXIDES]
    if unknown:
        raise ValueError(f"unknown oxide(s) in {what}: {unknown} (known: {', '.join(OXIDES)})")
    repeated = sorted({ox for ox in oxides if oxides.count(ox) > 1})
    if repeated:
        raise ValueError(f"{what} name {', '.join(repeated)} more than once")
    allowed = {"formers": FORMERS, "modifiers": MODIFIERS}.get(what)
    misplaced = [ox for ox in oxides if allowed is not None and ox not in allowed]
    if misplaced:
        raise ValueError(
            f"{', '.join(misplaced)} cannot be among the {what} (the {what}: {', '.join(allowed)})"
        )
