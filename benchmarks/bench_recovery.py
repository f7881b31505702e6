"""How much structure a model recovers from each noise level (partial diffusion).

    python benchmarks/bench_recovery.py [--model a-si] [--reference a-si-anneal] [--n 16]
                                        [--t 0.05 0.1 0.2 0.3 0.5] [--noise-scale 1.0 0.4]
                                        [--steps-per-unit 200] [--json PATH] [--smoke]

``n`` reference frames the model never saw (a seeded choice from the held-out part, as
in bench_generator.py quality-a-si) are re-noised to each diffusion time t and brought
back by the reverse SDE (`amtoolkit.refine.refine`, ``method="sde"``), with
``round(t * steps_per_unit)`` steps (at least 1): the step size of a
``steps_per_unit``-step generation. Each row compares the recovered cells with the whole
held-out part: RDF RMSD (rmax 5 Å, 100 bins), ADF RMSD (cutoff 3.0 Å), the fraction of
4-fold Si within 2.7 Å and the closest pair. The first row is the chosen cells as they
are: what a perfect denoiser would return, the floor of every row below.

A perfect score brings a structure back from any t at which its atoms can still be told
apart, so the t at which the RDF RMSD leaves the floor is the noise level where the
network stops knowing the structure; generation from the prior passes through every
noise level, so its RDF RMSD is at least that of recovery from the highest t the network
cannot undo. Rows at a noise scale below 1 show what the colder sampler of generation
does to a structure that is already right. Seconds per row are wall time on this machine.
With ``--smoke`` the model is configs/tiny.yaml trained into a temporary folder and the
figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _args  # noqa: E402 - benchmarks/_args.py, on the path likewise
import bench_generator as bg  # noqa: E402 - sibling script, importable once its folder is on the path

from amtoolkit import Analyzer  # noqa: E402
from amtoolkit.analysis.compare import COMPARE_ADF_CUTOFF  # noqa: E402
from amtoolkit.refine import refine  # noqa: E402

TIMES = (0.05, 0.1, 0.2, 0.3, 0.5)
NOISE_SCALES = (1.0, 0.4)
SMOKE = {"n": 2, "t": [0.1, 0.3], "steps_per_unit": 20, "max_reference": 4}


def measure(frames: list, reference: list, wall: float | None) -> dict[str, Any]:
    """RDF / ADF RMSD against `reference`, four-fold fraction and closest pair of `frames`."""
    comparison = Analyzer().compare(frames, reference)
    return {
        "rdf_rmsd": comparison.rdf_rmsd,
        "rdf_rmsd_floor": comparison.rdf_rmsd_floor,
        "rdf_rmsd_excess": comparison.rdf_rmsd_excess,
        "adf_rmsd": comparison.adf_rmsd,
        "fourfold_si": bg.fourfold_fraction(frames, bg.SI_BOND_CUTOFF),
        "closest_pair": comparison.closest_pair_generated,
        "wall_s": wall,
    }


def recovery(args: argparse.Namespace) -> dict[str, Any]:
    """The table of the module docstring, as a dict (rows in the printed order)."""
    gen = bg.load_generator(args.model, args.device)
    reference, record = bg.reference_frames(
        args.reference, gen.info.dataset, args.max_reference, args.seed
    )
    if args.n > len(reference):
        raise bg.fail(f"--n {args.n}: the held-out part has only {len(reference)} frames")
    rng = np.random.default_rng(args.seed)
    chosen = [reference[i] for i in np.sort(rng.choice(len(reference), args.n, replace=False))]
    rows = [{"t": 0.0, "sigma_x": 0.0, "noise_scale": None, "steps": 0}]
    rows[0].update(measure(chosen, reference, None))
    print_row(rows[0], flush=True)
    for t in args.t:
        steps = max(1, round(t * args.steps_per_unit))
        for noise_scale in args.noise_scale:
            start = time.perf_counter()
            out = refine(
                chosen,
                gen,
                method="sde",
                t=t,
                steps=steps,
                noise_scale=noise_scale,
                seed=args.seed,
                device=args.device,
            )
            row = {
                "t": t,
                "sigma_x": float(gen.info.sde.sigma_x(t)),
                "noise_scale": noise_scale,
                "steps": steps,
            }
            row.update(measure(out, reference, time.perf_counter() - start))
            rows.append(row)
            print_row(row, flush=True)
    return {
        "model": args.model,
        "model_name": gen.name,
        "reference": record,
        "n": args.n,
        "steps_per_unit": args.steps_per_unit,
        "rows": rows,
    }


HEADER = (
    f"{'t':>5} {'sigma_X/A':>9} {'noise':>5} {'steps':>5} {'RDF RMSD':>9} {'floor':>7} "
    f"{'ADF RMSD':>9} {'4-fold':>6} {'closest/A':>9} {'s':>6}"
)


def print_row(row: dict[str, Any], flush: bool = False) -> None:
    noise = "-" if row["noise_scale"] is None else f"{row['noise_scale']:.2g}"
    wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.0f}"
    print(
        f"{row['t']:5.2f} {row['sigma_x']:9.3f} {noise:>5} {row['steps']:5d} "
        f"{row['rdf_rmsd']:9.4f} {bg.fmt(row['rdf_rmsd_floor']):>7} "
        f"{row['adf_rmsd']:9.2e} {row['fourfold_si']:6.3f} {row['closest_pair']:9.3f} {wall:>6}",
        flush=flush,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _args.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="a-si", help="score or energy model, or checkpoint")
    parser.add_argument("--reference", default="a-si-anneal", help="dataset name or file")
    parser.add_argument(
        "--n", type=_args.positive_int, default=16, help="held-out frames re-noised"
    )
    parser.add_argument(
        "--t",
        type=_args.open_interval(0.0, 1.0),
        nargs="+",
        default=list(TIMES),
        help="noise levels (diffusion times in (0, 1))",
    )
    parser.add_argument(
        "--noise-scale",
        type=_args.noise_scale,
        nargs="+",
        default=list(NOISE_SCALES),
        help="factors on the SDE noise, 0-10",
    )
    parser.add_argument(
        "--steps-per-unit",
        type=_args.positive_int,
        default=bg.TARGET_STEPS,
        help="reverse steps per unit of t (200: the step of a 200-step generation)",
    )
    bg.add_reference_options(parser)
    bg.add_common(parser, suppress=False, script="bench_recovery")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    with _args.user_errors("bench_recovery"):  # e.g. a bad model or reference name
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """The benchmark (the smoke model trained first with --smoke); the report, written."""
    report = bg.start_report("bench_recovery", args, argv)
    with contextlib.ExitStack() as stack:
        if args.smoke:
            from amtoolkit.training import load_config

            bg.temporary_workdir(stack, args, "bench_recovery_")
            config = load_config(bg.TINY_CONFIG)
            config = config.replace(out_dir=str(Path(args.workdir) / "tiny-si"), tensorboard=False)
            args.model, args.reference = _args.train_smoke(config), str(config.data.dataset)
            args.n, args.t = SMOKE["n"], SMOKE["t"]
            args.steps_per_unit = SMOKE["steps_per_unit"]
            args.max_reference = min(args.max_reference, SMOKE["max_reference"])
            report["note"] = "smoke run: configs/tiny.yaml; the figures mean nothing"
        print(HEADER)
        start = time.perf_counter()
        report["results"] = recovery(args)
        report["results"]["wall_s"] = time.perf_counter() - start
    print(
        "(first row: the chosen held-out cells as they are; ADF cutoff "
        f"{COMPARE_ADF_CUTOFF} A, 4-fold within {bg.SI_BOND_CUTOFF} A)"
    )
    bg.write_report(report, args.json, "bench_recovery")
    return report


if __name__ == "__main__":
    main()
