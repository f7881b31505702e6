"""Design a-SiO2 for a shear modulus, then check the cells the way you would check MD output.

Usage:
    python examples/design_sio2_shear.py [--targets 25 35 45] [--per-target 4]
                                         [--steps 100] [--workers 2]
                                         [--out sio2-designed.extxyz] [--plot sio2-designed.png]

1. ``Generator.from_pretrained("a-sio2").generate(n, shear=[...])``: one target per
   cell (the model's training range is 17.5-49.8 GPa, so the default targets 25, 35
   and 45 GPa lie inside it; beyond it a warning says so), the cells written to an
   extended XYZ file as they come. Every cell records its target in
   ``atoms.info["target_shear_modulus"]``.
2. ``Analyzer("tersoff-sio2", workers=..., cache=...).report(frames, ["elastic",
   "network", "rings"])``: the shear modulus of each cell after relaxation, with the
   same potential and settings that labelled the training set (so measured and target
   mean the same thing), Q^n connectivity and rings. Because the frames carry their
   targets, the report checks them: ``report.targets["shear_modulus"]`` holds target
   and measured value per cell and their errors. The elastic results of each cell are
   kept in the cache folder as it finishes, so an interrupted run continues where it
   stopped when started again.
3. A table of measured G per target, the target errors (MAE, RMSE, MAPE) and the
   Spearman rank correlation of measured against target, the charge balance, and a
   figure (``report.plot``): RDF, bond angles, Q^n, rings, elastic moduli per cell and
   measured against target.

With the defaults (3 targets x 4 cells, 100 steps) about 10 minutes on 2 cores:
generation about 8 (charge-balance restarts included), the elastic constants about 2
(15 s per 170-atom cell on one core, shared over ``--workers``). For a first look,
``--targets 30 45 --per-target 2 --steps 50 --workers 1`` takes 3 minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.io import write
from scipy.stats import spearmanr

from amtoolkit import Analyzer, Generator
from amtoolkit.io import check_writable

POTENTIAL = "tersoff-sio2"  # the potential that labelled the a-sio2 training set
FORMAL_CHARGE = {"Si": 4, "O": -2}


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def charge(atoms) -> int:
    """Sum of the formal charges (Si +4, O -2) of a cell: 0 for SiO2."""
    return sum(FORMAL_CHARGE[s] for s in atoms.get_chemical_symbols())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", type=float, nargs="+", default=[25.0, 35.0, 45.0], help="G targets, GPa"
    )
    parser.add_argument("--per-target", type=positive_int, default=4, help="cells per target")
    parser.add_argument("--steps", type=positive_int, default=100, help="model steps")
    parser.add_argument("--workers", type=positive_int, default=2, help="elastic processes")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--out", default="sio2-designed.extxyz", help="structures")
    parser.add_argument("--plot", default="sio2-designed.png", help="figure")
    parser.add_argument(
        "--cache", default="sio2-designed.cache", help="folder of per-cell elastic results"
    )
    args = parser.parse_args()
    try:  # before minutes of generation
        check_writable(args.out)
        check_writable(args.plot)
    except OSError as err:
        parser.error(str(err))

    gen = Generator.from_pretrained("a-sio2")
    targets = [g for g in args.targets for _ in range(args.per_target)]
    frames = []
    Path(args.out).write_text("")  # a fresh file, then each cell appended as it comes
    for atoms in gen.generate_iter(  # progress bar only on a terminal
        len(targets), shear=targets, steps=args.steps, seed=args.seed, progress=None
    ):
        write(args.out, atoms, format="extxyz", append=True)
        frames.append(atoms)
    print(f"generated {len(frames)} cells with {gen.name} ({args.steps} steps) -> {args.out}")

    analyzer = Analyzer(POTENTIAL, workers=args.workers, cache=args.cache)
    report = analyzer.report(frames, ["elastic", "network", "rings"], progress=None)
    check = report.targets["shear_modulus"]
    measured = np.asarray(check.measured)
    wanted = np.asarray(check.target)

    print(f"\n{'target G (GPa)':>15} {'measured G (GPa)':>22} {'cells':>6}")
    for g in args.targets:
        got = measured[np.isclose(wanted, g)]
        print(f"{g:>15.1f} {got.mean():>14.1f} +- {got.std():<5.1f} {len(got):>6}")
    errors = check.errors
    rho = spearmanr(wanted, measured).statistic if len(set(args.targets)) > 1 else float("nan")
    balanced = sum(charge(atoms) == 0 for atoms in frames)
    print(
        f"\nMAE {errors.mae:.1f} GPa, RMSE {errors.rmse:.1f} GPa, MAPE {errors.mape:.0f} %, "
        f"Spearman {rho:.2f}; charge balanced {balanced} of {len(frames)}"
    )
    print(f"(elastic results of each cell kept in {Path(args.cache).resolve()})\n")
    print(report.summary())
    report.plot(args.plot)
    print(f"\nfigure -> {args.plot}")


if __name__ == "__main__":
    main()
