"""How well `rmsd_standard_error` predicts the scatter of a set comparison's RDF RMSD.

    python benchmarks/bench_rmsd_error.py [--dataset a-si-anneal] [--draws 300]
                                          [--sizes 16,48 32,98] [--strain 0.004]
                                          [--json benchmarks/results/bench_rmsd_error.json]

Real RDFs (rmax 5 Å, 100 bins, as `compare`), two cases per pair of set sizes:

- same: both sets drawn, disjoint and without replacement, from the dataset's frames,
  so they differ only by sampling noise;
- differ: the first set's cells are first strained by ``--strain`` in every direction
  (atoms scaled with the cell), a real, structure-by-structure shift of g(r).

For each case, ``--draws`` pairs of sets are drawn; the scatter (standard deviation) of
their RDF RMSD is what the standard error should predict, and the mean standard error
over the draws is printed beside it with their ratio (1 = exact; above 1 errs high).
Disjoint draws from a finite set have the same variance of the difference of means as
independent draws, so no finite-population correction applies.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from amtoolkit.analysis.compare import COMPARE_RDF_NBINS, COMPARE_RDF_RMAX
from amtoolkit.analysis.metrics import distribution_rmsd, rmsd_standard_error
from amtoolkit.analysis.rdf import rdf
from amtoolkit.data import open_dataset

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "bench_rmsd_error.json"


def strained(frames, strain: float):
    """Copies of `frames` with cell and atoms scaled by 1 + `strain`."""
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.set_cell(atoms.cell * (1.0 + strain), scale_atoms=True)
        out.append(copy)
    return out


def scatter_and_error(
    first: np.ndarray, second: np.ndarray, n_a: int, n_b: int, draws: int, seed: int
) -> dict[str, float]:
    """RMSD scatter over `draws` disjoint draws (rows of `first` for the first set, of
    `second` for the second) and the mean standard error predicted from each draw."""
    rng = np.random.default_rng(seed)
    rmsds, errors = [], []
    for _ in range(draws):
        order = rng.permutation(len(first))
        a, b = first[order[:n_a]], second[order[n_a : n_a + n_b]]
        rmsds.append(distribution_rmsd(a.mean(axis=0), b.mean(axis=0)))
        errors.append(rmsd_standard_error(a, b))
    scatter, error = float(np.std(rmsds, ddof=1)), float(np.mean(errors))
    return {
        "mean_rmsd": float(np.mean(rmsds)),
        "scatter": scatter,
        "mean_standard_error": error,
        "sd_of_standard_error": float(np.std(errors, ddof=1)),
        "ratio": error / scatter,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="a-si-anneal", help="shipped name or HDF5 file")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--sizes", nargs="+", default=["16,48", "32,98"], help="n_a,n_b pairs")
    parser.add_argument("--strain", type=float, default=0.004)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    frames = list(open_dataset(args.dataset))
    curves = {
        name: rdf(s, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS).per_structure
        for name, s in (("same", frames), ("differ", strained(frames, args.strain)))
    }
    rows = []
    print(f"{args.dataset}: {len(frames)} frames, {args.draws} draws per row")
    print(f"{'sizes':>8} {'case':>7} {'RMSD':>7} {'scatter':>8} {'SE':>8} {'SE/scatter':>11}")
    for sizes in args.sizes:
        n_a, n_b = (int(n) for n in sizes.split(","))
        if n_a + n_b > len(frames):
            parser.error(
                f"--sizes {sizes}: needs {n_a + n_b} frames, the dataset has {len(frames)}"
            )
        for case in ("same", "differ"):
            row = {"n_a": n_a, "n_b": n_b, "case": case}
            row |= scatter_and_error(curves[case], curves["same"], n_a, n_b, args.draws, args.seed)
            rows.append(row)
            print(
                f"{sizes:>8} {case:>7} {row['mean_rmsd']:7.4f} {row['scatter']:8.4f} "
                f"{row['mean_standard_error']:8.4f} {row['ratio']:11.2f}"
            )
    result = {
        "dataset": args.dataset,
        "frames": len(frames),
        "draws": args.draws,
        "strain": args.strain,
        "seed": args.seed,
        "rows": rows,
        "machine": platform.platform(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
