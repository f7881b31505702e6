"""Compare SiO2 glasses quenched at two cooling rates: RDF, bond angles, rings, S(q).

Usage:
    python examples/analyze_sio2_glass.py [FOLDER] [--rates 100k 0_1k] [--samples 5]
                                          [--out sio2_cooling_rates.png]

FOLDER defaults to ../shared/data/dm2-sio2 (next to the repository): the DM2 glasses,
3000-atom LAMMPS data files ``sio2_3000_glass_<rate>_sample<k>.dat`` with atom type 1 = O
and 2 = Si, melt-quenched at 100, 10, 1 and 0.1 K/ps (``100k``, ``10k``, ``1k``,
``0_1k``). For each of the two rates the script averages over the samples:

- the partial g(r), the Si-O bond length and the Si-Si distance (first peaks);
- bond angles O-Si-O (centred on Si) and Si-O-Si (centred on O) between covalently
  bonded atoms (Si-O < 2.30 Å);
- the coordination of Si by O;
- shortest-path rings, sizes in Si atoms (the silica convention);
- the number-weighted structure factor S(q) and its first sharp diffraction peak.

It prints the values side by side with ``Analyzer.compare`` (RMSD of the set-averaged
RDF and ADF, densities) and saves a four-panel figure. About 20 s on one core. The two
rates must differ and ``--samples`` lie between 1 and the glasses FOLDER holds per
rate; anything else is a usage error (exit status 2) before any work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from amtoolkit import Analyzer
from amtoolkit.io import read_structures

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "data" / "dm2-sio2"
TYPE_MAP = {1: "O", 2: "Si"}  # LAMMPS atom types of the DM2 files
#: cooling rate in the file names -> K/ps
RATES = {"100k": 100.0, "10k": 10.0, "1k": 1.0, "0_1k": 0.1}
RDF_RMAX, RDF_NBINS = 8.0, 320  # Å; 0.025 Å bins for the figure
FSDP_WINDOW = (1.0, 2.5)  # 1/Å, where silica's first sharp diffraction peak lies
COLORS = ("C0", "C3")
#: partial g(r) drawn in the figure and their vertical offsets
RDF_OFFSETS = {("O", "Si"): 0.0, ("O", "O"): 5.0, ("Si", "Si"): 12.0}


def sample_paths(folder: Path, rate: str) -> list[Path]:
    """Every glass file quenched at `rate` (e.g. "100k") in `folder`, in order."""
    return sorted(folder.glob(f"sio2_3000_glass_{rate}_sample*.dat"))


def input_problem(folder: Path, rates: tuple[str, str], samples: int) -> str | None:
    """What is wrong with these inputs, in one line; None when nothing is."""
    if samples < 1:
        return f"--samples must be >= 1 (glasses per rate), got {samples}"
    if len(rates) != 2 or rates[0] == rates[1]:
        return f"--rates needs two different cooling rates, got {' '.join(rates)}"
    unknown = [rate for rate in rates if rate not in RATES]
    if unknown:
        return f"unknown cooling rate {unknown[0]!r} (choose from {', '.join(RATES)})"
    if not folder.is_dir():
        return f"{folder}: no such folder"
    for rate in rates:
        found = len(sample_paths(folder, rate))
        pattern = f"sio2_3000_glass_{rate}_sample*.dat"
        if not found:
            return f"no {pattern} in {folder}"
        if found < samples:
            return f"--samples {samples}: {folder} has only {found} {pattern} files"
    return None


def read_rate(folder: Path, rate: str, samples: int) -> list:
    """The first `samples` glasses quenched at `rate` (e.g. "100k")."""
    paths = sample_paths(folder, rate)[:samples]
    return [atoms for p in paths for atoms in read_structures(p, type_map=TYPE_MAP)]


def measure(analyzer: Analyzer, frames: list) -> dict:
    """Every structural result for one set of glasses."""
    return {
        "frames": frames,
        "rdf": analyzer.rdf(frames, rmax=RDF_RMAX, nbins=RDF_NBINS),
        "adf": analyzer.adf(frames, cutoff=None, nbins=90),  # covalent (Si-O) bonds, 2° bins
        "coordination": analyzer.coordination(frames),
        "rings": analyzer.rings(frames),  # sizes in Si atoms
        "sq": analyzer.structure_factor(frames),  # g(r) to half the smallest box, ~18 Å
    }


def summarize(r: dict) -> dict[str, str]:
    """The printed quantities of one set, formatted."""
    from amtoolkit.analysis.energy import density
    from amtoolkit.analysis.rdf import first_peak

    rho = [density(a) for a in r["frames"]]
    adf, sq, si = r["adf"], r["sq"], r["coordination"].distribution["Si"]
    q_fsdp = sq.peak_position(*FSDP_WINDOW)
    return {
        "structures": f"{len(r['frames'])}",
        "density (g/cm3)": f"{np.mean(rho):.3f} +- {np.std(rho):.3f}",
        "Si-O bond, g(r) peak (A)": f"{first_peak(r['rdf'], ('Si', 'O')):.3f}",
        "Si-Si distance, g(r) peak (A)": f"{first_peak(r['rdf'], ('Si', 'Si')):.3f}",
        "O-Si-O angle, mode (deg)": f"{adf.theta[np.argmax(adf.by_center['Si'])]:.0f}",
        "Si-O-Si angle, mode (deg)": f"{adf.theta[np.argmax(adf.by_center['O'])]:.0f}",
        "Si coordination": f"{r['coordination'].mean['Si']:.4f}",
        "Si not 4-fold (%)": f"{100 * (1 - si.get(4, 0.0)):.2f}",
        "mean ring size (Si atoms)": f"{r['rings'].mean_size:.3f}",
        "6-rings (% of rings)": f"{100 * r['rings'].fractions.get(6, 0.0):.1f}",
        "FSDP position (1/A)": f"{q_fsdp:.2f}",
        "FSDP height S(q)": f"{np.interp(q_fsdp, sq.q, sq.s):.3f}",
    }


def print_table(results: dict[str, dict]) -> None:
    """The quantities of every set side by side."""
    columns = {label: summarize(r) for label, r in results.items()}
    keys = list(next(iter(columns.values())))
    width = max(len(k) for k in keys)
    print(" " * width + "".join(f"{label:>16}" for label in columns))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"{col[key]:>16}" for col in columns.values()))


def figure(results: dict[str, dict], path: Path) -> Figure:
    """Four panels, one colour per cooling rate: g(r), bond angles, rings, S(q)."""
    fig = Figure(figsize=(10.0, 7.6), layout="constrained")
    (ax_g, ax_a), (ax_r, ax_s) = fig.subplots(2, 2)
    width = 0.8 / len(results)
    sizes_seen: set[int] = set()
    for k, ((label, r), color) in enumerate(zip(results.items(), COLORS, strict=False)):
        rdf = r["rdf"]
        for pair, offset in RDF_OFFSETS.items():
            ax_g.plot(rdf.r, rdf.partial[pair] + offset, color=color, lw=1.1)
        adf = r["adf"]
        ax_a.plot(adf.theta, adf.by_center["Si"], color=color, lw=1.2)
        ax_a.plot(adf.theta, adf.by_center["O"], color=color, lw=1.2, ls="--")
        sizes = np.array(sorted(r["rings"].fractions))
        sizes_seen.update(int(n) for n in sizes)
        fractions = [r["rings"].fractions[n] for n in sizes]
        ax_r.bar(sizes + (k - (len(results) - 1) / 2) * width, fractions, width=width, color=color)
        ax_s.plot(r["sq"].q, r["sq"].s, color=color, lw=1.2, label=label)

    top = max(RDF_OFFSETS.values()) + 7.5
    ax_g.set(xlim=(0, RDF_RMAX), ylim=(-0.5, top), xlabel="r (Å)", ylabel="partial g(r) + offset")
    ax_g.set_title("pair distribution functions", fontsize="medium")
    for (a, b), offset in RDF_OFFSETS.items():
        name = f"{b}-{a}" if a == "O" and b == "Si" else f"{a}-{b}"
        shift = f" (+{offset:g})" if offset else " (peak 30, clipped)"
        ax_g.annotate(name + shift, (RDF_RMAX - 0.1, offset + 1.6), ha="right", fontsize="small")
    ax_a.set(xlim=(60, 180), xlabel="bond angle θ (deg)", ylabel="P(θ) (1/deg)")
    ax_a.set_title("bond angles between bonded Si and O", fontsize="medium")
    ax_a.annotate("O-Si-O (solid)", (116, 0.068), fontsize="small")
    ax_a.annotate("Si-O-Si (dashed)", (128, 0.033), fontsize="small")
    ax_r.set(xlabel="ring size (Si atoms)", ylabel="fraction of rings")
    ax_r.set_title("shortest-path rings", fontsize="medium")
    ax_r.set_xticks(range(min(sizes_seen), max(sizes_seen) + 1))
    ax_s.axhline(1.0, color="0.6", lw=0.5)
    ax_s.set(xlim=(0, 15), xlabel="q (1/Å)", ylabel="S(q)")
    ax_s.set_title("structure factor (number-weighted)", fontsize="medium")
    ax_s.annotate("FSDP", (1.75, 1.47), fontsize="small")
    n = "/".join(sorted({str(len(r["frames"])) for r in results.values()}))
    fig.suptitle(f"a-SiO2 glasses (DM2), 3000 atoms, {n} samples per cooling rate")
    ax_s.legend(title="cooling rate (all panels)", frameon=False, loc="upper right")
    fig.savefig(path, dpi=120)
    return fig


def main(
    folder: Path = DEFAULT_FOLDER,
    rates: tuple[str, str] = ("100k", "0_1k"),
    samples: int = 5,
    out: Path = Path("sio2_cooling_rates.png"),
) -> dict[str, dict]:
    problem = input_problem(folder, rates, samples)
    if problem:
        raise ValueError(problem)
    analyzer = Analyzer()
    sets = {f"{RATES[rate]:g} K/ps": read_rate(folder, rate, samples) for rate in rates}
    results = {label: measure(analyzer, frames) for label, frames in sets.items()}
    print_table(results)
    (fast, generated), (slow, reference) = sets.items()
    print(f"\nAnalyzer.compare: {fast} (generated) against {slow} (reference)")
    print(analyzer.compare(generated, reference).summary())
    figure(results, out)
    print(f"\nwrote {out}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--rates", nargs=2, default=("100k", "0_1k"), choices=list(RATES))
    parser.add_argument("--samples", type=int, default=5, help="glasses per rate (1-5)")
    parser.add_argument("--out", type=Path, default=Path("sio2_cooling_rates.png"))
    args = parser.parse_args()
    problem = input_problem(args.folder, tuple(args.rates), args.samples)
    if problem is None and not args.out.parent.is_dir():
        problem = f"--out {args.out}: folder {args.out.parent} does not exist"
    if problem:
        parser.error(problem)
    main(args.folder, tuple(args.rates), args.samples, args.out)
