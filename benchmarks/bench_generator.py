"""Quality and speed of the diffusion generator (evidence for the "Diffusion core" issue).

    python benchmarks/bench_generator.py quality-a-si --model a-si --reference a-si-anneal
                                         [--n 32] [--steps 200] [--atoms 216]
                                         [--frames generated.extxyz]
    python benchmarks/bench_generator.py quality-sio2 --model a-sio2 --reference a-sio2
                                         [--targets 8] [--per-target 4] [--beyond 0.2]
                                         [--elastic-method strain|hessian]
    python benchmarks/bench_generator.py speed [--threads 2] [--large]
    python benchmarks/bench_generator.py all            # the three (prefixed options:
                                                        # --a-si-model, --sio2-model ...;
                                                        # hours)
    python benchmarks/bench_generator.py all --smoke    # all three on tiny models trained
                                                        # into a temporary folder (seconds)

The benchmark is always named: with none the script prints its usage and exits 2.

A model is a shipped name (`amtoolkit.pretrained`) or a checkpoint path (stem, .pt or
.json); a reference is a shipped dataset name, an amtoolkit HDF5 file, an extxyz file or
anything ASE reads. Common options: ``--json PATH`` (default
benchmarks/results/bench_generator[_<benchmark>][_smoke].json), ``--threads``,
``--seed``, ``--device``, ``--smoke``, ``--workdir``. Bad input (a count below 1, an
unknown sampler, model, reference or potential) ends with one line
``bench_generator: error: ...`` and exit status 2 before any work.

What is measured (comparisons as in docs/analysis.md, *Comparing sets*; speed as in
docs/models.md, *Speed*):

- quality-a-si: ``n`` cells of ``atoms`` atoms at the model's typical density, compared
  with the reference frames the model did not train on (when the model card's dataset
  is the reference, the split it records is redrawn: its test part, or its validation
  part if it had no test part; when the reference is the card's dataset grown by later
  samples, that part of the first frames plus all later ones; otherwise all frames; at
  most ``--max-reference``):
  RDF RMSD (rmax 5 Å, 100 bins) and ADF RMSD (180 bins) at the comparison cutoff 3.0 Å
  and the Si cutoff 2.7 Å, SW energy per atom after relaxation (mean, sd), the fraction
  of 4-fold Si (covalent rule d < 1.3 (r_cov,i + r_cov,j) = 2.886 Å, and d < 2.7 Å), the
  share of bond angles below 70° within 2.7 Å (triangles, three-membered rings), and
  the target line "RDF RMSD <= 0.03 at 200 steps: PASS/FAIL", with the RMSD floor of
  these set sizes (`sampling_rmsd`: two sets resampled from the reference frames) and
  the RMSD beyond sampling noise (`excess_rmsd`) the target asks for at those sizes,
  and how many standard errors of the RMSD (`rmsd_standard_error`) it lies from the
  target.
  ``--frames FILE`` measures structures generated elsewhere by ``--model`` (on a GPU,
  say) instead of generating them; the steps, sampler, noise scale and score gain come
  from their info.
- quality-sio2: for shear modulus and for ring size in turn, ``targets`` values evenly
  spread over the training range widened by ``beyond`` x its width at each end,
  ``per-target`` structures each; measured G (Tersoff, relaxed-ion elastic constants)
  and mean ring size (Si atoms per ring); MAE, RMSE, MAPE and the Spearman rank
  correlation between target and measured, within the training range, beyond it and
  overall (and over charge-balanced structures only); the charge-balanced fraction and
  the structures and atoms the charge-balance relabelling changed (``--no-rebalance``
  turns it off);
  RDF/ADF RMSD of everything generated against the reference. A structure whose
  measurement fails counts as NaN and is listed with its reason.
- speed: a paper-size model (4 layers, width 128, k = 8, cutoff 6.5 Å; untrained
  weights: cost does not depend on them) saved as a checkpoint and run through
  `Generator.generate`, so a step includes the neighbour search, the model and the
  sampler update. Seconds per step at 216 and 1000 atoms, structures per hour at 200
  steps (216 atoms), and one step from 10^3 to 10^4 atoms (10^5 with ``--large``), each
  size in a fresh process with its peak memory (VmHWM), and the log-log slope of time
  against atoms (1 = linear).

Seconds per step are differences, (t(1 + k steps) - t(1 step)) / k, so they exclude the
per-run overhead (prior, decoding to Atoms), reported separately. With ``--smoke`` the
figures mean nothing (configs/tiny.yaml for a-Si, a tiny SiO2 model on stand-in labels,
tiny cells and step counts); the JSON then says ``"smoke": true``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _args  # benchmarks/_args.py: this script's folder is on sys.path
import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from amtoolkit import Analyzer, Generator
from amtoolkit.analysis.adf import adf
from amtoolkit.analysis.bonds import COVALENT_FACTOR
from amtoolkit.analysis.compare import COMPARE_ADF_CUTOFF
from amtoolkit.analysis.coordination import coordination
from amtoolkit.analysis.metrics import distribution_rmsd, property_errors
from amtoolkit.analysis.report import format_table
from amtoolkit.data import Dataset
from amtoolkit.diffusion import FORMAL_CHARGES
from amtoolkit.held_out import held_out_by_all, held_out_part
from amtoolkit.io import ReadError, read_structures

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"

BENCHMARKS = ("quality-a-si", "quality-sio2", "speed")
RDF_RMSD_TARGET = 0.03  # "Diffusion core" issue: a-Si RDF RMSD <= 0.03 at 200 steps
TARGET_STEPS = 200
SI_ADF_CUTOFF = 2.7  # Å, ADF of a-Si comparisons (docs/analysis.md, *Bond-angle distribution*)
SMALL_ANGLE = 70.0  # degrees: bond angles below it within SI_ADF_CUTOFF close triangles
SI_BOND_CUTOFF = 2.7  # Å, a fixed Si-Si cutoff reported beside the covalent rule
SIO2_PROPERTIES = ("shear_modulus", "ring_size")
# the EGNN size of the seed papers (docs/models.md, *Denoiser architecture*)
PAPER_SIZE_MODEL = {"hidden": 128, "layers": 4, "vector_channels": 8, "cutoff": 6.5, "n_norm": 40.0}
A_SI_DENSITY = 2.28  # g/cm^3, cells of the speed benchmark
SPEED_SIZES = (216, 1000)
SCALING_SIZES = (1000, 3000, 10_000)
LARGE_SIZES = (30_000, 100_000)

SMOKE_SIO2_EPOCHS = 30  # the tiny SiO2 model (configs/tiny.yaml's 3 leave it all ghosts)
# tiny numbers of --smoke (figures meaningless; checks that every path runs)
SMOKE = {
    "quality-a-si": {"n": 2, "steps": 10, "atoms": 64, "max_reference": 4},
    "quality-sio2": {"targets": 3, "per_target": 1, "steps": 10, "max_reference": 4},
    "speed": {"sizes": [216], "steps": 2, "scaling_sizes": [250, 500, 1000], "repeats": 2},
}


# ----------------------------------------------------------------------------- helpers


def machine() -> dict[str, Any]:
    """Platform, versions, CPU and thread count of this run."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process (Linux VmHWM), MiB; None where unavailable."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return None


def fmt(value: float | None, spec: str = ".4f") -> str:
    """A number for a table; 'n/a' for None or NaN, as wide as the number would be."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        width = spec.split(".")[0]
        return "n/a".rjust(int(width) if width.isdigit() else 0)
    return format(value, spec)


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and population standard deviation of the finite values, and their count."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std()), int(v.size)


def error_line(err: Exception) -> str:
    """The error's type and the first 120 characters of its message's first line."""
    return f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"


def failure_line(k: int, err: Exception) -> str:
    """One line naming a failed frame and why."""
    return f"frame {k}: {error_line(err)}"


def potential_values(
    analyzer: Analyzer, name: str, frames: Sequence[Atoms], pick: Callable[[Any], float], **options
) -> tuple[list, list]:
    """`pick` of the potential-based analysis `name` of every frame (in the analyzer's
    worker processes); a frame that fails gives NaN and a one-line reason."""
    values, failures = [], []
    for k, outcome in enumerate(analyzer.per_frame(name, frames, **options)):
        if isinstance(outcome, Exception):
            values.append(float("nan"))
            failures.append(failure_line(k, outcome))
        else:
            values.append(float(pick(outcome)))
    return values, failures


def per_frame(measure: Callable[[Atoms], float], frames: Sequence[Atoms]) -> tuple[list, list]:
    """`measure` on every frame; a frame that fails gives NaN and a one-line reason."""
    values, failures = [], []
    for k, atoms in enumerate(frames):
        try:
            values.append(float(measure(atoms)))
        except Exception as err:  # noqa: BLE001 - a failing frame is a result, not a crash
            values.append(float("nan"))
            failures.append(failure_line(k, err))
    return values, failures


def spearman(targets: Sequence[float], measured: Sequence[float]) -> float:
    """Spearman rank correlation over pairs where both are finite (NaN if < 3 or constant)."""
    from scipy.stats import spearmanr

    t, m = np.asarray(targets, float), np.asarray(measured, float)
    keep = np.isfinite(t) & np.isfinite(m)
    if keep.sum() < 3 or np.ptp(t[keep]) == 0 or np.ptp(m[keep]) == 0:
        return float("nan")
    return float(spearmanr(t[keep], m[keep]).statistic)


def errors_block(targets: np.ndarray, measured: np.ndarray) -> dict[str, float | int]:
    """MAE, RMSE, MAPE (analysis.metrics.property_errors) and Spearman rho."""
    if len(targets) == 0:
        return {
            "mae": float("nan"),
            "rmse": float("nan"),
            "mape": float("nan"),
            "n": 0,
            "spearman": float("nan"),
        }
    return {**property_errors(targets, measured).to_dict(), "spearman": spearman(targets, measured)}


def generate(gen: Generator, n: int, **options: Any) -> tuple[list[Atoms], float, list[str]]:
    """`gen.generate(n, **options)`: the frames, the wall time (s) and the warnings raised."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = gen.generate(n, **options)
    return frames, time.perf_counter() - start, [str(w.message) for w in caught]


def frames_to_measure(
    args: argparse.Namespace, gen: Generator, **options: Any
) -> tuple[list[Atoms], float | None, list[str]]:
    """The structures a quality benchmark measures: those in ``args.frames`` when given
    (wall time None, no warnings), else ``args.n`` generated now with ``args.atoms``,
    ``args.steps``, ``args.seed``, ``args.progress`` and `options`."""
    if args.frames is not None:
        return read_generated(str(args.frames), gen.name), None, []
    return generate(
        gen,
        args.n,
        n_atoms=args.atoms,
        steps=args.steps,
        seed=args.seed,
        progress=args.progress,
        **options,
    )


def read_generated(path: str, model_name: str) -> list[Atoms]:
    """Structures generated elsewhere (`amtool generate -o`, for example on a GPU), read
    back to be measured; each must record the sampler and steps in its info, and a
    structure made by another model than `model_name` is refused."""
    try:
        frames = read_structures(path)
    except (FileNotFoundError, ReadError) as err:
        raise fail(f"cannot read the generated structures: {err}") from err
    for k, atoms in enumerate(frames):
        missing = [key for key in ("sampler", "steps") if key not in atoms.info]
        if missing:
            raise fail(f"{path}: frame {k} does not record {', '.join(missing)} in its info")
        made_by = atoms.info.get("model")
        if made_by is not None and made_by != model_name:
            raise fail(f"{path}: frame {k} was generated by {made_by!r}, not {model_name!r}")
    return frames


def charge_balanced(atoms: Atoms) -> bool:
    """``atoms.info["charge_balanced"]`` from the Generator, else formal charges sum to 0."""
    if "charge_balanced" in atoms.info:
        return bool(atoms.info["charge_balanced"])
    return sum(FORMAL_CHARGES.get(int(z), math.nan) for z in atoms.numbers) == 0


# ----------------------------------------------------------------------------- inputs


def fail(message: str) -> SystemExit:
    """Print ``<script>: error: <message>`` on stderr; the SystemExit (status 2) to raise
    (`_args.fail`, named for the running script)."""
    return _args.fail(message)


def load_generator(spec: str, device: str) -> Generator:
    """A shipped model name or a checkpoint path; exits with one line when neither."""
    try:
        return Generator.load(spec, device=device)
    except (ValueError, FileNotFoundError) as err:
        raise fail(f"model {spec!r}: {err}") from None


def open_reference(spec: str) -> Dataset:
    """A shipped dataset name, or an HDF5 / extxyz / ASE-readable file, as a Dataset."""
    from amtoolkit.training.data import open_dataset

    try:
        return open_dataset(spec) if Path(spec).is_file() else Dataset.load(spec)
    except (ValueError, OSError) as err:
        raise fail(
            f"reference {spec!r} is not a readable file or a shipped dataset: {err}"
        ) from None


def reference_frames(
    spec: str,
    card: dict[str, Any],
    max_frames: int | None,
    seed: int,
    all_frames: bool = False,
    also: Sequence[dict[str, Any]] = (),
) -> tuple[list[Atoms], dict[str, Any]]:
    """The reference frames the model was not trained on, and a record of the choice.

    The part is `amtoolkit.held_out.held_out_part` (the test split the card records,
    redrawn; every frame with `all_frames`), less the frames that the models with the
    cards `also` trained on (`held_out_by_all`: one reference for models compared side by
    side); at most `max_frames` of them (a seeded random subset, in order).
    """
    dataset = open_reference(spec)
    part = (
        held_out_part(spec, card, dataset=dataset, whole=True)
        if all_frames
        else held_out_by_all(spec, [card, *also], dataset=dataset)
    )
    frames, note = part.frames, part.part
    n_part = len(frames)
    if max_frames is not None and n_part > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(n_part, max_frames, replace=False))
        frames = [frames[i] for i in keep]
    record = {
        "spec": str(spec),
        "frames_in_dataset": len(dataset),
        "part": note,
        "frames_in_part": n_part,
        "frames_used": len(frames),
        "provenance_source": dataset.provenance.get("source"),
    }
    return frames, record


# ----------------------------------------------------------------------------- quality: a-Si


def covalent_si_cutoff() -> float:
    """Si-Si bond length of the covalent rule, 1.3 (r_cov + r_cov), Å."""
    return COVALENT_FACTOR * 2 * float(covalent_radii[atomic_numbers["Si"]])


def fourfold_fraction(frames: Sequence[Atoms], cutoff: float | None) -> float:
    """Fraction of Si atoms with exactly 4 neighbours (None: the covalent rule)."""
    return float(coordination(frames, cutoff).distribution.get("Si", {}).get(4, 0.0))


def small_angle_fraction(result: Any) -> float:
    """Share of the bond angles of an ADF result below `SMALL_ANGLE` (p integrates to 1)."""
    width = float(result.theta[1] - result.theta[0])
    return float(result.p[result.theta < SMALL_ANGLE].sum() * width)


def relaxed_energies(analyzer: Analyzer, frames: Sequence[Atoms]) -> dict[str, Any]:
    """Energy per atom after relaxation (positions and cell), frame by frame."""
    values, failures = potential_values(analyzer, "energy", frames, lambda r: r.energy_per_atom[0])
    mean, sd, n = mean_sd(values)
    return {"mean": mean, "sd": sd, "n": n, "per_structure": values, "failures": failures}


def quality_a_si(args: argparse.Namespace) -> dict[str, Any]:
    """Generated a-Si against melt-quench reference frames (see the module docstring)."""
    gen = load_generator(args.model, args.device)
    ref, ref_record = reference_frames(
        args.reference, gen.info.dataset, args.max_reference, args.seed, args.all_reference
    )
    sw = Analyzer(args.potential, workers=args.workers)  # a bad name fails before generating
    frames, wall, caught = frames_to_measure(
        args,
        gen,
        sampler=args.sampler,
        noise_scale=args.noise_scale,
        score_gain=args.score_gain,
    )
    steps = frames[0].info["steps"]

    comparison = Analyzer().compare(frames, ref)
    angles = [adf(s, cutoff=SI_ADF_CUTOFF) for s in (frames, ref)]
    adf_si = distribution_rmsd(angles[0].p, angles[1].p)
    small = [small_angle_fraction(a) for a in angles]
    energy_gen, energy_ref = relaxed_energies(sw, frames), relaxed_energies(sw, ref)
    r_cov = covalent_si_cutoff()
    fourfold = {
        f"covalent (d < {r_cov:.3f} A)": [fourfold_fraction(s, None) for s in (frames, ref)],
        f"d < {SI_BOND_CUTOFF} A": [fourfold_fraction(s, SI_BOND_CUTOFF) for s in (frames, ref)],
    }
    passed = comparison.rdf_rmsd <= RDF_RMSD_TARGET
    verdict = "PASS" if passed else "FAIL"
    target_line = f"RDF RMSD <= {RDF_RMSD_TARGET} at {TARGET_STEPS} steps: {verdict}"
    if steps != TARGET_STEPS:
        target_line += f" (measured at {steps} steps, not {TARGET_STEPS})"
    if comparison.rdf_rmsd_se:
        target_line += (
            f"; {comparison.rdf_rmsd:.3f} is "
            f"{(comparison.rdf_rmsd - RDF_RMSD_TARGET) / comparison.rdf_rmsd_se:+.1f} "
            f"standard errors from it"
        )
    if comparison.rdf_rmsd_floor is not None and comparison.rdf_rmsd_floor > RDF_RMSD_TARGET:
        target_line += (
            f"; out of reach at these set sizes: two sets resampled from the reference "
            f"differ by {comparison.rdf_rmsd_floor:.3f}"
        )
    elif comparison.rdf_rmsd_floor is not None and comparison.rdf_rmsd_excess is not None:
        allowed = math.sqrt(RDF_RMSD_TARGET**2 - comparison.rdf_rmsd_floor**2)
        target_line += (
            f"; at these set sizes it needs an RDF RMSD beyond sampling noise <= {allowed:.3f}, "
            f"measured {comparison.rdf_rmsd_excess:.3f}"
        )

    rows = [
        ("model / reference", f"{gen.name} / {args.reference} ({ref_record['part']})"),
        ("structures (generated / reference)", f"{len(frames)} / {len(ref)}"),
        (
            "atoms, steps, sampler, noise scale, score gain",
            f"{len(frames[0])}, {steps}, {frames[0].info['sampler']}, "
            f"{frames[0].info.get('noise_scale', '-')}, {frames[0].info.get('score_gain', '-')}",
        ),
        (
            "generation wall time",
            f"{wall:.1f} s ({wall / len(frames):.2f} s/structure)"
            if wall is not None
            else f"not timed here (structures read from {args.frames})",
        ),
        (
            "density generated / reference",
            f"{comparison.density_generated:.3f} / {comparison.density_reference:.3f} g/cm3",
        ),
        (
            "RDF RMSD (rmax 5 A, 100 bins) +- standard error",
            f"{fmt(comparison.rdf_rmsd)} +- {fmt(comparison.rdf_rmsd_se)}",
        ),
        ("RDF RMSD floor of these set sizes", fmt(comparison.rdf_rmsd_floor)),
        ("RDF RMSD beyond sampling noise (any set size)", fmt(comparison.rdf_rmsd_excess)),
        (f"ADF RMSD cutoff {COMPARE_ADF_CUTOFF} A (1/deg)", fmt(comparison.adf_rmsd, ".3e")),
        (f"ADF RMSD cutoff {SI_ADF_CUTOFF} A (1/deg)", fmt(adf_si, ".3e")),
        (
            "closest pair generated / reference (A)",
            f"{comparison.closest_pair_generated:.3f} / {comparison.closest_pair_reference:.3f} "
            f"({comparison.close_pair_fraction:.0%} of generated cells with a close pair)",
        ),
        (
            f"relaxed {args.potential} energy generated (eV/atom)",
            f"{fmt(energy_gen['mean'])} +- {fmt(energy_gen['sd'])} (n={energy_gen['n']})",
        ),
        (
            f"relaxed {args.potential} energy reference (eV/atom)",
            f"{fmt(energy_ref['mean'])} +- {fmt(energy_ref['sd'])} (n={energy_ref['n']})",
        ),
    ]
    rows += [
        (f"4-fold Si, {rule}", f"{gen_f:.3f} generated / {ref_f:.3f} reference")
        for rule, (gen_f, ref_f) in fourfold.items()
    ]
    rows.append(
        (
            f"angles < {SMALL_ANGLE:g} deg within {SI_ADF_CUTOFF} A (3-rings)",
            f"{small[0]:.4f} generated / {small[1]:.4f} reference",
        )
    )
    print(format_table("quality-a-si", rows))
    print(target_line)
    return {
        "model": args.model,
        "model_name": gen.name,
        "reference": ref_record,
        "n": len(frames),
        "atoms": len(frames[0]),  # --atoms, or what --frames holds
        "cell_lengths_A": frames[0].cell.lengths().tolist(),
        "typical_density": gen.info.typical.density if gen.info.typical else None,
        "steps": steps,
        "sampler": frames[0].info["sampler"],
        "noise_scale": frames[0].info.get("noise_scale"),
        "score_gain": frames[0].info.get("score_gain"),
        "seed": args.seed,
        "generation_wall_s": wall,
        "frames_file": args.frames,
        "warnings": caught,
        "comparison": comparison.to_dict(),
        "rdf_rmsd": comparison.rdf_rmsd,
        "rdf_rmsd_se": comparison.rdf_rmsd_se,
        "adf_rmsd": {str(COMPARE_ADF_CUTOFF): comparison.adf_rmsd, str(SI_ADF_CUTOFF): adf_si},
        "energy": {"potential": args.potential, "generated": energy_gen, "reference": energy_ref},
        "fourfold_si": {
            rule: {"generated": g, "reference": r} for rule, (g, r) in fourfold.items()
        },
        "small_angle_fraction": {
            "below_deg": SMALL_ANGLE,
            "cutoff_A": SI_ADF_CUTOFF,
            "generated": small[0],
            "reference": small[1],
        },
        "target": {
            "rdf_rmsd_max": RDF_RMSD_TARGET,
            "steps": TARGET_STEPS,
            "pass": passed,
            "line": target_line,
        },
    }


# ----------------------------------------------------------------------------- quality: SiO2


def elastic_options(analyzer: Analyzer, method: str | None) -> dict[str, Any]:
    """Keyword arguments for `Analyzer.elastic`: the label settings of the a-sio2
    protocol (relaxation tolerance and strains per pattern), so that measured and target
    moduli agree, plus ``method`` when given and supported."""
    from amtoolkit.workflows.a_sio2 import ASiO2Protocol

    options: dict[str, Any] = {
        "fmax": ASiO2Protocol.relax_fmax,
        "n_steps": ASiO2Protocol.elastic_steps,
    }
    if method is None:
        return options
    if "method" not in inspect.signature(analyzer.elastic).parameters:
        raise fail(f"--elastic-method {method}: Analyzer.elastic has no 'method' option here")
    return {**options, "method": method}


def measure_property(name: str, frames: Sequence[Atoms], analyzer: Analyzer, options: dict):
    """Per-structure measured `name` (GPa or Si atoms per ring) and failures."""
    if name == "shear_modulus":
        return potential_values(
            analyzer, "elastic", frames, lambda r: r.shear_modulus[0], **options
        )

    def mean_ring(atoms: Atoms) -> float:
        counts = analyzer.rings(atoms, count_species="Si").per_structure[0]
        total = sum(counts.values())
        if not total:
            raise ValueError("no Si-O rings up to 12 Si atoms")
        return sum(size * c for size, c in counts.items()) / total

    return per_frame(mean_ring, frames)


def target_values(lo: float, hi: float, count: int, beyond: float) -> np.ndarray:
    """`count` targets evenly over [lo, hi] widened by `beyond` x (hi - lo) at each end."""
    width = hi - lo
    return np.linspace(lo - beyond * width, hi + beyond * width, count)


def property_sweep(
    gen: Generator,
    name: str,
    lo: float,
    hi: float,
    analyzer: Analyzer,
    args: argparse.Namespace,
    options: dict,
) -> tuple[dict[str, Any], list[Atoms]]:
    """Generate `per_target` structures at each target of `name`, measure, score."""
    targets = target_values(lo, hi, args.targets, args.beyond)
    per_structure = np.repeat(targets, args.per_target)
    frames, wall, caught = generate(
        gen,
        len(per_structure),
        steps=args.steps,
        noise_scale=args.noise_scale,
        score_gain=args.score_gain,
        guidance=args.guidance,
        seed=args.seed,
        progress=args.progress,
        rebalance=args.rebalance,
        **{name: per_structure.tolist()},
    )
    start = time.perf_counter()
    measured, failures = measure_property(name, frames, analyzer, options)
    measure_wall = time.perf_counter() - start
    measured = np.asarray(measured)
    balanced = np.array([charge_balanced(a) for a in frames])
    inside = (per_structure >= lo) & (per_structure <= hi)
    by_target = []
    for value in targets:
        mean, sd, n_ok = mean_sd(measured[per_structure == value])
        by_target.append(
            {
                "target": float(value),
                "mean": mean,
                "sd": sd,
                "n": n_ok,
                "in_range": bool(lo <= value <= hi),
            }
        )
    result = {
        "property": name,
        "training_range": [lo, hi],
        "targets": targets.tolist(),
        "per_target": args.per_target,
        "target_per_structure": per_structure.tolist(),
        "measured": measured.tolist(),
        "charge_balanced": balanced.tolist(),
        "charge_balanced_fraction": float(balanced.mean()),
        "relabelled": [int(a.info.get("relabelled", 0)) for a in frames],
        "atoms_per_structure": [len(a) for a in frames],
        "errors": {
            "all": errors_block(per_structure, measured),
            "in_range": errors_block(per_structure[inside], measured[inside]),
            "beyond_range": errors_block(per_structure[~inside], measured[~inside]),
            "charge_balanced_only": errors_block(per_structure[balanced], measured[balanced]),
        },
        "by_target": by_target,
        "failures": failures,
        "warnings": caught,
        "generation_wall_s": wall,
        "measurement_wall_s": measure_wall,
    }
    return result, frames


def print_sweep(result: dict[str, Any]) -> None:
    """Per-target table and error summary of one property sweep."""
    name = result["property"]
    lo, hi = result["training_range"]
    print(f"\n{name}: training range [{lo:.3f}, {hi:.3f}], {result['per_target']} per target")
    print(f"{'target':>10} {'measured':>10} {'sd':>8} {'n':>3}  range")
    for row in result["by_target"]:
        where = "in" if row["in_range"] else "beyond"
        print(
            f"{row['target']:10.3f} {fmt(row['mean'], '10.3f')} {fmt(row['sd'], '8.3f')} "
            f"{row['n']:3d}  {where}"
        )
    rows = [
        (
            part,
            f"MAE {fmt(e['mae'], '.3f')}  RMSE {fmt(e['rmse'], '.3f')}  "
            f"MAPE {fmt(e['mape'], '.1f')}%  Spearman {fmt(e['spearman'], '.3f')}  n={e['n']}",
        )
        for part, e in result["errors"].items()
    ]
    rows.append(("charge-balanced fraction", f"{result['charge_balanced_fraction']:.3f}"))
    relabelled = np.asarray(result["relabelled"])
    rows.append(
        ("relabelled structures / atoms", f"{np.count_nonzero(relabelled)} / {relabelled.sum()}")
    )
    rows.append(("failed measurements", str(len(result["failures"]))))
    print(format_table(f"{name}: target vs measured", rows))


def quality_sio2(args: argparse.Namespace) -> dict[str, Any]:
    """Inverse design of a-SiO2 on shear modulus and ring size (see the module docstring)."""
    gen = load_generator(args.model, args.device)
    analyzer = Analyzer(args.potential, workers=args.workers)
    options = elastic_options(analyzer, args.elastic_method)
    ref, ref_record = reference_frames(
        args.reference, gen.info.dataset, args.max_reference, args.seed, args.all_reference
    )
    ranges = dict(gen.info.typical.property_ranges) if gen.info.typical else {}
    out: dict[str, Any] = {
        "model": args.model,
        "model_name": gen.name,
        "noise_scale": args.noise_scale,
        "score_gain": args.score_gain,
        "guidance": args.guidance,
        "reference": ref_record,
        "potential": args.potential,
        "elastic_options": options,
        "beyond": args.beyond,
        "sweeps": {},
        "skipped": {},
    }
    generated: list[Atoms] = []
    for name in args.properties:
        if name not in gen.property_names:
            out["skipped"][name] = f"the model is not conditioned on it ({gen.property_names})"
            continue
        if name not in ranges:
            out["skipped"][name] = "the model card has no training range for it"
            continue
        lo, hi = ranges[name]
        result, frames = property_sweep(gen, name, lo, hi, analyzer, args, options)
        out["sweeps"][name] = result
        generated += frames
        print_sweep(result)
    for name, why in out["skipped"].items():
        print(f"{name}: skipped: {why}")
    if generated:
        comparison = Analyzer().compare(generated, ref)
        out["comparison"] = comparison.to_dict()
        out["charge_balanced_fraction"] = float(np.mean([charge_balanced(a) for a in generated]))
        rows = [
            ("model / reference", f"{gen.name} / {args.reference} ({ref_record['part']})"),
            ("structures (generated / reference)", f"{len(generated)} / {len(ref)}"),
            ("RDF RMSD (all generated)", fmt(comparison.rdf_rmsd)),
            (f"ADF RMSD cutoff {COMPARE_ADF_CUTOFF} A (1/deg)", fmt(comparison.adf_rmsd, ".3e")),
            (
                "density generated / reference",
                f"{comparison.density_generated:.3f} / {comparison.density_reference:.3f} g/cm3",
            ),
            ("charge-balanced fraction", f"{out['charge_balanced_fraction']:.3f}"),
        ]
        print(format_table("quality-sio2: structure of everything generated", rows))
    return out


# ----------------------------------------------------------------------------- speed


def paper_size_checkpoint(stem: Path) -> Path:
    """Save an untrained paper-size a-Si model (no ghosts, no properties) at `stem`."""
    from amtoolkit.checkpoint import ModelInfo, Typical, save_checkpoint
    from amtoolkit.data.vocabulary import ElementVocabulary
    from amtoolkit.diffusion import MaterialSDE
    from amtoolkit.nn import DenoiserConfig, ScoreDenoiser

    torch.manual_seed(0)
    config = DenoiserConfig(n_classes=2, **PAPER_SIZE_MODEL)
    info = ModelInfo(
        name="paper-size-untrained",
        model=config,
        sde=MaterialSDE(),
        vocabulary=ElementVocabulary.from_elements(["Si"]),
        typical=Typical(n_atoms=216, density=A_SI_DENSITY, composition={"Si": 1.0}),
        dataset={"note": "untrained weights for timing only"},
    )
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(stem, ScoreDenoiser(config), info)
    return stem


def time_steps(gen: Generator, n_atoms: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per step of `generate(1, n_atoms)` and the per-run overhead.

    Best of `repeats` wall times of 1 and of 1 + `steps` steps (one untimed warm-up run
    of 1 step first); per step = (t(1 + steps) - t(1)) / steps, overhead = t(1) - per step.
    """

    def run(k: int) -> float:
        start = time.perf_counter()
        gen.generate(1, n_atoms=n_atoms, steps=k, seed=0, progress=False)
        return time.perf_counter() - start

    run(1)
    one = min(run(1) for _ in range(repeats))
    many = min(run(1 + steps) for _ in range(repeats))
    per_step = (many - one) / steps
    return {
        "atoms": n_atoms,
        "seconds_per_step": per_step,
        "overhead_s": one - per_step,
        "timed_steps": steps,
        "repeats": repeats,
    }


def scaling_point(args: argparse.Namespace) -> dict[str, Any]:
    """One size of the scaling curve, in this (fresh) process; see --point."""
    torch.set_num_threads(args.threads)
    gen = Generator.from_checkpoint(args.checkpoint, device=args.device)
    before = peak_rss_mib()
    row = time_steps(gen, args.point, args.steps, repeats=1)
    row["atoms_per_step_per_s"] = args.point / row["seconds_per_step"]
    row["peak_rss_mib"] = peak_rss_mib()
    row["peak_rss_before_mib"] = before
    if args.device.startswith("cuda"):
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def run_point(n_atoms: int, checkpoint: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`scaling_point` for `n_atoms` in a child process (its own VmHWM)."""
    steps = 1 if n_atoms >= LARGE_SIZES[-1] else args.steps
    cmd = [
        sys.executable,
        __file__,
        "speed",
        "--point",
        str(n_atoms),
        "--checkpoint",
        str(checkpoint),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--steps",
        str(steps),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"atoms": n_atoms, "error": tail, "returncode": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per denoising step, structures per hour and the scaling with size."""
    workdir = Path(args.workdir)
    checkpoint = paper_size_checkpoint(workdir / "paper-size" / "paper-size")
    gen = Generator.from_checkpoint(checkpoint, device=args.device)
    params = sum(p.numel() for p in gen.model.parameters())
    print(
        f"speed: paper-size model ({params} parameters, untrained), {args.threads} threads, "
        f"{args.device}; steps through Generator.generate (sde sampler)"
    )
    sizes = [time_steps(gen, n, args.steps, args.repeats) for n in args.sizes]
    print(f"{'atoms':>7} {'s/step':>9} {'overhead s':>11}")
    for row in sizes:
        print(f"{row['atoms']:7d} {row['seconds_per_step']:9.4f} {row['overhead_s']:11.4f}")
    out: dict[str, Any] = {"model": dict(PAPER_SIZE_MODEL, parameters=params), "sizes": sizes}
    at_216 = next((r for r in sizes if r["atoms"] == 216), None)
    if at_216 is not None:
        seconds = TARGET_STEPS * at_216["seconds_per_step"] + at_216["overhead_s"]
        out["structure_216_at_200_steps_s"] = seconds
        out["structures_per_hour_216_at_200_steps"] = 3600.0 / seconds
        print(
            f"216 atoms at {TARGET_STEPS} steps: {seconds:.1f} s per structure, "
            f"{3600.0 / seconds:.0f} structures per hour (one at a time)"
        )

    scaling_sizes = list(args.scaling_sizes) + (list(LARGE_SIZES) if args.large else [])
    points = [run_point(n, checkpoint, args) for n in scaling_sizes]
    print(f"{'atoms':>7} {'s/step':>9} {'us/atom':>8} {'peak RSS MiB':>13}")
    for p in points:
        if "error" in p:
            print(f"{p['atoms']:7d} failed: {p['error']}")
            continue
        print(
            f"{p['atoms']:7d} {p['seconds_per_step']:9.3f} "
            f"{1e6 * p['seconds_per_step'] / p['atoms']:8.1f} {fmt(p['peak_rss_mib'], '13.0f')}"
        )
    good = [p for p in points if "error" not in p and p["seconds_per_step"] > 0]
    slope = None
    if len(good) >= 2:
        x = np.log([p["atoms"] for p in good])
        y = np.log([p["seconds_per_step"] for p in good])
        slope = float(np.polyfit(x, y, 1)[0])
        print(f"log-log slope of s/step vs atoms: {slope:.3f} (1 = linear)")
    out["scaling"] = {"points": points, "loglog_slope": slope}
    return out


# ----------------------------------------------------------------------------- smoke models


def beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite SiO2 (24 atoms): diamond Si with O at the Si-Si midpoints."""
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    si = bulk("Si", "diamond", a=a, cubic=True)
    i, j, vec = neighbor_list("ijD", si, 1.05 * a * np.sqrt(3) / 4)
    first = i < j
    return si + Atoms(f"O{first.sum()}", positions=si.positions[i[first]] + 0.5 * vec[first])


def smoke_sio2_dataset(path: Path, n_frames: int = 10, seed: int = 0) -> Path:
    """Strained, rattled beta-cristobalite cells with stand-in property labels.

    The labels only give the smoke model ranges to sweep; they are not measured:
    ``shear_modulus`` = 30 + 40 (rho - 2.2) GPa, ``ring_size`` uniform in [5.5, 7].
    """
    from amtoolkit.analysis.energy import density

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_frames):
        atoms = beta_cristobalite()
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.05, 0.05, 3))[:, None], scale_atoms=True)
        atoms.rattle(0.15, seed=seed + k)
        atoms.wrap()
        atoms.info["ring_size"] = float(rng.uniform(5.5, 7.0))
        atoms.info["shear_modulus"] = 30.0 + 40.0 * (density(atoms) - 2.2)
        frames.append(atoms)
    from ase.io import write

    write(path, frames, format="extxyz")
    return path


def train_smoke_models(workdir: Path) -> dict[str, str]:
    """Train the tiny a-Si model (configs/tiny.yaml) and a tiny SiO2 one; checkpoint stems."""
    import yaml

    from amtoolkit.training import TrainConfig, load_config

    si = load_config(TINY_CONFIG).replace(out_dir=str(workdir / "tiny-si"), tensorboard=False)
    si_stem = _args.train_smoke(si)
    data = smoke_sio2_dataset(workdir / "tiny-sio2.extxyz")
    sio2_dict = yaml.safe_load(TINY_CONFIG.read_text())
    sio2_dict.update(
        name="tiny-sio2",
        out_dir=str(workdir / "tiny-sio2"),
        tensorboard=False,
        epochs=SMOKE_SIO2_EPOCHS,
    )
    sio2_dict["data"].update(
        dataset=str(data), property_names=list(SIO2_PROPERTIES), max_density=0.09, val_fraction=0.2
    )
    sio2_dict["sampling"] = {"sampler": "sde", "steps": 50, "guidance": 1.0}
    sio2_stem = _args.train_smoke(TrainConfig.from_dict(sio2_dict))
    return {
        "a-si": str(si_stem),
        "a-si-reference": str(si.data.dataset),
        "a-sio2": str(sio2_stem),
        "a-sio2-reference": str(data),
    }


# ----------------------------------------------------------------------------- command line


def add_common(
    parser: argparse.ArgumentParser, suppress: bool, script: str = "bench_generator"
) -> None:
    """Options every benchmark takes (`suppress`: no defaults, so the top level's stay);
    also used by the sibling scripts bench_hmc.py and bench_shortcut.py."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--json",
        type=Path,
        default=default(None),
        help=f"output JSON (default benchmarks/results/{script}*.json)",
    )
    parser.add_argument(
        "--threads",
        type=_args.positive_int,
        default=default(None),
        help="torch.set_num_threads (default 2; 1 with --smoke)",
    )
    parser.add_argument(
        "--seed", type=_args.non_negative_int, default=default(0), help="generation seed"
    )
    parser.add_argument(
        "--workers",
        type=_args.positive_int,
        default=default(os.cpu_count() or 1),
        help="processes for relaxations and elastic constants (default: the CPU count)",
    )
    parser.add_argument("--device", type=_args.device, default=default("cpu"), help="cpu or cuda")
    parser.add_argument(
        "--smoke",
        action="store_true",
        default=default(False),
        help="tiny models trained into --workdir and tiny numbers",
    )
    parser.add_argument(
        "--workdir",
        default=default(None),
        help="folder for smoke models (and the speed checkpoint; default: a new temporary folder)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        default=default(None),
        help="show generation progress bars",
    )


def start_report(name: str, args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """Set torch threads (default 2, 1 with --smoke) and return the JSON report's header
    (benchmark name, smoke flag, command line, machine); for the sibling scripts."""
    if args.threads is None:
        args.threads = 1 if args.smoke else 2
    torch.set_num_threads(args.threads)
    return {
        "benchmark": name,
        "smoke": bool(args.smoke),
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
    }


def write_report(report: dict[str, Any], path: Path | None, script: str = "") -> None:
    """Write a benchmark's JSON report (strict: NaN becomes null) and say where; with no
    `path`, to benchmarks/results/<script>[_smoke].json (the sibling scripts' default)."""
    if path is None:
        path = RESULTS / f"{script}{'_smoke' if report.get('smoke') else ''}.json"
    _args.write_json(path, report)
    print(f"\nwrote {path}")


def temporary_workdir(stack: contextlib.ExitStack, args: argparse.Namespace, prefix: str) -> None:
    """Give ``args.workdir`` a temporary folder, removed when `stack` closes, unless set."""
    if args.workdir is None:
        args.workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))
    else:  # a new folder: the smoke data are written before any model creates it
        Path(args.workdir).mkdir(parents=True, exist_ok=True)


def add_reference_options(parser: argparse.ArgumentParser) -> None:
    """--max-reference and --all-reference (which reference frames a benchmark uses)."""
    parser.add_argument(
        "--max-reference",
        type=_args.positive_int,
        default=100,
        help="largest number of reference frames used (seeded subset)",
    )
    parser.add_argument(
        "--all-reference",
        action="store_true",
        help="use every reference frame, not only the model's held-out split",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per benchmark, and `all` (named explicitly: with
    no subcommand `main` prints the usage and exits 2)."""
    parser = _args.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="benchmark", metavar="{quality-a-si,quality-sio2,speed,all}")
    a_si = sub.add_parser("quality-a-si", help="a-Si structure against a reference")
    sio2 = sub.add_parser("quality-sio2", help="a-SiO2 property targets against measurements")
    fast = sub.add_parser("speed", help="seconds per step and scaling with size")
    every = sub.add_parser("all", help="the three benchmarks (prefixed model options)")
    for p in (a_si, sio2, fast, every):
        add_common(p, suppress=True)

    # options whose name differs between a subcommand and `all`: (own name, `all` name)
    def own(p: argparse.ArgumentParser, name: str, dest: str, **kw: Any) -> None:
        flag = name if p is not every else f"--{dest.replace('_', '-')}"
        p.add_argument(flag, dest=dest, **kw)

    for p in (a_si, every):
        own(p, "--model", "a_si_model", default="a-si", help="a-Si model name or checkpoint")
        own(
            p,
            "--reference",
            "a_si_reference",
            default="a-si-anneal",
            help="a-Si reference: dataset name or file",
        )
        own(
            p,
            "--steps",
            "a_si_steps",
            type=_args.positive_int,
            default=TARGET_STEPS,
            help="reverse steps",
        )
        p.add_argument(
            "--n", type=_args.positive_int, default=32, help="a-Si structures to generate"
        )
        p.add_argument(
            "--atoms", type=_args.positive_int, default=216, help="atoms per generated a-Si cell"
        )
        p.add_argument(
            "--sampler",
            default=None,
            choices=_args.sampler_choices(),
            help="sampler (sde, ode, hmc, shortcut: those the model supports; default: the card's)",
        )
        p.add_argument(
            "--frames",
            default=None,
            help="measure the structures in this file (made by --model, e.g. on a GPU) "
            "instead of generating them",
        )
        p.add_argument(
            "--sw-potential",
            dest="a_si_potential",
            type=_args.potential,
            default="sw-si",
            help="potential for energies",
        )
    for p in (sio2, every):
        own(p, "--model", "sio2_model", default="a-sio2", help="SiO2 model name or checkpoint")
        own(
            p,
            "--reference",
            "sio2_reference",
            default="a-sio2",
            help="SiO2 reference: dataset name or file",
        )
        own(
            p,
            "--steps",
            "sio2_steps",
            type=_args.positive_int,
            default=None,
            help="reverse steps (default: the model card's)",
        )
        p.add_argument(
            "--targets", type=_args.positive_int, default=8, help="target values per property"
        )
        p.add_argument(
            "--per-target", type=_args.positive_int, default=4, help="structures per target"
        )
        p.add_argument(
            "--beyond",
            type=_args.non_negative_float,
            default=0.2,
            help="widen the training range by this fraction of it at each end",
        )
        p.add_argument(
            "--properties",
            nargs="+",
            default=list(SIO2_PROPERTIES),
            choices=SIO2_PROPERTIES,
            help="properties to sweep",
        )
        p.add_argument(
            "--elastic-method",
            default=None,
            choices=("strain", "hessian"),
            help="Analyzer.elastic(method=...), when this amtoolkit supports it",
        )
        p.add_argument(
            "--tersoff-potential",
            dest="sio2_potential",
            type=_args.potential,
            default="tersoff-sio2",
            help="potential for the shear modulus",
        )
        p.add_argument(
            "--no-rebalance",
            dest="rebalance",
            action="store_false",
            help="leave structures unbalanced after the restarts as they are (rebalance=False)",
        )
        p.add_argument(
            "--guidance",
            type=_args.non_negative_float,
            default=None,
            help="classifier-free guidance weight w (default: the card's)",
        )
    for p in (a_si, sio2, every):
        p.add_argument(
            "--noise-scale",
            type=_args.noise_scale,
            default=None,
            help="sde: factor on the injected noise, 0-10 (default: the card's)",
        )
        p.add_argument(
            "--score-gain",
            type=_args.score_gain,
            default=None,
            help="sde/ode/shortcut: score factor 1 + gain * t, 0-100 (default: the card's)",
        )
        add_reference_options(p)
    for p in (fast, every):
        own(
            p,
            "--steps",
            "speed_steps",
            type=_args.positive_int,
            default=10,
            help="timed steps per size (a 1-step run is subtracted)",
        )
        p.add_argument("--sizes", type=_args.positive_int, nargs="+", default=list(SPEED_SIZES))
        p.add_argument(
            "--repeats", type=_args.positive_int, default=3, help="best of this many runs"
        )
        p.add_argument(
            "--scaling-sizes", type=_args.positive_int, nargs="+", default=list(SCALING_SIZES)
        )
        p.add_argument("--large", action="store_true", help=f"add {LARGE_SIZES} atoms")
    fast.add_argument("--point", type=_args.positive_int, help=argparse.SUPPRESS)  # one size
    fast.add_argument("--checkpoint", help=argparse.SUPPRESS)
    return parser


def namespace_for(name: str, args: argparse.Namespace) -> argparse.Namespace:
    """The options of benchmark `name` under their plain names (model, steps, ...)."""
    common = {
        k: getattr(args, k) for k in ("seed", "device", "threads", "workdir", "progress", "workers")
    }
    if name == "quality-a-si":
        return argparse.Namespace(
            **common,
            model=args.a_si_model,
            reference=args.a_si_reference,
            n=args.n,
            steps=args.a_si_steps,
            atoms=args.atoms,
            sampler=args.sampler,
            frames=args.frames,
            noise_scale=args.noise_scale,
            score_gain=args.score_gain,
            potential=args.a_si_potential,
            max_reference=args.max_reference,
            all_reference=args.all_reference,
        )
    if name == "quality-sio2":
        return argparse.Namespace(
            **common,
            model=args.sio2_model,
            reference=args.sio2_reference,
            steps=args.sio2_steps,
            targets=args.targets,
            per_target=args.per_target,
            beyond=args.beyond,
            properties=args.properties,
            elastic_method=args.elastic_method,
            noise_scale=args.noise_scale,
            score_gain=args.score_gain,
            potential=args.sio2_potential,
            rebalance=args.rebalance,
            guidance=args.guidance,
            max_reference=args.max_reference,
            all_reference=args.all_reference,
        )
    return argparse.Namespace(
        **common,
        sizes=args.sizes,
        steps=args.speed_steps,
        repeats=args.repeats,
        scaling_sizes=args.scaling_sizes,
        large=args.large,
    )


def apply_smoke(args: argparse.Namespace, models: dict[str, str]) -> None:
    """Point the quality benchmarks at the smoke models and shrink every number."""
    a_si, sio2, fast = SMOKE["quality-a-si"], SMOKE["quality-sio2"], SMOKE["speed"]
    if models:
        args.a_si_model, args.a_si_reference = models["a-si"], models["a-si-reference"]
        args.sio2_model, args.sio2_reference = models["a-sio2"], models["a-sio2-reference"]
    args.n, args.a_si_steps, args.atoms = a_si["n"], a_si["steps"], a_si["atoms"]
    args.targets, args.per_target, args.sio2_steps = (
        sio2["targets"],
        sio2["per_target"],
        sio2["steps"],
    )
    args.max_reference = min(args.max_reference, a_si["max_reference"])
    args.sizes, args.speed_steps = fast["sizes"], fast["steps"]
    args.scaling_sizes, args.repeats, args.large = fast["scaling_sizes"], fast["repeats"], False


def fill_defaults(args: argparse.Namespace) -> None:
    """Defaults of the options a subcommand did not define (e.g. speed's for quality-a-si)."""
    defaults = vars(build_parser().parse_args(["all"]))
    for key, value in defaults.items():
        if not hasattr(args, key):
            setattr(args, key, value)


def default_json(benchmark: str, smoke: bool) -> Path:
    suffix = "" if benchmark == "all" else "_" + benchmark  # as the committed results
    return RESULTS / f"bench_generator{suffix}{'_smoke' if smoke else ''}.json"


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "quality-a-si": quality_a_si,
    "quality-sio2": quality_sio2,
    "speed": speed,
}


def run_benchmarks(
    names: Sequence[str], args: argparse.Namespace, argv: list[str] | None
) -> dict[str, Any]:
    """Run `names` in order (training the smoke models first with --smoke); the report."""
    report: dict[str, Any] = {
        "benchmark": "bench_generator",
        "smoke": bool(args.smoke),
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "workdir": str(args.workdir),
    }
    if args.smoke:
        report["note"] = (
            "smoke run: tiny models (configs/tiny.yaml for a-Si; a tiny SiO2 model on "
            "stand-in labels), tiny cells and step counts; the figures only show that the "
            "script runs and mean nothing"
        )
        if any(name.startswith("quality") for name in names):
            start = time.perf_counter()
            models = train_smoke_models(Path(args.workdir))
            report["smoke_models"] = {**models, "train_wall_s": time.perf_counter() - start}
            apply_smoke(args, models)
            print(f"smoke: tiny models trained in {args.workdir}")
        else:
            apply_smoke(args, {})
    report["results"] = {}
    for name in names:
        print(f"\n== {name} ==")
        start = time.perf_counter()
        result = RUNNERS[name](namespace_for(name, args))
        result["wall_s"] = time.perf_counter() - start
        report["results"][name] = result
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmark is None:  # `all` takes hours: it is never started by default
        parser.print_usage(sys.stderr)
        raise _args.fail(
            f"name a benchmark: {', '.join(BENCHMARKS)} or all (the three; hours)",
            "bench_generator",
        )
    with _args.user_errors("bench_generator"):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """Run the benchmark(s) that `args` name and write the report."""
    if args.threads is None:
        args.threads = 1 if args.smoke else 2
    torch.set_num_threads(args.threads)
    _args.warn_if_loaded(args.threads)
    if getattr(args, "point", None) is not None:  # child process of the scaling curve
        args.steps = args.speed_steps
        print(json.dumps(scaling_point(args)))
        return {}
    fill_defaults(args)
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    with contextlib.ExitStack() as stack:
        temporary_workdir(stack, args, "bench_gen_")
        report = run_benchmarks(names, args, argv)

    write_report(report, args.json or default_json(args.benchmark, args.smoke))
    return report


if __name__ == "__main__":
    main()
