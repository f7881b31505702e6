"""Comparison of a generated set of structures with a reference set.

The evaluation protocol of the seed papers (AMDEN, DM2): set-averaged RDF and ADF
compared by RMSD, densities as given, and, with a potential, energies after relaxation;
plus the closest pair of atoms of each set, which shows atoms left on top of each other
(a spike that the RDF RMSD alone mixes with every other difference).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from amtoolkit.analysis._result import Result
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.neighbors import neighbor_list
from amtoolkit.analysis.report import format_table
from amtoolkit.errors import StructureError

__all__ = [
    "CLOSE_PAIR_FACTOR",
    "COMPARE_ADF_CUTOFF",
    "COMPARE_ADF_NBINS",
    "COMPARE_RDF_NBINS",
    "COMPARE_RDF_RMAX",
    "Comparison",
    "closest_pair",
    "compare",
]

#: RDF and ADF settings of set comparisons (as in the seed papers; docs/analysis.md,
#: *Comparing sets*)
COMPARE_RDF_RMAX = 5.0  # Å
COMPARE_RDF_NBINS = 100
COMPARE_ADF_CUTOFF = 3.0  # Å
COMPARE_ADF_NBINS = 180
#: a generated structure has a close pair when two of its atoms are nearer than this
#: fraction of the closest pair found in the whole reference set
CLOSE_PAIR_FACTOR = 0.8


@dataclasses.dataclass(frozen=True)
class Comparison(Result):
    """How far a generated set is from a reference set.

    Attributes:
        rdf_rmsd: RMSD between the set-averaged total g(r) (rmax 5 Å, 100 bins).
        rdf_rmsd_partial: the same for each partial g_ab(r), keyed by element pair
            (each pair once, ordered by atomic number; "A-B" in `to_dict()`).
        adf_rmsd: RMSD between the set-averaged bond-angle distributions
            (cutoff 3.0 Å, 180 bins over 0-180 degrees, normalised to unit area), 1/degree.
        rdf_rmsd_floor: the RDF RMSD expected between two sets of these sizes drawn from
            the reference itself (`sampling_rmsd`, 200 resamples); a generated set at
            this level is as close as the set sizes can show. None with one reference.
        adf_rmsd_floor: the same for the ADF RMSD.
        rdf_rmsd_excess: the RDF RMSD between the two population averages with the
            noise of the finite sets taken out (`excess_rmsd`): what the RMSD tends to as
            both sets grow, so sets of different sizes compare by it; 0 when the sets
            cannot be told apart, None when a set has one structure.
        adf_rmsd_excess: the same for the ADF RMSD.
        rdf_rmsd_se: standard error of `rdf_rmsd`, how much it would scatter if both
            sets were drawn again at their sizes (`rmsd_standard_error`); None when a set
            has fewer than 3 structures. Two generators differ in a way these sets can
            show when their RMSDs differ by well over both errors.
        adf_rmsd_se: the same for the ADF RMSD.
        density_generated: mean mass density of the generated set as given, g/cm^3.
        density_reference: mean mass density of the reference set as given, g/cm^3.
        density_difference: generated minus reference, g/cm^3.
        energy_generated: mean energy per atom after relaxation with the potential,
            eV/atom (None without a potential).
        energy_reference: the same for the reference set (None without a potential).
        energy_difference: generated minus reference, eV/atom (None without a potential).
        potential: name of the potential used for energies, or None.
        n_generated: number of generated structures.
        n_reference: number of reference structures.
        closest_pair_generated: the smallest interatomic distance in the generated set,
            periodic images included, Å (inf when no two atoms lie within 5 Å).
        closest_pair_reference: the same for the reference set, Å.
        close_pair_fraction: fraction of generated structures with two atoms nearer than
            ``CLOSE_PAIR_FACTOR`` (0.8) times `closest_pair_reference` (0 when the
            reference has no pair within 5 Å to compare with).

    References:
        RMSD of set-averaged distributions as in AMDEN and DM2; docs/analysis.md,
        *Comparing sets*.
    """

    rdf_rmsd: float
    rdf_rmsd_partial: dict[tuple[str, str], float]
    adf_rmsd: float
    rdf_rmsd_floor: float | None
    adf_rmsd_floor: float | None
    rdf_rmsd_excess: float | None
    adf_rmsd_excess: float | None
    rdf_rmsd_se: float | None
    adf_rmsd_se: float | None
    density_generated: float
    density_reference: float
    density_difference: float
    energy_generated: float | None
    energy_reference: float | None
    energy_difference: float | None
    potential: str | None
    n_generated: int
    n_reference: int
    closest_pair_generated: float
    closest_pair_reference: float
    close_pair_fraction: float

    def summary(self) -> str:
        """A printable table of the comparison."""
        rows = [
            ("structures (generated / reference)", f"{self.n_generated} / {self.n_reference}"),
            (
                "RDF RMSD (total)",
                rmsd_text(
                    self.rdf_rmsd,
                    self.rdf_rmsd_se,
                    self.rdf_rmsd_floor,
                    self.rdf_rmsd_excess,
                    ".4f",
                ),
            ),
        ]
        rows += [
            (f"RDF RMSD {a}-{b}", f"{value:.4f}") for (a, b), value in self.rdf_rmsd_partial.items()
        ]
        rows += [
            (
                "ADF RMSD (1/deg)",
                rmsd_text(
                    self.adf_rmsd,
                    self.adf_rmsd_se,
                    self.adf_rmsd_floor,
                    self.adf_rmsd_excess,
                    ".2e",
                ),
            ),
            (
                "density (g/cm3)",
                f"{self.density_generated:.3f} vs {self.density_reference:.3f} "
                f"({self.density_difference:+.3f})",
            ),
            (
                "closest pair (A)",
                f"{self.closest_pair_generated:.3f} vs {self.closest_pair_reference:.3f}; "
                f"{self.close_pair_fraction:.0%} of generated structures closer than "
                f"{CLOSE_PAIR_FACTOR:g} x {self.closest_pair_reference:.3f}",
            ),
        ]
        if self.energy_difference is not None:
            rows.append(
                (
                    f"energy (eV/atom, relaxed, {self.potential})",
                    f"{self.energy_generated:.4f} vs {self.energy_reference:.4f} "
                    f"({self.energy_difference:+.4f})",
                )
            )
        return format_table("comparison with reference", rows)


def rmsd_text(
    value: float, se: float | None, floor: float | None, excess: float | None, spec: str
) -> str:
    """The summary's RMSD: the value with its standard error, the sampling floor and the
    excess over the finite-set noise (each left out when unknown)."""
    text = f"{value:{spec}}" + (f" +- {se:{spec}}" if se is not None else "")
    notes = [f"floor {floor:{spec}}"] if floor is not None else []
    notes += [f"beyond sampling noise {excess:{spec}}"] if excess is not None else []
    return f"{text} ({'; '.join(notes)})" if notes else text


def closest_pair(atoms: Atoms, cutoff: float = COMPARE_RDF_RMAX) -> float:
    """The smallest interatomic distance in `atoms`, periodic images included, Å.

    Args:
        atoms: a structure.
        cutoff: search radius, Å; inf is returned when no two atoms lie within it.
    """
    (d,) = neighbor_list(atoms, cutoff, "d", full_list=False)
    return float(d.min()) if len(d) else math.inf


def compare(
    generated: Atoms | Sequence[Atoms],
    reference: Atoms | Sequence[Atoms],
    calculator: Calculator | None = None,
    *,
    potential: str | None = None,
    generated_energy: float | None = None,
    reference_energy: float | None = None,
) -> Comparison:
    """Compare a generated set with a reference set.

    The total and partial g(r) (rmax 5 Å, 100 bins) and the ADF (all pairs within
    3.0 Å, 180 bins) are averaged over each set and compared by RMSD
    (:func:`amtoolkit.analysis.metrics.distribution_rmsd`); mean densities are compared
    as given, and so are the closest pairs of atoms (`closest_pair`). With a
    `calculator`, both sets are relaxed (positions and cell, zero pressure, fmax
    0.01 eV/Å) and their mean energies per atom compared. Ghost atoms are ignored. Each
    RMSD comes with its floor: the RMSD between two sets of the same sizes resampled from
    the reference, below which no generator can be told apart, and with its excess, the
    estimate of what it tends to as both sets grow (`excess_rmsd`), which is what to
    compare between sets of different sizes, and with its standard error
    (`rmsd_standard_error`), the scatter a second draw of both sets would show.

    Args:
        generated: one Atoms or a set (e.g. the output of a generator).
        reference: one Atoms or a set (e.g. melt-quench structures).
        calculator: ASE calculator for the energies, or None to skip them.
        potential: name of the potential, for the summary (default: the calculator's
            class name; ignored without a calculator).
        generated_energy: the generated set's mean energy per atom after that same
            relaxation, when already known (e.g. ``energy(generated, calc).mean_energy``),
            so the set is not relaxed a second time; None: computed here.
        reference_energy: the same for the reference set.

    Returns:
        Comparison (``.summary()`` prints a table).

    Raises:
        StructureError: a structure cannot be analysed (non-periodic, NaN positions ...).

    References:
        AMDEN and DM2 evaluation protocols; docs/analysis.md, *Comparing sets*.
    """
    from amtoolkit.analysis.adf import adf
    from amtoolkit.analysis.energy import density, energy
    from amtoolkit.analysis.metrics import (
        distribution_rmsd,
        excess_rmsd,
        rmsd_standard_error,
        sampling_rmsd,
    )
    from amtoolkit.analysis.rdf import rdf

    gen, ref = (
        _prepared(s, name) for s, name in ((generated, "generated"), (reference, "reference"))
    )
    elements = [species_of(s) for s in (gen, ref)]
    if elements[0] != elements[1]:
        warnings.warn(
            f"the generated structures hold {', '.join(elements[0])} and the reference "
            f"{', '.join(elements[1])}: the RMSDs compare different compositions",
            UserWarning,
            stacklevel=2,
        )
    rdf_gen, rdf_ref = (rdf(s, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS) for s in (gen, ref))
    adf_gen, adf_ref = (
        adf(s, cutoff=COMPARE_ADF_CUTOFF, nbins=COMPARE_ADF_NBINS) for s in (gen, ref)
    )
    adf_rows = [a.per_structure[a.per_structure.sum(axis=1) > 0] for a in (adf_gen, adf_ref)]
    partial = {
        pair: distribution_rmsd(rdf_gen.partial[pair], rdf_ref.partial[pair])
        for pair in rdf_gen.pairs
        if pair in rdf_ref.partial
    }
    rho_gen, rho_ref = (float(np.mean([density(a) for a in s])) for s in (gen, ref))
    closest_gen, closest_ref = ([closest_pair(a) for a in s] for s in (gen, ref))
    close = CLOSE_PAIR_FACTOR * min(closest_ref)  # inf: no reference pair to compare with
    e_gen = e_ref = e_diff = None
    if calculator is None:
        potential = None
    else:
        e_gen = (
            energy(gen, calculator).mean_energy if generated_energy is None else generated_energy
        )
        e_ref = (
            energy(ref, calculator).mean_energy if reference_energy is None else reference_energy
        )
        e_diff = e_gen - e_ref
        potential = potential or type(calculator).__name__
    return Comparison(
        rdf_rmsd=distribution_rmsd(rdf_gen.g, rdf_ref.g),
        rdf_rmsd_partial=partial,
        adf_rmsd=distribution_rmsd(adf_gen.p, adf_ref.p),
        rdf_rmsd_floor=sampling_rmsd(rdf_ref.per_structure, len(gen), len(ref)),
        adf_rmsd_floor=sampling_rmsd(adf_ref.per_structure, len(gen), len(ref)),
        rdf_rmsd_excess=excess_rmsd(rdf_gen.per_structure, rdf_ref.per_structure),
        adf_rmsd_excess=excess_rmsd(*adf_rows),
        rdf_rmsd_se=rmsd_standard_error(rdf_gen.per_structure, rdf_ref.per_structure),
        adf_rmsd_se=rmsd_standard_error(*adf_rows),
        density_generated=rho_gen,
        density_reference=rho_ref,
        density_difference=rho_gen - rho_ref,
        energy_generated=e_gen,
        energy_reference=e_ref,
        energy_difference=e_diff,
        potential=potential,
        n_generated=len(gen),
        n_reference=len(ref),
        closest_pair_generated=min(closest_gen),
        closest_pair_reference=min(closest_ref),
        close_pair_fraction=float(np.mean([d < close for d in closest_gen]))
        if math.isfinite(close)
        else 0.0,
    )


def _prepared(structures: Atoms | Sequence[Atoms], name: str) -> list[Atoms]:
    """`prepare` of one side of a comparison, its errors naming the side."""
    try:
        return prepare(structures)
    except StructureError as err:
        raise StructureError(f"{name} set: {err}") from None
