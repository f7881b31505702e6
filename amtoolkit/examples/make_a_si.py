"""Make the shipped a-Si example: 216 Stillinger-Weber atoms, melt-quenched at 10 K/ps.

    python -m amtoolkit.examples.make_a_si [OUT.extxyz]

Protocol (a shorter anneal than the papers' 1 K/ps; docs/workflows.md, *Protocols*,
`a-si`): diamond Si 3x3x3 (216 atoms, a = 5.431 Å) -> NVT melt at 3500 K for 20 ps ->
NPT (0 GPa) cooled from 3000 K to 300 K at 10 K/ps in 50 K steps of 5 ps ->
zero-pressure relaxation of positions and cell (fmax 0.01 eV/Å). About 2 minutes of CPU
time (one core).
"""

from __future__ import annotations

import sys

import numpy as np
from ase import Atoms
from ase.build import bulk

from amtoolkit.io import write_structures
from amtoolkit.potentials import relax, run_md

POTENTIAL = "sw-si"
SEED = 0
TIMESTEP = 1.0  # fs
MELT_TEMPERATURE = 3500.0  # K
MELT_STEPS = 20_000  # 20 ps
QUENCH_START = 3000.0  # K
QUENCH_END = 300.0  # K
QUENCH_STEP = 50.0  # K per segment
COOLING_RATE = 10.0  # K/ps
FMAX = 0.01  # eV/Å


def make_a_si(seed: int = SEED) -> Atoms:
    """Melt-quench 216 SW Si atoms and return the relaxed amorphous cell."""
    atoms = bulk("Si", "diamond", a=5.431, cubic=True) * (3, 3, 3)
    atoms = run_md(atoms, POTENTIAL, MELT_TEMPERATURE, MELT_STEPS, TIMESTEP, "nvt", seed)
    steps_per_segment = int(round(QUENCH_STEP / COOLING_RATE * 1000.0 / TIMESTEP))
    for temperature in np.arange(QUENCH_START, QUENCH_END - 1e-6, -QUENCH_STEP):
        atoms = run_md(
            atoms, POTENTIAL, float(temperature), steps_per_segment, TIMESTEP, "npt", seed
        )
    atoms = relax(atoms, POTENTIAL, fmax=FMAX, cell=True)
    energy = atoms.get_potential_energy() / len(atoms)
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out.wrap()
    out.info.update(
        potential=POTENTIAL,
        cooling_rate=COOLING_RATE,
        energy_per_atom=float(energy),
        seed=int(seed),
        made_by="python -m amtoolkit.examples.make_a_si",
    )
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "a-si-216.extxyz"
    write_structures(target, make_a_si())
    print(target)
