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
import platform
from pathlib import Path
from typing import Any

import _args  # benchmarks/_args.py: this script's folder is on sys.path
import numpy as np

from amtoolkit.analysis.compare import COMPARE_RDF_NBINS, COMPARE_RDF_RMAX
from amtoolkit.analysis.metrics import distribution_rmsd, rmsd_standard_error
from amtoolkit.analysis.rdf import rdf
from amtoolkit.data import open_dataset

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "bench_rmsd_error.json"
MIN_SET = 3  # structures per set: rmsd_standard_error needs 3 to estimate a covariance
MIN_DRAWS = 2  # draws per row: the scatter is a standard deviation (ddof 1)


def set_sizes(text: str) -> tuple[int, int]:
    """An argparse type: ``n_a,n_b``, two set sizes of at least `MIN_SET` structures."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(
            f"must be two set sizes n_a,n_b (e.g. 16,48), got {text!r}"
        )
    try:
        n_a, n_b = (int(n) for n in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be two integers n_a,n_b, got {text!r}") from None
    if min(n_a, n_b) < MIN_SET:
        raise argparse.ArgumentTypeError(
            f"each set needs at least {MIN_SET} structures (for its standard error), got {text}"
        )
    return n_a, n_b


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
    parser = _args.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="a-si-anneal", help="shipped name or HDF5 file")
    parser.add_argument(
        "--draws",
        type=_args.int_at_least(MIN_DRAWS),
        default=300,
        help="pairs of sets drawn per row",
    )
    parser.add_argument(
        "--sizes",
        type=set_sizes,
        nargs="+",
        default=[(16, 48), (32, 98)],
        metavar="N_A,N_B",
        help="set-size pairs (default 16,48 32,98)",
    )
    parser.add_argument(
        "--strain",
        type=_args.open_interval(-1.0, 1.0),
        default=0.004,
        help="strain of the first set's cells in the 'differ' case, in (-1, 1)",
    )
    parser.add_argument("--seed", type=_args.non_negative_int, default=0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="output JSON path")
    args = parser.parse_args(argv)
    with _args.user_errors("bench_rmsd_error"):  # e.g. a bad dataset name or file
        return run(args, parser)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The table of the module docstring, printed and written as JSON."""
    frames = list(open_dataset(args.dataset))
    for n_a, n_b in args.sizes:
        if n_a + n_b > len(frames):
            parser.error(
                f"--sizes {n_a},{n_b}: needs {n_a + n_b} frames, the dataset has {len(frames)}"
            )
    curves = {
        name: rdf(s, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS).per_structure
        for name, s in (("same", frames), ("differ", strained(frames, args.strain)))
    }
    rows = []
    print(f"{args.dataset}: {len(frames)} frames, {args.draws} draws per row")
    print(f"{'sizes':>8} {'case':>7} {'RMSD':>7} {'scatter':>8} {'SE':>8} {'SE/scatter':>11}")
    for n_a, n_b in args.sizes:
        sizes = f"{n_a},{n_b}"
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
    _args.write_json(args.json, result)
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
