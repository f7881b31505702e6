"""HMC denoising against the plain reverse SDE (evidence for the issue "HMC denoising
lowers the relaxed SW energy").

    python benchmarks/bench_hmc.py --model a-si-energy --reference a-si-anneal [--n 16]
                                   [--atoms 216] [--steps 200] [--hmc-range 0 0.5]
                                   [--dt0 0.4] [--acceptance-n N] [--seed 0] [--threads 2]
                                   [--potential sw-si] [--device cpu]
    python benchmarks/bench_hmc.py --smoke     # a tiny energy model trained into a
                                               # temporary folder (seconds)

The model must be an energy model (``model.kind: energy``, e.g. configs/a-si-energy.yaml):
its noise energy E_hat drives the HMC iterations. A model is a shipped name or a
checkpoint path; a reference is a shipped dataset name or a file (as in
benchmarks/bench_generator.py, whose helpers this script uses). Options ``--json PATH``
(default benchmarks/results/bench_hmc[_smoke].json), ``--workdir``, ``--progress``,
``--max-reference``, ``--all-reference``.

What is measured:

- ``n`` cells of ``atoms`` atoms generated twice with the same model, seed and number of
  steps: with the reverse SDE (sampler ``sde``) and with HMC denoising (sampler ``hmc``:
  one HMC iteration of 15 velocity-Verlet steps on E_hat(., t) before each reverse step
  with t in ``hmc-range``, dt = sigma_X(t) dt0, guidance off). For both: SW energy per
  atom after relaxation of positions and cell (mean, sd), RDF RMSD (rmax 5 Å, 100 bins)
  and ADF RMSD (cutoffs 3.0 Å and 2.7 Å) against the reference frames the model did not
  train on (see bench_generator.reference_frames), the fraction of 4-fold Si (covalent
  rule and d < 2.7 Å), and the same energy and 4-fold figures of the reference.
- Acceptance rate against diffusion time: `amtoolkit.diffusion.sample_hmc` run directly
  on the prior of the same cells (``acceptance-n`` of them, default ``n``) with
  ``stats=[]``; the per-iteration acceptance binned into 10 bins of t over hmc-range.
- Cost per structure (wall seconds of `Generator.generate` / n) of both samplers on this
  machine, with torch's thread count and the device.
- One verdict line, "HMC relaxed energy below SDE: YES/NO (delta = x eV/atom)", delta
  being the HMC mean minus the SDE mean, with its standard error.

With ``--smoke`` the figures mean nothing (configs/tiny.yaml as an energy model, 3
epochs, tiny cells and step counts); the JSON then says ``"smoke": true``.

References:
    AMDEN (HMC denoising with an energy-based denoiser); Neal, "MCMC using Hamiltonian
    dynamics" (2011), section 5.2; docs/diffusion.md, *Energy models and HMC*;
    docs/analysis.md, *Comparing sets*.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

sys.path.insert(0, str(Path(__file__).parent))
import _args  # noqa: E402 - benchmarks/_args.py, on the path likewise
import bench_generator as bg  # noqa: E402 - sibling script, importable once its folder is on the path

from amtoolkit import Analyzer, Generator  # noqa: E402
from amtoolkit.analysis.adf import adf  # noqa: E402
from amtoolkit.analysis.compare import COMPARE_ADF_CUTOFF  # noqa: E402
from amtoolkit.analysis.metrics import distribution_rmsd  # noqa: E402
from amtoolkit.data.batch import Batch  # noqa: E402
from amtoolkit.diffusion import (  # noqa: E402
    get_timesteps,
    guided,
    sample_hmc,
    sample_prior,
    sampler_names,
)

ACCEPTANCE_BINS = 10  # bins of t over hmc-range in the acceptance table
SAMPLERS = ("sde", "hmc")
# tiny numbers of --smoke (figures meaningless; checks that every path runs)
SMOKE = {"n": 2, "atoms": 64, "steps": 20, "max_reference": 4}


# ----------------------------------------------------------------------------- pieces


def fail(message: str) -> SystemExit:
    """Print one error line on stderr; the SystemExit (status 2) to raise."""
    print(f"bench_hmc: error: {message}", file=sys.stderr)
    return SystemExit(2)


def col(value: float | None, width: int, spec: str) -> str:
    """`bg.fmt(value, spec)` right-aligned in `width` characters (also 'n/a')."""
    return f"{bg.fmt(value, spec):>{width}}"


def check_energy_model(gen: Generator) -> None:
    """Exit with one line unless `gen` can sample with HMC (an energy model)."""
    usable = sampler_names(gen.info.objective, gen.info.kind)
    if "hmc" not in usable:
        raise fail(
            f"model {gen.name!r} (objective {gen.info.objective!r}, kind {gen.info.kind!r}) "
            f"has no noise energy for HMC; its samplers are {', '.join(usable)}"
        )


def structure_metrics(
    frames: Sequence[Atoms], reference: Sequence[Atoms], sw: Analyzer
) -> dict[str, Any]:
    """RDF/ADF RMSD against `reference`, relaxed energies and 4-fold Si of `frames`."""
    comparison = Analyzer().compare(frames, reference)
    adf_si = distribution_rmsd(
        adf(frames, cutoff=bg.SI_ADF_CUTOFF).p, adf(reference, cutoff=bg.SI_ADF_CUTOFF).p
    )
    return {
        "rdf_rmsd": comparison.rdf_rmsd,
        "adf_rmsd": {str(COMPARE_ADF_CUTOFF): comparison.adf_rmsd, str(bg.SI_ADF_CUTOFF): adf_si},
        "density": comparison.density_generated,
        "energy": bg.relaxed_energies(sw, frames),
        "fourfold_si": fourfold(frames),
        "atoms_per_structure": [len(a) for a in frames],
    }


def fourfold(frames: Sequence[Atoms]) -> dict[str, float]:
    """Fraction of 4-fold Si by the covalent rule and by d < 2.7 Å."""
    return {
        "covalent": bg.fourfold_fraction(frames, None),
        f"d<{bg.SI_BOND_CUTOFF}": bg.fourfold_fraction(frames, bg.SI_BOND_CUTOFF),
    }


def bin_acceptance(
    stats: Sequence[Mapping[str, Any]], t_range: tuple[float, float], bins: int = ACCEPTANCE_BINS
) -> list[dict[str, Any]]:
    """Per-iteration HMC acceptance (`sample_hmc` stats) averaged in `bins` bins of t.

    Args:
        stats: dicts with ``"t"``, ``"acceptance"`` (fraction of systems accepted) and
            ``"nonfinite"`` (systems rejected for a non-finite energy).
        t_range: (t_lo, t_hi), the HMC window; the bins split it evenly (one bin when
            t_lo == t_hi).
        bins: number of bins.

    Returns:
        One dict per bin, in increasing t: ``t_lo``, ``t_hi``, ``iterations``,
        ``acceptance`` (mean over its iterations; NaN when empty) and ``nonfinite``
        (summed).
    """
    lo, hi = (float(v) for v in t_range)
    if bins < 1 or not lo <= hi:
        raise ValueError(f"need bins >= 1 and t_lo <= t_hi, got bins={bins}, t_range={t_range}")
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo, hi])
    t = np.array([float(s["t"]) for s in stats])
    rate = np.array([float(s["acceptance"]) for s in stats])
    nonfinite = np.array([int(s["nonfinite"]) for s in stats])
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for k in range(len(edges) - 1):
        mask = which == k
        rows.append(
            {
                "t_lo": float(edges[k]),
                "t_hi": float(edges[k + 1]),
                "iterations": int(mask.sum()),
                "acceptance": float(rate[mask].mean()) if mask.any() else float("nan"),
                "nonfinite": int(nonfinite[mask].sum()),
            }
        )
    return rows


def prior_state(gen: Generator, n: int, args: argparse.Namespace) -> tuple[Batch, Any]:
    """The prior of the `n` cells that ``gen.generate(n, sampler="hmc", ...)`` starts from,
    as one batch (each system drawn with its planned structure seed), and the plan."""
    plan = gen.plan(
        n,
        n_atoms=args.atoms,
        steps=args.steps,
        sampler="hmc",
        seed=args.seed,
        hmc_range=tuple(args.hmc_range),
        dt0=args.dt0,
    )
    param = next(gen.model.parameters())
    device, dtype = param.device, param.dtype
    cell = torch.as_tensor(plan.cell, dtype=dtype, device=device).reshape(1, 3, 3)
    counts = torch.tensor([plan.n_initial], device=device)
    properties = torch.as_tensor(plan.properties, dtype=dtype, device=device)
    priors = [
        sample_prior(
            cell,
            counts,
            len(gen.vocabulary),
            gen.info.sde,
            torch.Generator(device=device).manual_seed(plan.structure_seeds[i]),
            properties=properties[i : i + 1],
        )
        for i in range(n)
    ]
    state = Batch(
        positions=torch.cat([b.positions for b in priors]),
        elements=torch.cat([b.elements for b in priors]),
        cell=torch.cat([b.cell for b in priors]),
        system_idx=torch.cat([b.system_idx + i for i, b in enumerate(priors)]),
        properties=torch.cat([b.properties for b in priors]),
    )
    return state, plan


def acceptance_curve(gen: Generator, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run `sample_hmc` once on `n` prior cells with ``stats=[]``; acceptance against t."""
    state, plan = prior_state(gen, n, args)
    generator = torch.Generator(device=state.positions.device).manual_seed(plan.seed)
    ts = get_timesteps(plan.steps, gen.info.sde)
    stats: list[dict[str, Any]] = []
    start = time.perf_counter()
    sample_hmc(
        guided(gen.model, 0.0, generator=generator),
        state,
        ts,
        sde=gen.info.sde,
        generator=generator,
        energy_model=gen.model,
        hmc_range=plan.sampler_options["hmc_range"],
        dt0=plan.sampler_options["dt0"],
        stats=stats,
    )
    wall = time.perf_counter() - start
    rates = [s["acceptance"] for s in stats]
    return {
        "n": n,
        "steps": plan.steps,
        "hmc_range": list(plan.sampler_options["hmc_range"]),
        "dt0": plan.sampler_options["dt0"],
        "hmc_iterations": len(stats),
        "mean_acceptance": float(np.mean(rates)) if rates else float("nan"),
        "nonfinite_rejections": int(sum(s["nonfinite"] for s in stats)),
        "bins": bin_acceptance(stats, plan.sampler_options["hmc_range"]),
        "iterations": stats,
        "wall_s": wall,
    }


def energy_verdict(sde: Mapping[str, Any], hmc: Mapping[str, Any]) -> dict[str, Any]:
    """Whether HMC's mean relaxed energy per atom is below the SDE's, and by how much.

    delta = mean(HMC) - mean(SDE) (eV/atom), with the standard error
    sqrt(sd_sde^2 / n_sde + sd_hmc^2 / n_hmc) of the difference of two means.
    """
    delta = hmc["mean"] - sde["mean"]
    se = float("nan")
    if sde["n"] and hmc["n"]:
        se = math.sqrt(sde["sd"] ** 2 / sde["n"] + hmc["sd"] ** 2 / hmc["n"])
    if not math.isfinite(delta):
        return {
            "below": None,
            "delta": delta,
            "standard_error": se,
            "line": "HMC relaxed energy below SDE: n/a (no finite relaxed energies to compare)",
        }
    below = bool(delta < 0)
    line = (
        f"HMC relaxed energy below SDE: {'YES' if below else 'NO'} "
        f"(delta = {delta:+.4f} eV/atom, standard error {bg.fmt(se)})"
    )
    return {"below": below, "delta": delta, "standard_error": se, "line": line}


# ----------------------------------------------------------------------------- benchmark


def bench_hmc(args: argparse.Namespace) -> dict[str, Any]:
    """SDE against HMC denoising (see the module docstring)."""
    gen = bg.load_generator(args.model, args.device)
    check_energy_model(gen)
    ref, ref_record = bg.reference_frames(
        args.reference, gen.info.dataset, args.max_reference, args.seed, args.all_reference
    )
    sw = Analyzer(args.potential, workers=args.workers)
    runs: dict[str, dict[str, Any]] = {}
    for sampler in SAMPLERS:
        options: dict[str, Any] = {}
        if sampler == "hmc":
            options = {"hmc_range": tuple(args.hmc_range), "dt0": args.dt0}
        frames, wall, caught = bg.generate(
            gen,
            args.n,
            sampler=sampler,
            steps=args.steps,
            n_atoms=args.atoms,
            seed=args.seed,
            progress=args.progress,
            **options,
        )
        runs[sampler] = {
            "generation_wall_s": wall,
            "seconds_per_structure": wall / len(frames),
            "warnings": caught,
            **structure_metrics(frames, ref, sw),
        }
        if sampler == "hmc":
            runs[sampler]["hmc_acceptance_per_batch"] = sorted(
                {float(a.info["hmc_acceptance"]) for a in frames}
            )
        print(f"{sampler}: {len(frames)} structures in {wall:.1f} s")
    reference = {"energy": bg.relaxed_energies(sw, ref), "fourfold_si": fourfold(ref)}
    curve = acceptance_curve(gen, args.acceptance_n or args.n, args)
    verdict = energy_verdict(runs["sde"]["energy"], runs["hmc"]["energy"])

    print_tables(gen, args, ref_record, runs, reference, curve)
    print(verdict["line"])
    return {
        "model": args.model,
        "model_name": gen.name,
        "reference": ref_record,
        "n": args.n,
        "atoms": args.atoms,
        "steps": args.steps,
        "seed": args.seed,
        "hmc_range": list(args.hmc_range),
        "dt0": args.dt0,
        "potential": args.potential,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "samplers": runs,
        "reference_structures": reference,
        "acceptance": curve,
        "hmc_cost_ratio": runs["hmc"]["generation_wall_s"] / runs["sde"]["generation_wall_s"],
        "verdict": verdict,
    }


def print_tables(
    gen: Generator,
    args: argparse.Namespace,
    ref_record: Mapping[str, Any],
    runs: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Any],
    curve: Mapping[str, Any],
) -> None:
    """The comparison table and the acceptance-against-t table."""
    sde, hmc = runs["sde"], runs["hmc"]
    width = 14

    def row(label: str, a: str, b: str, c: str = "") -> tuple[str, str]:
        return label, f"{a:>{width}} {b:>{width}} {c:>{width}}"

    def energy(e: Mapping[str, Any]) -> str:
        return f"{bg.fmt(e['mean'])}+-{bg.fmt(e['sd'], '.3f')}"

    rows = [
        ("model / reference", f"{gen.name} / {args.reference} ({ref_record['part']})"),
        ("structures, atoms, steps", f"{args.n} generated, {args.atoms}, {args.steps}"),
        ("HMC window, dt0", f"t in [{args.hmc_range[0]:g}, {args.hmc_range[1]:g}], {args.dt0:g}"),
        row("", "sde", "hmc", "reference"),
        row(
            f"relaxed {args.potential} E (eV/atom)",
            energy(sde["energy"]),
            energy(hmc["energy"]),
            energy(reference["energy"]),
        ),
        row("RDF RMSD", bg.fmt(sde["rdf_rmsd"]), bg.fmt(hmc["rdf_rmsd"])),
    ]
    for cutoff in (str(COMPARE_ADF_CUTOFF), str(bg.SI_ADF_CUTOFF)):
        rows.append(
            row(
                f"ADF RMSD cutoff {cutoff} A (1/deg)",
                bg.fmt(sde["adf_rmsd"][cutoff], ".3e"),
                bg.fmt(hmc["adf_rmsd"][cutoff], ".3e"),
            )
        )
    for rule in reference["fourfold_si"]:
        rows.append(
            row(
                f"4-fold Si ({rule})",
                bg.fmt(sde["fourfold_si"][rule], ".3f"),
                bg.fmt(hmc["fourfold_si"][rule], ".3f"),
                bg.fmt(reference["fourfold_si"][rule], ".3f"),
            )
        )
    rows.append(
        row(
            "seconds per structure",
            bg.fmt(sde["seconds_per_structure"], ".3f"),
            bg.fmt(hmc["seconds_per_structure"], ".3f"),
        )
    )
    rows.append(("cost on", f"{args.device}, {torch.get_num_threads()} torch threads"))
    print(bg.format_table("bench_hmc: reverse SDE against HMC denoising", rows))

    bins = [("t", "HMC iterations   acceptance   nonfinite")]
    for b in curve["bins"]:
        bins.append(
            (
                f"[{b['t_lo']:.3f}, {b['t_hi']:.3f}]",
                f"{b['iterations']:>14d} {col(b['acceptance'], 12, '.3f')} {b['nonfinite']:>11d}",
            )
        )
    bins.append(
        (
            "all",
            f"{curve['hmc_iterations']:>14d} {col(curve['mean_acceptance'], 12, '.3f')} "
            f"{curve['nonfinite_rejections']:>11d}",
        )
    )
    title = f"HMC acceptance against t (sample_hmc on {curve['n']} cells, {curve['steps']} steps)"
    print()
    print(bg.format_table(title, bins))


# ----------------------------------------------------------------------------- smoke model


def train_smoke_model(workdir: Path) -> dict[str, str]:
    """configs/tiny.yaml as an energy model (3 epochs); its stem and training data."""
    from amtoolkit.training import load_config

    tiny = load_config(bg.TINY_CONFIG)
    config = tiny.replace(
        name="tiny-si-energy",
        out_dir=str(workdir / "tiny-si-energy"),
        tensorboard=False,
        model=dataclasses.replace(tiny.model, kind="energy"),
    )
    return {"model": _args.train_smoke(config), "reference": str(config.data.dataset)}


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = _args.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="a-si-energy", help="energy model name or checkpoint")
    parser.add_argument(
        "--reference", default="a-si-anneal", help="a-Si reference: dataset name or file"
    )
    parser.add_argument("--n", type=int, default=16, help="structures per sampler")
    parser.add_argument("--atoms", type=int, default=216, help="atoms per generated cell")
    parser.add_argument("--steps", type=int, default=200, help="reverse steps (both samplers)")
    parser.add_argument(
        "--hmc-range",
        type=float,
        nargs=2,
        default=[0.0, 0.5],
        metavar=("T_LO", "T_HI"),
        help="diffusion times with an HMC iteration before the reverse step",
    )
    parser.add_argument("--dt0", type=float, default=0.4, help="HMC step, dt = sigma_X(t) dt0")
    parser.add_argument(
        "--acceptance-n",
        type=int,
        default=None,
        help="cells of the direct sample_hmc run for acceptance against t (default --n)",
    )
    parser.add_argument(
        "--potential",
        type=_args.potential,
        default="sw-si",
        help="potential of the relaxed energies",
    )
    bg.add_reference_options(parser)
    bg.add_common(parser, suppress=False, script="bench_hmc")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Exit with one line on a bad number (before any model is loaded)."""
    for name in ("n", "atoms", "steps", "threads", "max_reference"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise fail(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.acceptance_n is not None and args.acceptance_n < 1:
        raise fail(f"--acceptance-n must be >= 1, got {args.acceptance_n}")
    lo, hi = args.hmc_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise fail(f"--hmc-range must satisfy 0 <= T_LO <= T_HI <= 1, got {lo} {hi}")
    if not (math.isfinite(args.dt0) and args.dt0 > 0):
        raise fail(f"--dt0 must be a positive number, got {args.dt0}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    check_args(args)
    with _args.user_errors("bench_hmc"):  # a bad model, reference or potential name
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """The benchmark (the smoke model trained first with --smoke); the report, written."""
    report = bg.start_report("bench_hmc", args, argv)
    with contextlib.ExitStack() as stack:
        if args.smoke:
            bg.temporary_workdir(stack, args, "bench_hmc_")
            start = time.perf_counter()
            smoke = train_smoke_model(Path(args.workdir))
            report["smoke_model"] = {**smoke, "train_wall_s": time.perf_counter() - start}
            report["note"] = (
                "smoke run: configs/tiny.yaml as an energy model (3 epochs), tiny cells and "
                "step counts; the figures only show that the script runs and mean nothing"
            )
            args.model, args.reference = smoke["model"], smoke["reference"]
            args.n, args.atoms, args.steps = SMOKE["n"], SMOKE["atoms"], SMOKE["steps"]
            args.max_reference = min(args.max_reference, SMOKE["max_reference"])
            print(f"smoke: tiny energy model trained in {args.workdir}")
        start = time.perf_counter()
        report["results"] = bench_hmc(args)
        report["results"]["wall_s"] = time.perf_counter() - start

    bg.write_report(report, args.json, "bench_hmc")
    return report


if __name__ == "__main__":
    main()
