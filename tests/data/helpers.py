"""Small random structures with properties, shared by the dataset tests."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def make_frames(n: int = 6, seed: int = 0) -> list[Atoms]:
    """`n` small random frames: varying sizes, triclinic cells, a ghost, info properties."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        n_atoms = 2 + k % 4
        cell = np.diag(rng.uniform(4.0, 6.0, 3)) + rng.uniform(-0.5, 0.5, (3, 3))
        numbers = rng.choice([8, 14, 3], size=n_atoms)
        numbers[-1] = 0 if k % 3 == 0 else numbers[-1]  # every third frame ends with a ghost
        atoms = Atoms(
            numbers=numbers,
            positions=rng.uniform(0, 1, (n_atoms, 3)) @ cell,
            cell=cell,
            pbc=[True, True, k % 2 == 0],
        )
        atoms.info["shear_modulus"] = float(rng.uniform(20, 40))
        if k % 2:
            atoms.info["ring_size"] = float(rng.uniform(5, 7))  # missing on even frames
        atoms.info["label"] = f"frame-{k}"  # not a property (string)
        frames.append(atoms)
    return frames
