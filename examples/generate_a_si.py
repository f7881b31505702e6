"""Generate amorphous Si with the shipped model and check it like melt-quench MD output.

Usage:
    python examples/generate_a_si.py [--n 8] [--steps 200] [--sampler sde|ode]
                                     [--reference-cells 16] [--workers 2] [--refine]
                                     [--out a-si-generated.extxyz]

1. ``Generator.from_pretrained("a-si").generate(n)``: 216-atom cells at the training
   set's density, written to an extended XYZ file (the card's sampler: reverse SDE with
   score gain 6; ``--sampler ode --steps 25`` is 8 times faster at nearly its quality).
2. ``gen.held_out()``: the `a-si-anneal` cells the model never saw (the test split its
   model card records, redrawn).
3. ``Analyzer().compare``: RDF and ADF RMSD against the reference, each next to its
   sampling floor (what two sets of these sizes drawn from the reference itself differ
   by), and the densities.
4. ``Analyzer("sw-si", workers=...)``: Stillinger-Weber energy per atom after relaxing
   positions and cell, and the four-fold fraction, for the generated cells and for
   ``--reference-cells`` of the held-out cells (a seeded subset, default 16, whose mean
   energy is within 0.002 eV/atom of all 98; ``all`` relaxes every one). Step 3 always
   compares with every held-out cell.
5. With ``--refine``: 10 HMC iterations (15 leapfrog steps each) on the noise energy of
   ``a-si-energy`` at t = 0.05, then a SW relaxation (``amtoolkit.refine``, DM2's
   refinement step), and the same energies.

With the defaults about 3 minutes on 2 cores and 5 on one: generating 8 cells x 200
steps takes 2.5 (one core: 4.5) minutes, relaxing the 8 generated and 16 reference cells
about 20 s (``--reference-cells all``, 98 cells, adds 25-45 s). For a first look,
``--n 2 --sampler ode --steps 25`` takes about 25 s. ``--refine`` adds about 1 minute.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.io import write

from amtoolkit import Analyzer, Generator
from amtoolkit.io import check_writable

FOURFOLD_CUTOFF = 2.886  # Å, Si-Si bond by the covalent rule 1.3 (r_Si + r_Si)
REFERENCE_CELLS = 16  # held-out cells relaxed for the reference energy (seeded subset)


def fourfold(frames: list) -> float:
    """Fraction of Si atoms with exactly four neighbours within FOURFOLD_CUTOFF."""
    return Analyzer().coordination(frames, FOURFOLD_CUTOFF).distribution["Si"].get(4, 0.0)


def energies(frames: list, workers: int) -> np.ndarray:
    """SW energy per atom after relaxing positions and cell, one per structure."""
    return Analyzer("sw-si", workers=workers).energy(frames).energy_per_atom


def some(frames: list, count: int | None, seed: int = 0) -> list:
    """`count` of `frames` (a seeded subset, in order); all of them for None."""
    if count is None or count >= len(frames):
        return frames
    keep = np.sort(np.random.default_rng(seed).choice(len(frames), count, replace=False))
    return [frames[i] for i in keep]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def count_or_all(text: str) -> int | None:
    """An argparse type: an integer >= 1, or "all" (None)."""
    return None if text == "all" else positive_int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=8, help="cells to generate")
    parser.add_argument("--steps", type=positive_int, default=200, help="model steps")
    parser.add_argument(
        "--sampler", choices=("sde", "ode"), default=None, help="default: the card's (sde)"
    )
    parser.add_argument(
        "--reference-cells",
        type=count_or_all,
        default=REFERENCE_CELLS,
        help=f"held-out cells relaxed for the reference energy, or 'all' "
        f"(default {REFERENCE_CELLS}; the comparison uses all of them)",
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="processes for relaxations")
    parser.add_argument("--refine", action="store_true", help="also refine with HMC + SW")
    parser.add_argument("--out", default="a-si-generated.extxyz", help="output file")
    args = parser.parse_args()
    try:
        check_writable(args.out)  # before minutes of generation
    except OSError as err:
        parser.error(str(err))

    gen = Generator.from_pretrained("a-si")
    frames = gen.generate(  # progress bar only on a terminal
        args.n, steps=args.steps, sampler=args.sampler, seed=0, progress=None
    )
    write(args.out, frames)
    reference = gen.held_out()  # the a-si-anneal cells of the card's test split
    print(f"generated {len(frames)} cells with {gen.name} -> {args.out}")
    print(Analyzer().compare(frames, reference).summary())

    relaxed_reference = some(reference, args.reference_cells)
    label = f"reference ({len(relaxed_reference)} of {len(reference)})"
    sets = {"generated": frames, label: relaxed_reference}
    if args.refine:
        from amtoolkit.refine import refine

        energy_model = Generator.from_pretrained("a-si-energy")
        sets["generated + HMC + SW relax"] = refine(
            frames,
            energy_model,
            method="hmc",
            t=0.05,
            steps=10,
            potential="sw-si",
            classical="relax",
        )
    print(f"\n{'set':<28} {'E_SW relaxed (eV/atom)':>24} {'four-fold Si':>14}")
    for name, structures in sets.items():
        e = energies(structures, args.workers)
        print(f"{name:<28} {e.mean():>14.4f} +- {e.std():.4f} {fourfold(structures):>14.3f}")


if __name__ == "__main__":
    main()
