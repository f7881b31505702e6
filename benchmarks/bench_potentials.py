"""Speed of the classical potentials and of the two relaxation engines.

Measures, on this machine:
1. energy+forces(+stress) evaluation time per call for each named potential;
2. MD throughput (atom-steps per second, NVT in LAMMPS);
3. relaxation of a 216-atom amorphous Si cell (SW, melted at 3000 K then relaxed,
   positions and cell to zero pressure, fmax 0.01 eV/Å) with LAMMPS' CG + fix box/relax
   (`method="lammps"`) and with ASE FIRE + FrechetCellFilter (`method="ase"`), checking
   that both reach fmax and zero pressure;
4. the same comparison for a 192-atom BMP silica cell.

Usage:  python benchmarks/bench_potentials.py [--repeat 3] [--json PATH]
Prints a table and writes JSON (default benchmarks/results/bench_potentials.json).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import _args  # benchmarks/_args.py: this script's folder is on sys.path
import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.neighborlist import neighbor_list

from amtoolkit.potentials import get_calculator, relax, run_md

FMAX = 0.01


def beta_cristobalite(a: float = 7.16) -> Atoms:
    si = bulk("Si", "diamond", a=a, cubic=True)
    i, j, vec = neighbor_list("ijD", si, 1.05 * a * np.sqrt(3) / 4)
    first = i < j
    oxygen = si.positions[i[first]] + 0.5 * vec[first]
    return si + Atoms(f"O{len(oxygen)}", positions=oxygen)


def time_calls(atoms: Atoms, name: str, repeat: int, calls: int = 20) -> float:
    """Best-of-`repeat` mean seconds per energy+forces+stress call (positions change)."""
    atoms = atoms.copy()
    atoms.calc = get_calculator(name)
    atoms.get_forces()
    best = np.inf
    rng = np.random.default_rng(0)
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            atoms.positions += rng.normal(scale=1e-4, size=atoms.positions.shape)
            atoms.get_forces()
            atoms.get_stress()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def time_md(atoms: Atoms, name: str, steps: int) -> float:
    """Atom-steps per second of LAMMPS NVT at 300 K (includes one set-up)."""
    start = time.perf_counter()
    run_md(atoms, name, temperature=300.0, steps=steps, seed=1)
    return len(atoms) * steps / (time.perf_counter() - start)


def amorphous_si(seed: int = 0) -> Atoms:
    """216-atom SW liquid snapshot: diamond 3x3x3 melted 3 ps at 3000 K, then 1 ps at 1000 K."""
    crystal = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    liquid = run_md(crystal, "sw-si", temperature=3000.0, steps=3000, seed=seed)
    return run_md(liquid, "sw-si", temperature=1000.0, steps=1000, seed=seed)


def time_relax(start: Atoms, name: str, method: str, repeat: int) -> dict:
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = relax(start, name, fmax=FMAX, method=method, steps=5000)
        best = min(best, time.perf_counter() - t0)
    forces = result.get_forces()
    stress = result.get_stress()
    return {
        "seconds": best,
        "steps": result.info["relax_steps"],
        "converged": result.info["relax_converged"],
        "energy_per_atom_eV": result.get_potential_energy() / len(result),
        "max_force_eV_A": float(np.sqrt((forces**2).sum(axis=1)).max()),
        "pressure_GPa": float(-stress[:3].mean() / units.GPa),
        "max_abs_stress_GPa": float(np.abs(stress).max() / units.GPa),
        "density_g_cm3": float(result.get_masses().sum() / result.get_volume() * 1.66053907),
    }


def main(argv: list[str] | None = None) -> None:
    parser = _args.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=_args.positive_int, default=1, help="repeats per timing (best kept)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).parent / "results" / "bench_potentials.json",
        help="output JSON path",
    )
    args = parser.parse_args(argv)
    with _args.user_errors("bench_potentials"):  # e.g. LAMMPS or a potential file missing
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time every potential and relaxation engine; print the tables, write the JSON."""

    si512 = bulk("Si", "diamond", a=5.431, cubic=True).repeat(4)
    si512.rattle(0.05, seed=0)
    silica = beta_cristobalite().repeat(2)  # 192 atoms
    silica.rattle(0.05, seed=0)
    cells = {"sw-si": si512, "tersoff-sio2": silica, "bmp-glass": silica}

    report: dict = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "evaluate": {},
        "md": {},
    }
    print(f"{'potential':14s} {'atoms':>6s} {'ms/call':>9s} {'MD atom-steps/s':>16s}")
    for name, atoms in cells.items():
        per_call = time_calls(atoms, name, args.repeat)
        rate = time_md(atoms, name, steps=2000 if name != "bmp-glass" else 300)
        report["evaluate"][name] = {"atoms": len(atoms), "ms_per_call": 1e3 * per_call}
        report["md"][name] = {"atoms": len(atoms), "atom_steps_per_s": rate}
        print(f"{name:14s} {len(atoms):6d} {1e3 * per_call:9.3f} {rate:16.3g}")

    cases = {"a-Si 216 (sw-si)": (amorphous_si(), "sw-si")}
    glass = beta_cristobalite().repeat(2)
    glass.rattle(0.15, seed=1)
    cases["silica 192 (bmp-glass)"] = (glass, "bmp-glass")
    report["relax"] = {}
    print(f"\nrelax to fmax={FMAX} eV/Å and zero pressure")
    header = ("case", "method", "s", "steps", "E/atom", "fmax", "P GPa", "converged")
    print("{:24s} {:7s} {:>8s} {:>6s} {:>10s} {:>8s} {:>8s} {:>9s}".format(*header))
    for label, (start, name) in cases.items():
        report["relax"][label] = {}
        for method in ("lammps", "ase"):
            r = time_relax(start, name, method, args.repeat)
            report["relax"][label][method] = r
            print(
                f"{label:24s} {method:7s} {r['seconds']:8.3f} {r['steps']:6d} "
                f"{r['energy_per_atom_eV']:10.5f} {r['max_force_eV_A']:8.4f} "
                f"{r['pressure_GPa']:8.4f} {'yes' if r['converged'] else 'NO':>9s}"
            )
        lmp, ase_ = report["relax"][label]["lammps"], report["relax"][label]["ase"]
        faster = "lammps" if lmp["seconds"] < ase_["seconds"] else "ase"
        ratio = max(lmp["seconds"], ase_["seconds"]) / min(lmp["seconds"], ase_["seconds"])
        report["relax"][label]["faster"] = faster
        unfinished = [m for m in ("lammps", "ase") if not report["relax"][label][m]["converged"]]
        caveat = f"; {' and '.join(unfinished)} stopped short of fmax" if unfinished else ""
        print(f"{'':24s} faster: {faster} ({ratio:.1f}x){caveat}")

    _args.write_json(args.json, report)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
