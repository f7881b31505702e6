"""Speed and memory of the EGNN score denoiser at the seed papers' size (docs/models.md, *Speed*).

    python benchmarks/bench_denoiser.py [--json benchmarks/results/bench_denoiser.json]
                                        [--large] [--threads 2] [--device cpu]
                                        [--edge-chunk 32768]

Model: 4 layers, hidden 128, k = 8 vector channels, cutoff 6.5 Å, 2 element classes and
2 property columns, float32. Structures: atoms uniform in cubic cells at the a-Si number
density (0.0489 Å^-3, 2.28 g/cm3; ~56 neighbours within 6.5 Å, as in the real glass).

Measures (best of --repeats, torch.set_num_threads(--threads)):
- forward (no_grad, eval) for 216, 256 and 1000 atoms, with the neighbour search alone;
- forward + backward of an MSE loss (train mode) for the same sizes;
- scaling of one forward from 10^3 to 10^4 atoms (10^5 with --large), each point in a
  fresh process so that its peak RSS (resource.getrusage) is its own; the log-log slope
  of time against atoms should be ~1 (linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _args  # benchmarks/_args.py: this script's folder is on sys.path
import numpy as np
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.nn import DenoiserConfig, ScoreDenoiser, periodic_edges

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "bench_denoiser.json"
A_SI_DENSITY = 2.28 / 28.0855 * 0.602214076  # atoms / Å^3 (2.28 g/cm3)
CONFIG = DenoiserConfig(
    n_classes=2,
    property_names=("shear_modulus", "ring_size"),
    hidden=128,
    layers=4,
    vector_channels=8,
    cutoff=6.5,
    n_norm=40.0,
)
FORWARD_SIZES = (216, 256, 1000)
SCALING_SIZES = (1000, 2000, 5000, 10000)
LARGE_SIZE = 100_000
FORWARD_256_BUDGET_S = 0.06  # s, speed budget of one 256-atom forward: float32, 2 CPU threads


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_batch(n_atoms: int, device: str, seed: int = 0) -> Batch:
    """One cubic cell of `n_atoms` uniform random atoms at the a-Si density."""
    g = torch.Generator().manual_seed(seed)
    length = (n_atoms / A_SI_DENSITY) ** (1.0 / 3.0)
    classes = torch.randint(0, CONFIG.n_classes, (n_atoms,), generator=g)
    batch = Batch(
        positions=torch.rand(n_atoms, 3, generator=g) * length,
        elements=torch.nn.functional.one_hot(classes, CONFIG.n_classes).float(),
        cell=torch.eye(3)[None] * length,
        system_idx=torch.zeros(n_atoms, dtype=torch.long),
        properties=torch.randn(1, len(CONFIG.property_names), generator=g),
    )
    return batch.to(device)


def best_time(fn: Callable[[], Any], repeats: int, device: str) -> float:
    """Best wall time (s) of `repeats` calls after one warm-up call."""
    fn()
    best = math.inf
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def make_model(device: str, edge_chunk_size: int) -> ScoreDenoiser:
    torch.manual_seed(0)
    config = DenoiserConfig.from_dict({**CONFIG.to_dict(), "edge_chunk_size": edge_chunk_size})
    return ScoreDenoiser(config).to(device)


def bench_size(model: ScoreDenoiser, n_atoms: int, repeats: int, device: str) -> dict[str, Any]:
    batch = make_batch(n_atoms, device)
    t = torch.full((1,), 0.5, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    src, _, _ = periodic_edges(batch.positions, batch.cell, batch.system_idx, CONFIG.cutoff)

    def forward() -> None:
        with torch.no_grad():
            model.eval()(batch, t, generator=g)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        eps_x, eps_e = model(batch, t, generator=g)
        loss = eps_x.pow(2).mean() + 0.5 * eps_e.pow(2).mean()
        loss.backward()

    def search() -> None:
        periodic_edges(batch.positions, batch.cell, batch.system_idx, CONFIG.cutoff)

    return {
        "atoms": n_atoms,
        "edges": int(src.numel()),
        "neighbours_per_atom": src.numel() / n_atoms,
        "forward_s": best_time(forward, repeats, device),
        "forward_backward_s": best_time(forward_backward, repeats, device),
        "neighbour_search_s": best_time(search, repeats, device),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB.

    Linux VmHWM (reset by exec) when available: ``ru_maxrss`` is inherited from the parent
    across fork + exec, so a child would report at least the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scaling_point(n_atoms: int, repeats: int, device: str, chunk: int) -> dict[str, Any]:
    """One forward of `n_atoms` (run in its own process; see --point)."""
    model = make_model(device, chunk)
    batch = make_batch(n_atoms, device)
    baseline = peak_rss_mib()
    t = torch.full((1,), 0.5, device=device)

    def forward() -> None:
        with torch.no_grad():
            model.eval()(batch, t, generator=torch.Generator(device=device).manual_seed(0))

    seconds = best_time(forward, repeats, device)
    out = {
        "atoms": n_atoms,
        "forward_s": seconds,
        "us_per_atom": 1e6 * seconds / n_atoms,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_forward_mib": baseline,
    }
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_point_subprocess(n_atoms: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--point", str(n_atoms), "--threads", str(args.threads)]
    repeats = 1 if n_atoms >= LARGE_SIZE else args.scaling_repeats
    cmd += ["--device", args.device, "--scaling-repeats", str(repeats)]
    cmd += ["--edge-chunk", str(args.edge_chunk)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"atoms": n_atoms, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _args.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="output JSON path")
    parser.add_argument(
        "--threads", type=_args.positive_int, default=2, help="torch.set_num_threads"
    )
    parser.add_argument("--device", type=_args.device, default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--repeats", type=_args.positive_int, default=5, help="timed calls per size"
    )
    parser.add_argument(
        "--scaling-repeats", type=_args.positive_int, default=2, help="timed calls per point"
    )
    parser.add_argument(
        "--edge-chunk",
        type=_args.non_negative_int,
        default=CONFIG.edge_chunk_size,
        help="DenoiserConfig.edge_chunk_size (0: all edges at once)",
    )
    parser.add_argument("--large", action="store_true", help=f"add the {LARGE_SIZE}-atom point")
    parser.add_argument("--point", type=_args.positive_int, help=argparse.SUPPRESS)  # one point
    args = parser.parse_args(argv)
    with _args.user_errors("bench_denoiser"):
        return run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark of the module docstring (or, with ``--point``, one scaling point)."""
    torch.set_num_threads(args.threads)
    _args.warn_if_loaded(args.threads)

    if args.point is not None:
        point = scaling_point(args.point, args.scaling_repeats, args.device, args.edge_chunk)
        print(json.dumps(point))
        return {}

    model = make_model(args.device, args.edge_chunk)
    report: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": args.device
            if args.device == "cpu"
            else torch.cuda.get_device_name(torch.device(args.device)),
            "threads": args.threads,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
        },
        "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "density_per_A3": A_SI_DENSITY,
        "dtype": "float32",
        "design_forward_256_s": FORWARD_256_BUDGET_S,  # the budget; key kept for old readers
    }
    print(
        f"{report['parameters']} parameters, {args.threads} threads, {args.device}, "
        f"edge chunks of {args.edge_chunk}"
    )
    bench_size(model, FORWARD_SIZES[-1], 1, args.device)  # warm up allocator and kernels
    report["sizes"] = []
    for n in FORWARD_SIZES:
        row = bench_size(model, n, args.repeats, args.device)
        report["sizes"].append(row)
        print(
            f"{n:>6} atoms {row['neighbours_per_atom']:5.1f} nb/atom: forward "
            f"{row['forward_s']:.4f} s, forward+backward {row['forward_backward_s']:.4f} s, "
            f"neighbour search {row['neighbour_search_s']:.4f} s"
        )

    sizes = [*SCALING_SIZES, LARGE_SIZE] if args.large else list(SCALING_SIZES)
    points = []
    for n in sizes:
        point = run_point_subprocess(n, args)
        points.append(point)
        if "error" in point:
            print(f"{n:>6} atoms: failed: {point['error']}")
            continue
        print(
            f"{n:>6} atoms: forward {point['forward_s']:.3f} s "
            f"({point['us_per_atom']:.1f} us/atom), peak RSS {point['peak_rss_mib']:.0f} MiB "
            f"({point['rss_before_forward_mib']:.0f} MiB before the forward)"
        )
    good = [p for p in points if "error" not in p]
    slope = None
    if len(good) >= 2:
        slope = float(
            np.polyfit(
                np.log([p["atoms"] for p in good]), np.log([p["forward_s"] for p in good]), 1
            )[0]
        )
        print(f"log-log slope of forward time vs atoms: {slope:.3f} (1 = linear)")
    report["scaling"] = {"points": points, "loglog_slope": slope}

    _args.write_json(args.json, report)
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
