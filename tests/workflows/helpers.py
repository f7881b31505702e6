"""Test-only protocols, importable by the worker processes of `make_dataset`.

`ToyProtocol` runs no MD: it builds a 4-atom cell from the seed, so the runner's
bookkeeping (order, seeds, retries, resume) is tested in milliseconds. It records
every call as a line "index seed" in `record_dir/calls.txt` and can fail, fail once
or kill its worker process for chosen indices, add fixed `extra_labels`, and note an
unstable elastic fit for `unstable_indices`. Like
`run_stages`, it works in a temporary folder in `scratch_dir()`, which a killed worker
leaves behind.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from ase import Atoms

from amtoolkit.workflows.base import MeltQuenchProtocol
from amtoolkit.workflows.lammps_md import SCRATCH_PREFIX, scratch_dir

CALLS_FILE = "calls.txt"


@dataclasses.dataclass(frozen=True)
class ToyProtocol(MeltQuenchProtocol):
    name: ClassVar[str] = "toy"
    potential: ClassVar[str] = ""

    record_dir: str = ""
    sleep: float = 0.0
    fail_indices: tuple[int, ...] = ()
    flaky_indices: tuple[int, ...] = ()
    crash_indices: tuple[int, ...] = ()
    always_crash: bool = False
    extra_labels: tuple[tuple[str, float], ...] = ()
    unstable_indices: tuple[int, ...] = ()

    def run_sample(self, index: int, seed: int) -> tuple[Atoms, dict[str, float]]:
        record = Path(self.record_dir)
        with open(record / CALLS_FILE, "a", encoding="utf-8") as fh:
            fh.write(f"{index} {seed}\n")
        first_call = not (record / f"seen-{index}").exists()
        (record / f"seen-{index}").touch()
        with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=scratch_dir()) as work:
            (Path(work) / "log.lammps").write_text(f"sample {index}\n")
            if self.always_crash or (index in self.crash_indices and first_call):
                os._exit(3)  # the worker process dies without a Python exception
        if index in self.fail_indices or (index in self.flaky_indices and first_call):
            raise RuntimeError(f"toy failure of sample {index}\nFor more information see the log")
        time.sleep(self.sleep)
        rng = np.random.default_rng(seed)
        atoms = Atoms("Si4", positions=rng.random((4, 3)) * 5.0, cell=[5.0] * 3, pbc=True)
        atoms.info["workflow"] = {"toy_note": f"sample {index}"}
        if index in self.unstable_indices:  # as relaxed_labels notes an unstable fit
            atoms.info["workflow"]["elastic_unstable"] = True
        labels = {"index_label": float(index), "seed_label": float(seed)}
        return atoms, {**labels, **dict(self.extra_labels)}


def calls(record_dir: str | os.PathLike) -> list[tuple[int, int]]:
    """(index, seed) of every recorded call, in call order."""
    path = Path(record_dir) / CALLS_FILE
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line]
