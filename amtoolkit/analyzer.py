"""The Analyzer: one object that measures structures and compares sets of them.

A thin facade over the pure functions in :mod:`amtoolkit.analysis` and the classical
potentials in :mod:`amtoolkit.potentials`::

    from amtoolkit import Analyzer
    an = Analyzer(potential="tersoff-sio2")
    an.rdf(frames).plot()
    an.compare(generated, reference).summary()

Structure-only methods (rdf, adf, coordination, rings, structure_factor, crystallinity)
need no potential; energy, elastic and vdos do (``Analyzer(potential=...)``).
:meth:`Analyzer.report` runs a chosen list of analyses frame by frame, skipping frames
that fail, and is what ``amtool analyze`` prints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from amtoolkit.analysis._result import Result, to_jsonable
from amtoolkit.analysis._structures import as_structure_list, prepare, species_of
from amtoolkit.analysis.bonds import Cutoffs
from amtoolkit.errors import CoverageError, StructureError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from amtoolkit.analysis.adf import ADFResult
    from amtoolkit.analysis.coordination import CoordinationResult
    from amtoolkit.analysis.crystallinity import CrystallinityResult
    from amtoolkit.analysis.elastic import ElasticResult
    from amtoolkit.analysis.energy import EnergyResult
    from amtoolkit.analysis.entropy import EntropyResult, OverlapResult
    from amtoolkit.analysis.metrics import PropertyErrors
    from amtoolkit.analysis.rdf import RDFResult
    from amtoolkit.analysis.rings import RingsResult
    from amtoolkit.analysis.structure_factor import StructureFactorResult
    from amtoolkit.analysis.vdos import VDOSResult

__all__ = [
    "ANALYSES",
    "COMPARE_ADF_CUTOFF",
    "COMPARE_ADF_NBINS",
    "COMPARE_RDF_NBINS",
    "COMPARE_RDF_RMAX",
    "DEFAULT_ANALYSES",
    "POTENTIAL_ANALYSES",
    "AnalysisReport",
    "Analyzer",
    "Comparison",
]

#: RDF and ADF settings of set comparisons (DESIGN section 6, as in the seed papers)
COMPARE_RDF_RMAX = 5.0  # Å
COMPARE_RDF_NBINS = 100
COMPARE_ADF_CUTOFF = 3.0  # Å
COMPARE_ADF_NBINS = 180

#: analyses `Analyzer.report` knows, in the order they are run and printed
ANALYSES = (
    "rdf",
    "adf",
    "coordination",
    "rings",
    "structure_factor",
    "crystallinity",
    "energy",
    "elastic",
    "vdos",
)
#: what `report` runs when nothing is asked for: seconds on 3000 atoms
DEFAULT_ANALYSES = ("rdf", "coordination")
#: options `report` passes (bond angles between covalently bonded atoms, not 3.0 Å pairs)
REPORT_OPTIONS: dict[str, dict[str, Any]] = {"adf": {"cutoff": None}}
#: analyses that need a potential; run frame by frame (they are the slow ones)
POTENTIAL_ANALYSES = ("energy", "elastic", "vdos")


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Comparison(Result):
    """How far a generated set is from a reference set.

    Attributes:
        rdf_rmsd: RMSD between the set-averaged total g(r) (rmax 5 Å, 100 bins).
        rdf_rmsd_partial: the same for each partial g_ab(r), keyed by element pair
            (each pair once, ordered by atomic number; "A-B" in `to_dict()`).
        adf_rmsd: RMSD between the set-averaged bond-angle distributions
            (cutoff 3.0 Å, 180 bins over 0-180 degrees, normalised to unit area), 1/degree.
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

    References:
        RMSD of set-averaged distributions as in amtoolkit DESIGN section 6 (AMDEN, DM2).
    """

    rdf_rmsd: float
    rdf_rmsd_partial: dict[tuple[str, str], float]
    adf_rmsd: float
    density_generated: float
    density_reference: float
    density_difference: float
    energy_generated: float | None
    energy_reference: float | None
    energy_difference: float | None
    potential: str | None
    n_generated: int
    n_reference: int

    def summary(self) -> str:
        """A printable table of the comparison."""
        rows = [
            ("structures (generated / reference)", f"{self.n_generated} / {self.n_reference}"),
            ("RDF RMSD (total)", f"{self.rdf_rmsd:.4f}"),
        ]
        rows += [
            (f"RDF RMSD {a}-{b}", f"{value:.4f}") for (a, b), value in self.rdf_rmsd_partial.items()
        ]
        rows += [
            ("ADF RMSD (1/deg)", f"{self.adf_rmsd:.3e}"),
            (
                "density (g/cm3)",
                f"{self.density_generated:.3f} vs {self.density_reference:.3f} "
                f"({self.density_difference:+.3f})",
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
        return _table("comparison with reference", rows)


@dataclasses.dataclass(frozen=True)
class AnalysisReport(Result):
    """Everything `Analyzer.report` measured on a set of frames.

    Attributes:
        labels: one label per analysed frame (e.g. "run.extxyz[3]").
        skipped: (label, one-line reason) for every frame that failed and was left out.
        n_atoms: real (non-ghost) atoms per analysed frame, shape [n_frames].
        composition: element -> number of atoms summed over the analysed frames.
        density: mass density per analysed frame as given (not relaxed), g/cm^3.
        volume: cell volume per analysed frame, Å^3.
        rdf_peaks: first-peak position (Å) of each partial g_ab(r), keyed (a, b),
            when the RDF was computed.
        results: analysis name -> result (see `ANALYSES`), only those computed.
        comparison: the comparison with a reference set, if one was given.
        potential: name of the potential, or None.
    """

    labels: list[str]
    skipped: list[tuple[str, str]]
    n_atoms: np.ndarray
    composition: dict[str, int]
    density: np.ndarray
    volume: np.ndarray
    rdf_peaks: dict[tuple[str, str], float]
    results: dict[str, Result]
    comparison: Comparison | None
    potential: str | None

    def to_dict(self) -> dict[str, Any]:
        out = to_jsonable(
            {
                "frames": self.labels,
                "skipped": [{"frame": label, "reason": why} for label, why in self.skipped],
                "n_atoms": self.n_atoms,
                "composition": self.composition,
                "density": self.density,
                "mean_density": float(np.mean(self.density)),
                "volume": self.volume,
                "rdf_first_peaks": self.rdf_peaks,
                "potential": self.potential,
            }
        )
        for name, result in self.results.items():
            out[name] = result.to_dict()
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out

    def summary(self) -> str:
        """A printable multi-section table (what ``amtool analyze`` prints)."""
        n = len(self.labels)
        total = sum(self.composition.values())
        formula = " ".join(f"{el}{count}" for el, count in self.composition.items())
        fractions = ", ".join(f"{el} {count / total:.3f}" for el, count in self.composition.items())
        rows = [
            (
                "frames analysed",
                f"{n}" + (f" ({len(self.skipped)} skipped)" if self.skipped else ""),
            ),
            ("atoms per frame", _mean_std(self.n_atoms, "{:.0f}")),
            ("composition (all frames)", formula),
            ("atomic fractions", fractions),
            ("density (g/cm3)", _mean_std(self.density, "{:.3f}")),
            ("volume (A^3)", _mean_std(self.volume, "{:.1f}")),
        ]
        sections = [_table("structures", rows)]
        for name in ANALYSES:
            if name in self.results:
                sections.append(
                    _table(_TITLES[name], _summary_rows(name, self.results[name], self))
                )
        if self.comparison is not None:
            sections.append(self.comparison.summary())
        return "\n\n".join(sections)

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Draw every computed result that has a picture, one panel each.

        Args:
            path: image file to write (format from its ending, written atomically), or None.

        Returns:
            The matplotlib Figure.

        Raises:
            ValueError: nothing that was computed can be plotted.
        """
        panels = [
            (name, result)
            for name, result in self.results.items()
            if callable(getattr(result, "plot", None))
        ]
        if not panels:
            raise ValueError("nothing to plot: compute an RDF, ADF, rings, S(q) or VDOS first")
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (name, result) in zip(axes.flat, panels, strict=False):
            result.plot(ax=ax)
            ax.set_title(_TITLES[name])
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        fig.tight_layout()
        if path is not None:
            _atomic_savefig(fig, path)
        return fig


_TITLES = {
    "rdf": "radial distribution function",
    "adf": "bond-angle distribution (covalent bonds)",
    "coordination": "coordination",
    "rings": "rings",
    "structure_factor": "structure factor S(q)",
    "crystallinity": "crystallinity",
    "energy": "energy",
    "elastic": "elastic moduli",
    "vdos": "vibrational density of states",
}


# ---------------------------------------------------------------------------- Analyzer


class Analyzer:
    """Measure amorphous structures and compare sets of them.

    Every method takes one Atoms or a sequence (a set); set results are averages over
    the set with per-structure values kept. Ghost atoms (Z = 0) are ignored.

    Args:
        potential: a potential name from ``amtoolkit.potentials.POTENTIALS`` (e.g.
            ``"sw-si"``, ``"tersoff-sio2"``), an ASE calculator, or None. Needed only
            for energy, elastic and vdos (and relaxation before crystallinity).
        **potential_options: keyword arguments for ``get_calculator`` when `potential`
            is a name.

    Raises:
        ValueError: unknown potential name (the message lists the known ones).
        TypeError: `potential` is neither a name nor a calculator.
    """

    def __init__(self, potential: str | Calculator | None = None, **potential_options: Any):
        if potential is not None and not isinstance(potential, (str, Calculator)):
            raise TypeError(
                f"potential must be a name or an ASE calculator, got {type(potential).__name__}"
            )
        if isinstance(potential, str):
            _check_potential_name(potential)
        self.potential = potential
        self._potential_options = dict(potential_options)
        self._calculator: Calculator | None = (
            potential if isinstance(potential, Calculator) else None
        )

    def __repr__(self) -> str:
        return f"Analyzer(potential={self.potential_name!r})"

    @property
    def potential_name(self) -> str | None:
        """The potential's name (or calculator class name), None without a potential."""
        if self.potential is None or isinstance(self.potential, str):
            return self.potential
        return type(self.potential).__name__

    def calculator(self, what: str = "this analysis") -> Calculator:
        """The ASE calculator of the potential (built once, then cached).

        Raises:
            ValueError: no potential was given.
        """
        if self.potential is None:
            raise ValueError(f"Analyzer(potential=...) is needed for {what}")
        if self._calculator is None:
            from amtoolkit.potentials import get_calculator

            self._calculator = get_calculator(self.potential, **self._potential_options)
        return self._calculator

    def check(self, atoms: Atoms, *, with_potential: bool = False) -> None:
        """Raise if `atoms` cannot be analysed (one-line StructureError / CoverageError).

        Checks: atoms present, finite positions, 3D-periodic cell with volume, at least
        one real atom; with `with_potential` and a named potential, that the potential
        covers every element.
        """
        (real,) = prepare(atoms)
        if with_potential and isinstance(self.potential, str):
            from amtoolkit.potentials import check_elements

            check_elements(self.potential, sorted(set(real.get_chemical_symbols())))

    # -- structure ---------------------------------------------------------------------

    def rdf(
        self, structures: Atoms | Sequence[Atoms], rmax: float = 5.0, nbins: int = 100
    ) -> RDFResult:
        """Radial distribution function g(r), total and partial (see `analysis.rdf.rdf`).

        Args:
            structures: one Atoms or a set (averaged).
            rmax: largest distance, Å.
            nbins: number of bins over [0, rmax].

        Returns:
            RDFResult (``r``, ``g``, ``partial``, ``per_structure``; ``.plot()``).
        """
        from amtoolkit.analysis.rdf import rdf

        return rdf(structures, rmax=rmax, nbins=nbins)

    def adf(
        self,
        structures: Atoms | Sequence[Atoms],
        cutoff: Cutoffs = 3.0,
        nbins: int = 180,
    ) -> ADFResult:
        """Bond-angle distribution over 0-180 degrees (see `analysis.adf.adf`).

        Args:
            structures: one Atoms or a set (averaged).
            cutoff: neighbour cutoff in Å, a per-pair dict, or None for covalent bonds.
            nbins: number of angle bins.

        Returns:
            ADFResult (``theta``, ``p``, ``by_center``, ``per_structure``; ``.plot()``).
        """
        from amtoolkit.analysis.adf import adf

        return adf(structures, cutoff=cutoff, nbins=nbins)

    def coordination(
        self, structures: Atoms | Sequence[Atoms], cutoffs: Cutoffs = None
    ) -> CoordinationResult:
        """Coordination numbers per element (see `analysis.coordination.coordination`).

        Args:
            structures: one Atoms or a set (pooled).
            cutoffs: bond cutoff in Å, a per-pair dict (unlisted pairs do not bond), or
                None for the covalent rule d < 1.3 (r_cov,i + r_cov,j).

        Returns:
            CoordinationResult (``distribution``, ``mean``, ``per_structure``).
        """
        from amtoolkit.analysis.coordination import coordination

        return coordination(structures, cutoffs)

    def rings(
        self,
        structures: Atoms | Sequence[Atoms],
        cutoff: Cutoffs = None,
        maxlength: int = 12,
        count_species: str | Sequence[str] | None = "auto",
    ) -> RingsResult:
        """Shortest-path ring statistics (see `analysis.rings.rings`).

        Args:
            structures: one Atoms or a set (counts summed).
            cutoff: bond cutoff in Å, a per-pair dict, or None for covalent bonds.
            maxlength: largest ring size counted (inclusive).
            count_species: element(s) whose atoms give the ring size; None counts all
                atoms; "auto" (default) counts Si when both Si and O are present (the
                silica convention of DESIGN section 6) and all atoms otherwise.

        Returns:
            RingsResult (``counts``, ``mean_size``, ``per_structure``; ``.plot()``).
        """
        from amtoolkit.analysis.rings import rings

        if count_species == "auto":
            species = species_of(prepare(structures))
            count_species = "Si" if "Si" in species and "O" in species else None
        return rings(structures, cutoff=cutoff, maxlength=maxlength, count_species=count_species)

    def structure_factor(
        self,
        structures: Atoms | Sequence[Atoms],
        qmax: float = 20.0,
        nq: int = 400,
        rmax: float | None = None,
        window: bool = True,
    ) -> StructureFactorResult:
        """Static structure factor S(q) from g(r) (see `analysis.structure_factor`).

        Args:
            structures: one Atoms or a set (averaged).
            qmax: largest q, 1/Å.
            nq: number of q points.
            rmax: upper limit of the r integral, Å (default: half the cell width).
            window: apply the Lorch window.

        Returns:
            StructureFactorResult (``q``, ``s``, ``per_structure``; ``.plot()``).
        """
        from amtoolkit.analysis.structure_factor import structure_factor

        return structure_factor(structures, qmax=qmax, nq=nq, rmax=rmax, window=window)

    def crystallinity(
        self, structures: Atoms | Sequence[Atoms], symprec: float = 0.1, relax: bool | None = None
    ) -> CrystallinityResult:
        """Space group of each structure, group 1 (P1) = amorphous (`analysis.crystallinity`).

        Args:
            structures: one Atoms or a set.
            symprec: spglib distance tolerance, Å.
            relax: relax positions and cell with the potential first (default: when a
                potential is set), so that thermal noise does not hide symmetry.

        Returns:
            CrystallinityResult (``spacegroup``, ``number``, ``crystalline`` per structure).
        """
        from amtoolkit.analysis.crystallinity import crystallinity

        if relax is None:
            relax = self.potential is not None
        frames = self.relax(structures) if relax else structures
        return crystallinity(frames, symprec=symprec)

    # -- potential-based -----------------------------------------------------------------

    def relax(
        self, structures: Atoms | Sequence[Atoms], fmax: float = 0.01, cell: bool = True
    ) -> list[Atoms]:
        """Relaxed copies of the structures (ghosts dropped).

        Args:
            structures: one Atoms or a set.
            fmax: force criterion, eV/Å.
            cell: also relax the cell at zero pressure.

        Returns:
            One relaxed Atoms per structure, with the calculator attached.
        """
        from amtoolkit.analysis.energy import relax_structure

        calc = self.calculator("relax")
        self._check_coverage(structures)
        return [relax_structure(a, calc, fmax=fmax, cell=cell) for a in prepare(structures)]

    def energy(
        self, structures: Atoms | Sequence[Atoms], relax: bool = True, fmax: float = 0.01
    ) -> EnergyResult:
        """Energy per atom, density and pressure, after relaxation (`analysis.energy`).

        Args:
            structures: one Atoms or a set.
            relax: relax positions and cell (zero pressure) first.
            fmax: force criterion of the relaxation, eV/Å.

        Returns:
            EnergyResult (eV/atom, g/cm^3, GPa per structure; ``mean_energy`` ...).

        Raises:
            ValueError: no potential; CoverageError: an element the potential lacks.
        """
        from amtoolkit.analysis.energy import energy

        calc = self.calculator("energy")
        self._check_coverage(structures)
        return energy(structures, calc, relax=relax, fmax=fmax)

    def elastic(
        self,
        structures: Atoms | Sequence[Atoms],
        relax: bool = True,
        delta: float = 0.005,
        fmax: float = 1e-3,
        n_steps: int = 5,
        relax_ions: bool = True,
    ) -> ElasticResult:
        """Relaxed-ion elastic constants and isotropic moduli, GPa (`analysis.elastic`).

        Args:
            structures: one Atoms or a set.
            relax: relax positions and cell (zero pressure) before straining.
            delta: strain increment.
            fmax: force criterion of all relaxations, eV/Å.
            n_steps: strains per strain pattern.
            relax_ions: relax ions at each strain (False: clamped-ion constants).

        Returns:
            ElasticResult (``C``, ``bulk_modulus``, ``shear_modulus`` ... per structure).

        Raises:
            ValueError: no potential; CoverageError: an element the potential lacks.
        """
        from amtoolkit.analysis.elastic import elastic

        calc = self.calculator("elastic")
        self._check_coverage(structures)
        return elastic(
            structures,
            calc,
            relax=relax,
            delta=delta,
            fmax=fmax,
            n_steps=n_steps,
            relax_ions=relax_ions,
        )

    def vdos(
        self,
        structures: Atoms | Sequence[Atoms],
        displacement: float = 0.01,
        sigma: float = 0.2,
        nbins: int = 400,
        relax: bool = True,
    ) -> VDOSResult:
        """Vibrational density of states from Gamma-point phonons (`analysis.vdos`).

        Args:
            structures: one Atoms or a set (averaged).
            displacement: finite-displacement amplitude, Å.
            sigma: Gaussian broadening, THz.
            nbins: number of frequency points.
            relax: relax positions and cell first.

        Returns:
            VDOSResult (``frequency`` THz, ``dos``, ``mode_frequencies``; ``.plot()``).

        Raises:
            ValueError: no potential; CoverageError: an element the potential lacks.
        """
        from amtoolkit.analysis.vdos import vdos

        calc = self.calculator("vdos")
        self._check_coverage(structures)
        return vdos(
            structures, calc, displacement=displacement, sigma=sigma, nbins=nbins, relax=relax
        )

    # -- information theory --------------------------------------------------------------

    def entropy(
        self,
        structures: Atoms | Sequence[Atoms],
        k: int = 32,
        cutoff: float = 5.0,
        bandwidth: float = 0.015,
    ) -> EntropyResult:
        """QUESTS information entropy, nats (needs ``pip install 'amtoolkit[entropy]'``)."""
        from amtoolkit.analysis.entropy import entropy

        return entropy(structures, k=k, cutoff=cutoff, bandwidth=bandwidth)

    def overlap(
        self,
        structures: Atoms | Sequence[Atoms],
        reference: Atoms | Sequence[Atoms],
        k: int = 32,
        cutoff: float = 5.0,
        bandwidth: float = 0.015,
    ) -> OverlapResult:
        """QUESTS overlap: fraction of environments of `structures` covered by `reference`
        (needs ``pip install 'amtoolkit[entropy]'``)."""
        from amtoolkit.analysis.entropy import overlap

        return overlap(structures, reference, k=k, cutoff=cutoff, bandwidth=bandwidth)

    # -- sets ----------------------------------------------------------------------------

    def compare(
        self, generated: Atoms | Sequence[Atoms], reference: Atoms | Sequence[Atoms]
    ) -> Comparison:
        """Compare a generated set with a reference set.

        RDF (rmax 5 Å, 100 bins) and ADF (cutoff 3.0 Å, 180 bins) are averaged over each
        set, then compared by RMSD; densities are compared as given. With a potential,
        both sets are relaxed and their mean energies per atom compared.

        Returns:
            Comparison (``.summary()`` prints a table).

        References:
            amtoolkit DESIGN section 6; AMDEN and DM2 evaluation protocols.
        """
        from amtoolkit.analysis.energy import density
        from amtoolkit.analysis.metrics import distribution_rmsd

        gen, ref = prepare(generated), prepare(reference)
        rdf_gen = self.rdf(gen, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS)
        rdf_ref = self.rdf(ref, rmax=COMPARE_RDF_RMAX, nbins=COMPARE_RDF_NBINS)
        adf_gen = self.adf(gen, cutoff=COMPARE_ADF_CUTOFF, nbins=COMPARE_ADF_NBINS)
        adf_ref = self.adf(ref, cutoff=COMPARE_ADF_CUTOFF, nbins=COMPARE_ADF_NBINS)
        partial = {}
        for pair in rdf_gen.pairs:
            if pair in rdf_ref.partial:
                partial[pair] = distribution_rmsd(rdf_gen.partial[pair], rdf_ref.partial[pair])
        rho_gen = float(np.mean([density(a) for a in gen]))
        rho_ref = float(np.mean([density(a) for a in ref]))
        e_gen = e_ref = e_diff = None
        if self.potential is not None:
            e_gen = self.energy(gen).mean_energy
            e_ref = self.energy(ref).mean_energy
            e_diff = e_gen - e_ref
        return Comparison(
            rdf_rmsd=distribution_rmsd(rdf_gen.g, rdf_ref.g),
            rdf_rmsd_partial=partial,
            adf_rmsd=distribution_rmsd(adf_gen.p, adf_ref.p),
            density_generated=rho_gen,
            density_reference=rho_ref,
            density_difference=rho_gen - rho_ref,
            energy_generated=e_gen,
            energy_reference=e_ref,
            energy_difference=e_diff,
            potential=self.potential_name,
            n_generated=len(gen),
            n_reference=len(ref),
        )

    def property_errors(self, targets: ArrayLike, measured: ArrayLike) -> PropertyErrors:
        """MAE, RMSE and MAPE between target and measured properties; see `analysis.metrics`."""
        from amtoolkit.analysis.metrics import property_errors

        return property_errors(targets, measured)

    def report(
        self,
        structures: Atoms | Sequence[Atoms],
        analyses: Sequence[str] = DEFAULT_ANALYSES,
        *,
        labels: Sequence[str] | None = None,
        reference: Sequence[Atoms] | None = None,
        skip_errors: bool = True,
        on_skip: Callable[[str, str], None] | None = None,
        progress: bool | None = False,
    ) -> AnalysisReport:
        """Run several analyses on a set, skipping frames that fail.

        Frames are checked one by one (geometry, and coverage by the potential when a
        potential-based analysis is asked for); the potential-based analyses (energy,
        elastic, vdos) also run frame by frame. A frame that fails is left out of every
        analysis and reported through `on_skip`. Structure analyses then run on the
        remaining set.

        Args:
            structures: frames to analyse.
            analyses: names from `ANALYSES`.
            labels: one label per frame for messages (default "frame k").
            reference: a reference set to compare with (see `compare`).
            skip_errors: skip failing frames; False raises the first failure.
            on_skip: called with (label, one-line reason) for each skipped frame.
            progress: show a tqdm progress bar over frames on stderr (None: only on a
                terminal).

        Returns:
            AnalysisReport.

        Raises:
            StructureError: no frame could be analysed (the message is the first
                frame's reason).
            ValueError: an unknown analysis name, or a potential-based one without a
                potential.
        """
        from tqdm import tqdm

        frames = as_structure_list(structures)
        unknown = [a for a in analyses if a not in ANALYSES]
        if unknown:
            raise ValueError(f"unknown analysis {unknown[0]!r}; known: {', '.join(ANALYSES)}")
        wanted = [a for a in ANALYSES if a in analyses]
        per_frame = [a for a in wanted if a in POTENTIAL_ANALYSES]
        for name in per_frame:
            self.calculator(name)
        labels = list(labels) if labels is not None else [f"frame {k}" for k in range(len(frames))]
        if len(labels) != len(frames):
            raise ValueError(f"{len(labels)} labels for {len(frames)} frames")

        # cheap checks first: when no frame passes them, fail at once with one message
        problems: dict[int, Exception] = {}
        for k, atoms in enumerate(frames):
            try:
                self.check(atoms, with_potential=bool(per_frame))
            except (StructureError, CoverageError) as exc:
                if not skip_errors:
                    raise
                problems[k] = exc
        if len(problems) == len(frames):
            raise _nothing_to_analyse(labels, problems)

        kept: list[Atoms] = []
        kept_labels: list[str] = []
        skipped: list[tuple[str, str]] = []
        failures: dict[int, Exception] = {}
        frame_results: dict[str, list[Result]] = {name: [] for name in per_frame}
        bar = tqdm(
            enumerate(zip(frames, labels, strict=True)),
            total=len(frames),
            desc="frames",
            unit="frame",
            file=sys.stderr,
            disable=_no_bar(progress),
        )
        for k, (atoms, label) in bar:
            try:
                if k in problems:
                    raise problems[k]
                done = {name: getattr(self, name)(atoms) for name in per_frame}
            except Exception as exc:  # any failure of one frame skips that frame only
                if not skip_errors:
                    raise
                failures[k] = exc
                skipped.append((label, _one_line(exc)))
                if on_skip is not None:
                    on_skip(label, _one_line(exc))
                continue
            for name, result in done.items():
                frame_results[name].append(result)
            kept.append(atoms)
            kept_labels.append(label)
        if not kept:
            raise _nothing_to_analyse(labels, failures)

        real = prepare(kept)
        results: dict[str, Result] = {}
        for name in wanted:
            if name in per_frame:
                results[name] = _merge(name, frame_results[name])
            else:
                results[name] = getattr(self, name)(real, **REPORT_OPTIONS.get(name, {}))
        rdf_peaks = {}
        if "rdf" in results:
            from amtoolkit.analysis.rdf import first_peak

            for pair in results["rdf"].pairs:
                rdf_peaks[pair] = first_peak(results["rdf"], pair)
        from amtoolkit.analysis.energy import density

        counts = Counter()
        for a in real:
            counts.update(a.get_chemical_symbols())
        composition = {el: counts[el] for el in species_of(real)}
        return AnalysisReport(
            labels=kept_labels,
            skipped=skipped,
            n_atoms=np.array([len(a) for a in real]),
            composition=composition,
            density=np.array([density(a) for a in real]),
            volume=np.array([a.get_volume() for a in real]),
            rdf_peaks=rdf_peaks,
            results=results,
            comparison=self.compare(real, reference) if reference is not None else None,
            potential=self.potential_name,
        )

    def _check_coverage(self, structures: Atoms | Sequence[Atoms]) -> None:
        if isinstance(self.potential, str):
            from amtoolkit.potentials import check_elements

            check_elements(self.potential, species_of(prepare(structures)))


# ----------------------------------------------------------------------------- helpers


def _check_potential_name(name: str) -> None:
    """Fail early, with the known names, on a potential name that does not exist."""
    try:
        from amtoolkit.potentials import POTENTIALS
    except ImportError:  # registry not available: get_calculator will say
        return
    if name not in POTENTIALS:
        raise ValueError(f"unknown potential {name!r}; known: {', '.join(sorted(POTENTIALS))}")


def _nothing_to_analyse(labels: Sequence[str], failures: Mapping[int, Exception]) -> Exception:
    """The error to raise when every frame failed: the first failure, named by its label."""
    k, exc = min(failures.items())
    message = f"{labels[k]}: {_one_line(exc)}"
    if len(labels) > 1:
        message = f"no frame could be analysed; {message}"
    error_type = CoverageError if isinstance(exc, CoverageError) else StructureError
    return error_type(message)


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, (StructureError, CoverageError)) or not text:
        return text or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _merge(name: str, results: list[Result]) -> Result:
    """Combine one-frame results of a potential-based analysis into a set result."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    if name == "energy":
        return dataclasses.replace(
            first,
            **{
                f: np.concatenate([getattr(r, f) for r in results])
                for f in ("energy_per_atom", "density", "pressure", "n_atoms")
            },
        )
    if name == "elastic":
        stacked = {
            f: np.concatenate([getattr(r, f) for r in results])
            for f in (
                "C_per_structure",
                "C_error",
                "bulk_modulus",
                "shear_modulus",
                "youngs_modulus",
                "poisson_ratio",
                "residual",
            )
        }
        return dataclasses.replace(first, C=stacked["C_per_structure"].mean(axis=0), **stacked)
    if name == "vdos":
        return _merge_vdos(results)
    raise ValueError(f"cannot combine per-frame results of {name!r}")


def _merge_vdos(results: list[Result]) -> Result:
    """Re-broaden every frame's modes on one grid spanning all of them (as `vdos` does)."""
    from amtoolkit.analysis.vdos import GRID_MARGIN_SIGMAS, broadened_dos

    first = results[0]
    modes = tuple(m for r in results for m in r.mode_frequencies)
    every = np.concatenate(modes)
    margin = GRID_MARGIN_SIGMAS * first.sigma
    frequency = np.linspace(
        min(0.0, float(every.min())) - margin, float(every.max()) + margin, len(first.frequency)
    )
    per_structure = np.array([broadened_dos(m, frequency, first.sigma) for m in modes])
    return dataclasses.replace(
        first,
        frequency=frequency,
        dos=per_structure.mean(axis=0),
        mode_frequencies=modes,
        per_structure=per_structure,
    )


def _summary_rows(name: str, result: Result, report: AnalysisReport) -> list[tuple[str, str]]:
    if name == "rdf":
        rows = [(f"first peak {a}-{b} (A)", f"{r:.3f}") for (a, b), r in report.rdf_peaks.items()]
        return rows or [("first peak (A)", "n/a")]
    if name == "coordination":
        rows = []
        for el, mean in result.mean.items():
            dist = result.distribution.get(el, {})
            top = ", ".join(f"{cn}: {f:.3f}" for cn, f in sorted(dist.items()) if f >= 0.001)
            rows.append((f"{el} mean coordination", f"{mean:.3f}  ({top})"))
        return rows
    if name == "adf":
        peak = float(result.theta[int(np.argmax(result.p))])
        rows = [("most likely angle (deg)", f"{peak:.1f}")]
        for el, p in result.by_center.items():
            if np.any(p > 0):
                rows.append(
                    (
                        f"most likely angle at {el} (deg)",
                        f"{float(result.theta[int(np.argmax(p))]):.1f}",
                    )
                )
        return rows
    if name == "rings":
        total = sum(result.counts.values())
        unit = f" ({'+'.join(result.count_species)} atoms)" if result.count_species else ""
        fractions = ", ".join(f"{n}: {f:.3f}" for n, f in result.fractions.items())
        return [
            ("rings found", f"{total} (up to size {result.maxlength})"),
            (f"mean ring size{unit}", f"{result.mean_size:.3f}"),
            ("size fractions", fractions or "none"),
        ]
    if name == "structure_factor":
        q = result.peak_position()
        s = float(np.interp(q, result.q, result.s))
        return [("main peak q (1/A)", f"{q:.3f}"), ("S(q) at main peak", f"{s:.3f}")]
    if name == "crystallinity":
        n_cryst = int(np.sum(result.crystalline))
        groups = Counter(result.spacegroup)
        return [
            ("crystalline frames", f"{n_cryst} of {len(result.crystalline)}"),
            ("space groups", ", ".join(f"{g} x{c}" for g, c in groups.most_common())),
        ]
    if name == "energy":
        state = "relaxed" if result.relaxed else "as given"
        return [
            (f"energy (eV/atom, {state})", _mean_std(result.energy_per_atom, "{:.4f}")),
            (f"density (g/cm3, {state})", _mean_std(result.density, "{:.3f}")),
            (f"pressure (GPa, {state})", _mean_std(result.pressure, "{:.3f}")),
        ]
    if name == "elastic":
        return [
            ("bulk modulus K (GPa)", _mean_std(result.bulk_modulus, "{:.1f}")),
            ("shear modulus G (GPa)", _mean_std(result.shear_modulus, "{:.1f}")),
            ("Young's modulus E (GPa)", _mean_std(result.youngs_modulus, "{:.1f}")),
            ("Poisson ratio", _mean_std(result.poisson_ratio, "{:.3f}")),
            ("fit residual (GPa)", _mean_std(result.residual, "{:.3f}")),
        ]
    if name == "vdos":
        f = np.asarray(result.frequency)
        dos = np.asarray(result.dos)
        return [
            ("peak frequency (THz)", f"{float(f[int(np.argmax(dos))]):.2f}"),
            ("max frequency (THz)", f"{float(f[dos > 0].max()) if np.any(dos > 0) else 0:.2f}"),
        ]
    return []


def _mean_std(values, fmt: str) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return fmt.format(float(values[0]))
    return f"{fmt.format(float(values.mean()))} +- {fmt.format(float(values.std()))}"


def _table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    width = max([len(k) for k, _ in rows] + [len(title)])
    lines = [title, "-" * len(title)]
    lines += [f"{key:<{width}}  {value}" for key, value in rows]
    return "\n".join(lines)


def _atomic_savefig(fig: Figure, path: str | os.PathLike) -> None:
    from amtoolkit.io import atomic_output

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
