"""Make configs/data/tiny-si.extxyz: 12 small rattled diamond-Si cells for smoke tests.

Eight 8-atom cubic cells (a = 5.30-5.60 Å) and four 16-atom 1x1x2 cells, positions
rattled by 0.1 Å (seed 0); ``density`` (g/cm^3) is stored in each frame's info. Not
physical amorphous Si: a tiny, fast stand-in for configs/tiny.yaml and the tests.

    python configs/data/make_tiny_si.py
"""

from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


def make(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for k, a in enumerate(np.linspace(5.30, 5.60, 12)):
        atoms = bulk("Si", "diamond", a=float(a), cubic=True)
        if k % 3 == 2:
            atoms = atoms.repeat((1, 1, 2))
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        atoms.info["density"] = float(
            atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_TO_G_PER_CM3
        )
        frames.append(atoms)
    return frames


if __name__ == "__main__":
    out = Path(__file__).with_name("tiny-si.extxyz")
    ase.io.write(out, make(), format="extxyz")
    print(f"wrote {out}")
