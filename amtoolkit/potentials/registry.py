"""Named classical potentials: what each covers, where it comes from, how LAMMPS sets it up.

`POTENTIALS` maps a name to a `PotentialSpec`. A spec turns the list of elements
present in a structure (LAMMPS atom type i+1 = `species[i]`) and the user's options
into the LAMMPS commands that define the interaction (`pair_style`, `pair_coeff`,
charges). Elements are mapped by what is actually present, so an Si-only cell under
`tersoff-sio2` uses only the Si-Si-Si entries of the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from amtoolkit.errors import CoverageError
from amtoolkit.potentials import bmp
from amtoolkit.potentials._lammps import potentials_dir
from amtoolkit.potentials.files import is_potential_file, load_potential

CommandBuilder = Callable[[Sequence[str], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class PotentialSpec:
    """A named potential.

    Attributes:
        name: registry key, e.g. "sw-si".
        elements: element symbols the potential has parameters for.
        reference: the paper the parameters come from.
        description: one line for listings.
        atom_style: LAMMPS atom style, "atomic" or "charge".
        options: option name -> default value accepted by `get_calculator(name, **options)`.
        commands: (species, options) -> LAMMPS commands defining the interaction.
        cutoff: the longest interaction range in Å (for information).
        charges: element -> fixed charge (e) of a charged potential, empty otherwise;
            a cell whose charges do not sum to zero gets a warning.
        elastic_options: defaults of `Analyzer.elastic` with this potential (``fmax``,
            ``n_steps``): the settings of the elastic labels of the datasets made with
            it, so that a structure measured with the defaults is measured as its
            training labels were (relaxed-ion moduli depend on the relaxation
            tolerance; docs/workflows.md).
        smooth: energy and forces are continuous; False for a potential with a sharp
            cutoff (BMP's three-body term at 3.3 Å), where finite-difference Hessians and
            the harmonic elastic route are meaningless.
        source: the potential file it was read from (`load_potential`); empty for the
            named potentials.
        digest: a hash of the potential file and the parameter files it names, so that
            cached results follow an edit of either; empty for the named potentials.
    """

    name: str
    elements: tuple[str, ...]
    reference: str
    description: str
    atom_style: str
    commands: CommandBuilder = field(repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    cutoff: float = 0.0
    charges: Mapping[str, float] = field(default_factory=dict)
    elastic_options: Mapping[str, Any] = field(default_factory=dict)
    smooth: bool = True
    source: str = ""
    digest: str = ""

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated with `options`.

        Raises:
            TypeError: an unknown option (named, with the allowed ones), or a value of
                another kind than its default (true/false for a switch, a number for a
                length or a parameter).
            ValueError: a number option (every one is a length or a rate) that is not a
                finite positive number.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "none"
            raise TypeError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for potential "
                f"{self.name!r} (allowed: {allowed})"
            )
        for name, value in options.items():
            default = self.options[name]
            if isinstance(default, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(
                        f"{self.name} option {name} must be true or false, got {value!r}"
                    )
            elif isinstance(default, (int, float)):
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
                    raise TypeError(f"{self.name} option {name} must be a number, got {value!r}")
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(
                        f"{self.name} option {name} must be a positive number, got {value!r}"
                    )
        return {**self.options, **options}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (no callables)."""
        return {
            "name": self.name,
            "elements": list(self.elements),
            "reference": self.reference,
            "description": self.description,
            "options": dict(self.options),
            "cutoff": self.cutoff,
        } | ({"source": self.source, "digest": self.digest} if self.source else {})


def _quote(path: object) -> str:
    return f'"{path}"'


def _sw_si_commands(species: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    path = potentials_dir() / "Si.sw"
    return ["pair_style sw", f"pair_coeff * * {_quote(path)} {' '.join(species)}"]


def _tersoff_sio2_commands(species: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    path = potentials_dir() / "SiO.tersoff"
    return ["pair_style tersoff", f"pair_coeff * * {_quote(path)} {' '.join(species)}"]


def _bmp_glass_commands(species: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    return bmp.lammps_commands(
        species,
        alpha=float(options["alpha"]),
        coulomb_cutoff=float(options["coulomb_cutoff"]),
        short_range_cutoff=float(options["short_range_cutoff"]),
        shift=bool(options["shift"]),
        three_body=bool(options["three_body"]),
        three_body_file=_quote(potentials_dir() / bmp.THREE_BODY_FILE),
    )


POTENTIALS: dict[str, PotentialSpec] = {
    "sw-si": PotentialSpec(
        name="sw-si",
        elements=("Si",),
        reference="F. H. Stillinger and T. A. Weber, Phys. Rev. B 31, 5262 (1985)",
        description="Stillinger-Weber silicon (LAMMPS Si.sw)",
        atom_style="atomic",
        commands=_sw_si_commands,
        cutoff=3.77118,
    ),
    "tersoff-sio2": PotentialSpec(
        name="tersoff-sio2",
        elements=("Si", "O"),
        reference="S. Munetoh et al., Comput. Mater. Sci. 39, 334 (2007)",
        description="Tersoff potential for Si/SiO2 (LAMMPS SiO.tersoff)",
        atom_style="atomic",
        commands=_tersoff_sio2_commands,
        cutoff=2.8,
        # relaxations stall at 0.01-0.06 eV/Å; the a-sio2 labels (ASiO2Protocol)
        elastic_options={"fmax": 1e-2, "n_steps": 3},
    ),
    "bmp-glass": PotentialSpec(
        name="bmp-glass",
        elements=bmp.ELEMENTS,
        reference=bmp.REFERENCE,
        description="Bertani-Menziani-Pedone BMP-shrm oxide-glass force field",
        atom_style="charge",
        commands=_bmp_glass_commands,
        options={
            "alpha": bmp.DSF_ALPHA,
            "coulomb_cutoff": bmp.COULOMB_CUTOFF,
            "short_range_cutoff": bmp.SHORT_RANGE_CUTOFF,
            "shift": True,
            "three_body": True,
        },
        cutoff=bmp.COULOMB_CUTOFF,
        charges=bmp.parameters().charges,
        elastic_options={"fmax": 1e-3, "n_steps": 3},  # the meg labels (MEGProtocol)
        smooth=False,  # nb3b/screened stops sharply at 3.3 Å
    ),
}


def get_spec(name: str) -> PotentialSpec:
    """The spec of a registered name, or of a potential file (a path ending in .yaml,
    .yml or .json; `amtoolkit.potentials.files`).

    Raises:
        KeyError: an unknown name (the message lists the known ones).
        FileNotFoundError, ValueError: a potential file that is missing or malformed.
    """
    if is_potential_file(name):
        return load_potential(name)
    try:
        return POTENTIALS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(POTENTIALS))
        raise KeyError(
            f"unknown potential {name!r} (known: {known}; or a potential file, NAME.yaml)"
        ) from None


def pair_commands(name: str, species: Sequence[str], **options: Any) -> list[str]:
    """LAMMPS commands that define potential `name` for atom types 1..n = `species`.

    For scripts and workflows that drive LAMMPS themselves (units metal; atom style
    `get_spec(name).atom_style`). Elements are checked with `check_elements` first.

    Args:
        name: registry key, e.g. "tersoff-sio2".
        species: element symbol of each LAMMPS atom type, in type order.
        **options: potential options (see `POTENTIALS[name].options`).
    """
    spec = get_spec(name)
    check_elements(name, species)
    return list(spec.commands(list(species), spec.resolve_options(options)))


def check_elements(potential: str | PotentialSpec, symbols: Iterable[str]) -> None:
    """Raise CoverageError if any of `symbols` is not covered by `potential` (a name, a
    potential file or a spec).

    Ghost atoms (symbol "X", atomic number 0) are an error: remove them first.
    """
    spec = potential if isinstance(potential, PotentialSpec) else get_spec(potential)
    name = spec.name
    covered = set(spec.elements)
    present = list(dict.fromkeys(symbols))
    if "X" in present:
        raise CoverageError(
            f"ghost atoms (atomic number 0) are not covered by potential {name!r}: "
            "remove ghost atoms first"
        )
    for symbol in present:
        if symbol not in covered:
            raise CoverageError(
                f"element {symbol!r} is not covered by potential {name!r} "
                f"(covers: {', '.join(spec.elements)})"
            )
