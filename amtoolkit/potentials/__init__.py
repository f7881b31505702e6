"""Classical potentials by name, as ASE calculators on a LAMMPS backend.

    >>> from amtoolkit.potentials import get_calculator, relax, POTENTIALS
    >>> atoms.calc = get_calculator("sw-si")
    >>> relaxed = relax(atoms, "sw-si", fmax=0.01)

Names: "sw-si" (Stillinger-Weber 1985), "tersoff-sio2" (Munetoh 2007), "bmp-glass"
(Bertani-Menziani-Pedone BMP-shrm, 2021). `POTENTIALS[name]` holds elements,
reference and options.
"""

from __future__ import annotations

from typing import Any

from amtoolkit.potentials._lammps import interruptible, lammps_frame, new_lammps, wrap_into
from amtoolkit.potentials.calculator import LammpsCalculator
from amtoolkit.potentials.registry import (
    POTENTIALS,
    PotentialSpec,
    check_elements,
    get_spec,
    pair_commands,
)
from amtoolkit.potentials.relax import relax, run_md

__all__ = [
    "POTENTIALS",
    "LammpsCalculator",
    "PotentialSpec",
    "check_elements",
    "get_calculator",
    "get_spec",
    "interruptible",
    "lammps_frame",
    "new_lammps",
    "pair_commands",
    "relax",
    "run_md",
    "wrap_into",
]


def get_calculator(name: str, **options: Any) -> LammpsCalculator:
    """An ASE calculator (energy, forces, stress) for the named potential.

    Args:
        name: one of `POTENTIALS` ("sw-si", "tersoff-sio2", "bmp-glass").
        **options: potential options, e.g. `coulomb_cutoff=10.0` for "bmp-glass"
            (see `POTENTIALS[name].options`).

    Raises:
        KeyError: unknown name. TypeError: unknown option, or a value of the wrong kind.
        ValueError: a number option that is not a positive number.
    """
    return LammpsCalculator(name, **options)
