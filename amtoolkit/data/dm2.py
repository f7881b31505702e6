"""Import of the DM2 amorphous SiO2 structures (``shared/data/dm2-sio2``).

The folder holds LAMMPS data files ``sio2_3000_glass_<rate>_sample<k>.dat`` (3000 atoms,
``units real``, ``atom_style charge``; type 1 = O, type 2 = Si) made by melt-quench at
four cooling rates: ``100k`` = 100 K/ps, ``10k`` = 10 K/ps, ``1k`` = 1 K/ps and
``0_1k`` = 0.1 K/ps.

References:
    Yang & Schwalbe-Koda, "A generative diffusion model for amorphous materials",
    npj Comput. Mater. (2025) (DM2); data under the MIT licence of that release.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from amtoolkit.data.dataset import Dataset, DatasetError

DM2_TYPE_MAP = {1: "O", 2: "Si"}
"""LAMMPS atom type -> element in the DM2 SiO2 files."""

DM2_PATTERN = re.compile(r"^sio2_(?P<n>\d+)_glass_(?P<rate>\d+(?:_\d+)?)k_sample(?P<k>\d+)\.dat$")
"""File names of the DM2 glasses; ``rate`` is the cooling rate in K/ps with ``_`` for ``.``."""

_AMU_PER_A3_IN_G_PER_CM3 = 1.66053906660  # 1 u/Å^3 = 1.66053906660 g/cm^3


def cooling_rate_from_name(name: str) -> float:
    """Cooling rate (K/ps) encoded in a DM2 file name: ``..._0_1k_...`` -> 0.1, ``_100k_`` -> 100.

    Raises:
        DatasetError: for a name that does not follow the DM2 pattern.
    """
    match = DM2_PATTERN.match(Path(name).name)
    if match is None:
        raise DatasetError(
            f"{name}: not a DM2 file name (expected sio2_<n>_glass_<rate>k_sample<k>.dat)"
        )
    return float(match.group("rate").replace("_", "."))


def mass_density(numbers: np.ndarray, cell: np.ndarray) -> float:
    """Mass density in g/cm^3 of atoms with atomic numbers `numbers` (ghosts excluded)."""
    from ase.data import atomic_masses

    z = np.asarray(numbers)
    mass = float(atomic_masses[z[z > 0]].sum())  # u
    return mass / abs(float(np.linalg.det(cell))) * _AMU_PER_A3_IN_G_PER_CM3


def import_dm2_sio2(folder: str | os.PathLike, *, wrap: bool = True) -> Dataset:
    """Dataset of the DM2 SiO2 glasses in `folder`, sorted by cooling rate then sample.

    Properties: ``cooling_rate`` (K/ps, from the file name) and ``density`` (g/cm^3,
    from the elements and the cell). Elements come from the type map 1 -> O, 2 -> Si;
    charges and velocities are dropped. Other files (e.g. ``random_sio2_300.dat``) are
    skipped.

    Args:
        folder: the ``dm2-sio2`` folder.
        wrap: wrap positions into the cell (the files hold MD-unwrapped coordinates).

    Raises:
        FileNotFoundError: if `folder` is not a directory.
        DatasetError: if it holds no DM2 glass file.

    References:
        DM2 (Yang & Schwalbe-Koda 2025), data README.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"DM2 folder not found: {root}")
    files = [p for p in root.iterdir() if DM2_PATTERN.match(p.name)]
    if not files:
        raise DatasetError(
            f"{root}: no DM2 glass files (sio2_<n>_glass_<rate>k_sample<k>.dat) found"
        )

    def order(p: Path) -> tuple[float, int]:
        return cooling_rate_from_name(p.name), int(DM2_PATTERN.match(p.name).group("k"))

    files.sort(key=order)
    dataset = Dataset.from_lammps_data(
        files,
        DM2_TYPE_MAP,
        properties=lambda p: {"cooling_rate": cooling_rate_from_name(p.name)},
        provenance={
            "source": str(root),
            "files": [p.name for p in files],
            "command": f"import_dm2_sio2({str(root)!r}, wrap={wrap})",
            "reference": "Yang & Schwalbe-Koda, npj Comput. Mater. 2025 (DM2), MIT licence",
        },
        wrap=wrap,
    )
    density = [mass_density(f.numbers, f.cell) for f in map(dataset.frame, range(len(dataset)))]
    return dataset.with_properties({"density": density}, how="mass density of each cell")
