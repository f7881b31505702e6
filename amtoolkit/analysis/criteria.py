"""Pass/fail tests of one structure, for keeping or redoing generated structures.

A criterion is a callable ``criterion(atoms) -> bool`` with a readable ``str``; the
ones here measure with the analyses of this package (covalent bond rule, periodic
images included). `Generator.generate(accept=...)` re-noises the structures a criterion
fails and denoises them again (``amtool generate --accept "bridging>=0.9"``, parsed by
`parse_criterion`)::

    from amtoolkit.analysis.criteria import BridgingFraction, ClosestPair

    gen.generate(8, shear=40, accept=BridgingFraction(0.9))
    gen.generate(8, accept=lambda atoms: ClosestPair(2.1)(atoms) and len(atoms) > 200)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._options import _is_real, integer

__all__ = [
    "AllOf",
    "BridgingFraction",
    "ClosestPair",
    "Coordinated",
    "Criterion",
    "describe",
    "parse_criterion",
    "unmeetable",
]

Criterion = Callable[[Atoms], bool]
"""``criterion(atoms) -> bool``: True keeps the structure."""


@dataclasses.dataclass(frozen=True)
class ClosestPair:
    """No two atoms nearer than `minimum` Å (periodic images included)."""

    minimum: float

    def __post_init__(self) -> None:
        _check_positive("closest", self.minimum)

    def __call__(self, atoms: Atoms) -> bool:
        from amtoolkit.analysis.compare import closest_pair

        return len(atoms) < 2 or closest_pair(atoms, cutoff=self.minimum) >= self.minimum

    def __str__(self) -> str:
        return f"closest>={self.minimum:g}"


@dataclasses.dataclass(frozen=True)
class BridgingFraction:
    """At least `minimum` of the anions bridge two network formers (oxides;
    `analysis.network`: bonded to exactly two formers by the covalent rule)."""

    minimum: float
    anion: str = "O"

    def __post_init__(self) -> None:
        _check_fraction("bridging", self.minimum)
        if self.anion not in atomic_numbers:
            raise ValueError(f"bridging: unknown anion element {self.anion!r}")

    def __call__(self, atoms: Atoms) -> bool:
        from amtoolkit.analysis.network import network, network_formers

        symbols = set(atoms.get_chemical_symbols())
        if self.anion not in symbols or not network_formers(sorted(symbols)):
            return False  # no anion or no former: nothing bridges
        result = network(atoms, anion=self.anion)
        return result.anion_types.get("bridging", 0.0) >= self.minimum

    def __str__(self) -> str:
        anion = "" if self.anion == "O" else f"[{self.anion}]"
        return f"bridging{anion}>={self.minimum:g}"


@dataclasses.dataclass(frozen=True)
class Coordinated:
    """At least `minimum` of the `element` atoms have exactly `n` bonded neighbours
    (covalent rule: d < 1.3 (r_cov,i + r_cov,j); any element pair)."""

    element: str
    n: int
    minimum: float

    def __post_init__(self) -> None:
        if self.element not in atomic_numbers or self.element == "X":
            raise ValueError(f"coordination: unknown element {self.element!r}")
        integer("coordination: n", self.n, 0)
        _check_fraction(f"{self.element}{self.n}", self.minimum)

    def __call__(self, atoms: Atoms) -> bool:
        from amtoolkit.analysis.coordination import coordination_numbers

        mine = atoms.numbers == atomic_numbers[self.element]
        if not mine.any():
            return False
        cn = coordination_numbers(atoms, None)[mine]
        return float(np.mean(cn == self.n)) >= self.minimum

    def __str__(self) -> str:
        return f"{self.element}{self.n}>={self.minimum:g}"


@dataclasses.dataclass(frozen=True)
class AllOf:
    """Every one of `criteria` holds (checked in order; the first failure stops)."""

    criteria: tuple[Criterion, ...]

    def __call__(self, atoms: Atoms) -> bool:
        return all(criterion(atoms) for criterion in self.criteria)

    def __str__(self) -> str:  # sorted: the order of the tests does not change the test
        return ",".join(sorted(describe(criterion) for criterion in self.criteria))


def unmeetable(criterion: Criterion, elements: Sequence[str]) -> str | None:
    """Why `criterion` can pass no structure made of `elements` (an element it counts is
    not among them), or None: a test no model sample can pass is refused up front."""
    if isinstance(criterion, AllOf):
        reasons = (unmeetable(c, elements) for c in criterion.criteria)
        return next((r for r in reasons if r is not None), None)
    if isinstance(criterion, Coordinated) and criterion.element not in elements:
        return f"{criterion} counts {criterion.element} atoms"
    if isinstance(criterion, BridgingFraction):
        from amtoolkit.analysis.network import network_formers

        if criterion.anion not in elements or not network_formers(list(elements)):
            return f"{criterion} needs {criterion.anion} and a network former (B, Si, P, Ge, As)"
    return None


def describe(criterion: Criterion) -> str:
    """A criterion as recorded in ``atoms.info["accept"]``: its ``str`` for the criteria
    of this module, else its qualified name (e.g. ``"my_test"``, ``"<lambda>"``)."""
    if isinstance(criterion, (ClosestPair, BridgingFraction, Coordinated, AllOf)):
        return str(criterion)
    return getattr(criterion, "__qualname__", None) or type(criterion).__name__


_FORM = re.compile(r"^\s*([A-Za-z]+)(\d*)\s*>=\s*([-+0-9.eE]+)\s*$")
FORMS = "closest>=D (Å), bridging>=F (fraction of O), or e.g. Si4>=F (fraction of Si with 4 bonds)"


def parse_criterion(text: str | Sequence[str]) -> Criterion:
    """A criterion from text: ``closest>=2.1`` (`ClosestPair`, Å), ``bridging>=0.9``
    (`BridgingFraction`), ``Si4>=0.95`` (`Coordinated`: element, bond count); several,
    joined by commas or given as a sequence, must all hold (`AllOf`).

    Raises:
        ValueError: text of no known form, naming the forms.
    """
    parts = [text] if isinstance(text, str) else list(text)
    pieces = [p for part in parts for p in part.split(",") if p.strip()]
    if not pieces:
        raise ValueError(f"no criterion given; use {FORMS}")
    criteria = [_one(piece) for piece in pieces]
    return criteria[0] if len(criteria) == 1 else AllOf(tuple(criteria))


def _one(text: str) -> Criterion:
    match = _FORM.match(text)
    if match is None:
        hint = ""
        if ">" not in text and re.fullmatch(r"\s*[A-Za-z]+\d*\s*", text):
            hint = (
                " (on a command line quote the test, --accept 'bridging>=0.9': the shell "
                "reads > as a redirection)"
            )
        raise ValueError(f"criterion {text.strip()!r}: use {FORMS}{hint}")
    name, count, number = match.groups()
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"criterion {text.strip()!r}: {number!r} is not a number") from None
    if name == "closest" and not count:
        return ClosestPair(value)
    if name == "bridging" and not count:
        return BridgingFraction(value)
    if count and name in atomic_numbers:
        return Coordinated(name, int(count), value)
    raise ValueError(f"criterion {text.strip()!r}: use {FORMS}")


def _check_fraction(name: str, value: float) -> None:
    if not (_is_real(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}>={_shown(value)}: the fraction must lie in [0, 1]")


def _check_positive(name: str, value: float) -> None:
    if not (_is_real(value) and 0.0 < value < np.inf):
        raise ValueError(f"{name}>={_shown(value)}: the distance must be a positive number of Å")


def _shown(value: object) -> str:
    return f"{value:g}" if _is_real(value) else repr(value)
