"""Melt-quench dataset generation on LAMMPS, with labels from `amtoolkit.analysis`.

    >>> from amtoolkit.workflows import make_dataset
    >>> ds = make_dataset("a-si", 200, "a-si-anneal.h5", variant="anneal", cooling_rate=10)

Protocols (`PROTOCOLS`): "a-si" (`ASiProtocol`, Stillinger-Weber: melt / quench /
anneal), "a-sio2" (`ASiO2Protocol`, Tersoff Munetoh: random start, melt, minimisation
quench, anneal; elastic and ring labels), "meg" (`MEGProtocol`, BMP-shrm oxide glasses
with sampled compositions; elastic and Li-fraction labels). Each protocol is a frozen
dataclass of parameters with ``run_sample(index, seed) -> (Atoms, labels)``.
`make_dataset` runs samples in parallel worker processes, appends each finished one to
a crash-safe work folder, resumes, retries failures once and writes an HDF5 dataset.
`label_dataset` gives one's own structures the same labels. See docs/workflows.md.
"""

from __future__ import annotations

from amtoolkit.workflows.a_si import ASiProtocol
from amtoolkit.workflows.a_sio2 import ASiO2Protocol
from amtoolkit.workflows.base import MeltQuenchProtocol
from amtoolkit.workflows.label import label_dataset, labels_of
from amtoolkit.workflows.lammps_md import MDSettings, MeltQuenchRun, Stage, run_stages
from amtoolkit.workflows.meg import MEGProtocol
from amtoolkit.workflows.runner import (
    PROTOCOLS,
    RunStoppedError,
    SampleFailedError,
    WorkflowError,
    collect_parts,
    get_protocol,
    make_dataset,
    sample_seed,
)

__all__ = [
    "PROTOCOLS",
    "RunStoppedError",
    "ASiO2Protocol",
    "ASiProtocol",
    "MDSettings",
    "MEGProtocol",
    "MeltQuenchProtocol",
    "MeltQuenchRun",
    "SampleFailedError",
    "Stage",
    "WorkflowError",
    "collect_parts",
    "get_protocol",
    "label_dataset",
    "labels_of",
    "make_dataset",
    "run_stages",
    "sample_seed",
]
