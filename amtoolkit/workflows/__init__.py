"""Melt-quench dataset generation on LAMMPS, with labels from `amtoolkit.analysis`.

    >>> from amtoolkit.workflows import make_dataset
    >>> ds = make_dataset("a-si", 200, "a-si-anneal.h5", variant="anneal", cooling_rate=10)

Protocols (`PROTOCOLS`): "a-si" (`ASiProtocol`, Stillinger-Weber: melt / quench /
anneal), "a-sio2" (`ASiO2Protocol`, Tersoff Munetoh: random start, melt, minimisation
quench, anneal; elastic and ring labels), "meg" (`MEGProtocol`, BMP-shrm oxide glasses
with sampled compositions; elastic and Li-fraction labels), "glass" (`GlassProtocol`,
any composition under any potential name or potential file: random start, melt, linear
cooling, hold; density, energy and Hill-moduli labels). Each protocol is a frozen
dataclass of parameters with ``run_sample(index, seed) -> (Atoms, labels)``.
`make_dataset` runs samples in parallel worker processes, appends each finished one to
a crash-safe work folder, resumes, retries failures once and writes an HDF5 dataset.
`label_dataset` gives one's own structures the same labels. See docs/workflows.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# imported on first use, so that `amtool --help` and `amtool dataset ...` option parsing
# do not load LAMMPS, ASE's builders and torch (through vesin)
_LAZY = {
    "ASiProtocol": "a_si",
    "ASiO2Protocol": "a_sio2",
    "MeltQuenchProtocol": "base",
    "label_dataset": "label",
    "labels_of": "label",
    "MDSettings": "lammps_md",
    "MeltQuenchRun": "lammps_md",
    "Stage": "lammps_md",
    "run_stages": "lammps_md",
    "MEGProtocol": "meg",
    "GlassProtocol": "glass",
    **dict.fromkeys(
        (
            "PROTOCOLS",
            "RunStoppedError",
            "SampleFailedError",
            "WorkflowError",
            "collect_parts",
            "get_protocol",
            "make_dataset",
            "sample_seed",
        ),
        "runner",
    ),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"amtoolkit.workflows.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'amtoolkit.workflows' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
