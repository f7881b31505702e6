"""A Cu50Zr50 metallic glass under a potential of your own: melt, quench, analyse.

Usage:
    python examples/cuzr_glass.py [--atoms 256] [--rate 100] [--out cuzr-glass.extxyz]

None of the named potentials covers Cu or Zr; the potential file
``examples/potentials/cuzr-mendelev.yaml`` (Mendelev's EAM, shipped with LAMMPS) makes
it usable everywhere a potential name is. The script

1. places the atoms at random in a cubic cell at 0.058 atoms/Å^3 and pushes apart the
   closest pairs (`relax` at fixed cell);
2. melts at 2000 K for 10 ps and cools at `--rate` K/ps to 300 K in 100 K stages
   (`run_md`, NPT at zero pressure, 2 fs steps);
3. relaxes positions and cell, and measures partial first peaks, the coordination, the
   energy and the elastic moduli with the `Analyzer` under the same file.

The glass is written to ``--out`` (extxyz), so ``amtool analyze cuzr-glass.extxyz -p
examples/potentials/cuzr-mendelev.yaml --energy --elastic`` repeats step 3. 256 atoms at
100 K/ps take about 20 s on one core (Hill G 29.2 GPa, K 129.6 GPa, E 81.4 GPa, density
7.18 g/cm3 with the default seed); studies of metallic glasses cool thousands of atoms
at 1-10 K/ps, which --atoms and --rate give at proportionally more time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from ase import Atoms

from amtoolkit import Analyzer
from amtoolkit.analysis.rdf import first_peak
from amtoolkit.io import write_structures
from amtoolkit.potentials import relax, run_md

POTENTIAL = str(Path(__file__).resolve().parent / "potentials" / "cuzr-mendelev.yaml")
NUMBER_DENSITY = 0.058  # atoms/Å^3, near that of Cu50Zr50 glass under this potential
MELT_K, END_K, STAGE_K = 2000.0, 300.0, 100.0
TIMESTEP_FS = 2.0
MELT_PS = 10.0


def random_cell(n_atoms: int, seed: int) -> Atoms:
    """Half Cu, half Zr, at random in a cube at NUMBER_DENSITY."""
    rng = np.random.default_rng(seed)
    length = (n_atoms / NUMBER_DENSITY) ** (1 / 3)
    symbols = ["Cu"] * (n_atoms // 2) + ["Zr"] * (n_atoms - n_atoms // 2)
    positions = rng.uniform(0.0, length, (n_atoms, 3))
    return Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)


def melt_quench(atoms: Atoms, rate: float, seed: int) -> Atoms:
    """Melt at MELT_K, then cool in STAGE_K steps at `rate` K/ps to END_K."""
    atoms = relax(atoms, POTENTIAL, fmax=0.5, cell=False, steps=500)  # no overlaps
    steps = int(MELT_PS * 1000 / TIMESTEP_FS)
    atoms = run_md(atoms, POTENTIAL, MELT_K, steps, TIMESTEP_FS, ensemble="npt", seed=seed)
    stage_steps = max(1, int(STAGE_K / rate * 1000 / TIMESTEP_FS))
    for temperature in np.arange(MELT_K - STAGE_K, END_K - 1, -STAGE_K):
        atoms = run_md(
            atoms,
            POTENTIAL,
            float(temperature),
            stage_steps,
            TIMESTEP_FS,
            ensemble="npt",
            seed=seed,
        )
        print(f"  {temperature:6.0f} K  density {density(atoms):.3f} g/cm3", flush=True)
    return relax(atoms, POTENTIAL, fmax=1e-3)


def density(atoms: Atoms) -> float:
    return float(atoms.get_masses().sum() / atoms.get_volume() * 1.66053906660)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=256, help="atoms in the cell")
    parser.add_argument("--rate", type=float, default=100.0, help="cooling rate, K/ps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="cuzr-glass.extxyz")
    args = parser.parse_args(argv)
    if args.atoms < 32 or args.rate <= 0:
        parser.error("--atoms must be at least 32 and --rate positive")

    print(f"melt-quench of {args.atoms} atoms at {args.rate:g} K/ps ({POTENTIAL})")
    glass = melt_quench(random_cell(args.atoms, args.seed), args.rate, args.seed)
    write_structures(args.out, glass)

    analyzer = Analyzer(POTENTIAL)
    rdf = analyzer.rdf(glass, rmax=6.0, nbins=240)
    for pair in (("Cu", "Cu"), ("Cu", "Zr"), ("Zr", "Zr")):
        peak = first_peak(rdf, pair)
        print(f"first peak {'-'.join(pair)}: {peak:.2f} Å")
    coordination = analyzer.coordination(glass, 3.7)
    means = ", ".join(f"{el} {cn:.1f}" for el, cn in coordination.mean.items())
    print(f"mean coordination (all neighbours within 3.7 Å): {means}")
    energy = analyzer.energy(glass)
    print(f"energy {energy.mean_energy:.4f} eV/atom, density {energy.mean_density:.3f} g/cm3")
    elastic = analyzer.elastic(glass, fmax=1e-4)
    hill = {name: float(np.mean(values)) for name, values in elastic.hill.items()}
    print(
        f"Hill moduli: G {hill['shear_modulus']:.1f} GPa, K {hill['bulk_modulus']:.1f} GPa, "
        f"E {hill['youngs_modulus']:.1f} GPa, nu {hill['poisson_ratio']:.3f}"
    )
    print(f"glass written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
