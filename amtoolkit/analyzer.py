"""The Analyzer: one object that measures structures and compares sets of them.

A thin facade over the pure functions in :mod:`amtoolkit.analysis` and the classical
potentials in :mod:`amtoolkit.potentials`: each method resolves the potential's
calculator (when it needs one) and calls the pure function::

    from amtoolkit import Analyzer
    an = Analyzer(potential="tersoff-sio2")
    an.rdf(frames).plot()
    print(an.compare(generated, reference).summary())

Structure-only methods (rdf, adf, coordination, network, rings, structure_factor, crystallinity)
need no potential; energy, elastic and vdos do (``Analyzer(potential=...)``).
:meth:`Analyzer.report` runs a chosen list of analyses frame by frame, skipping frames
that fail, and is what ``amtool analyze`` prints (:mod:`amtoolkit.analysis.report`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from amtoolkit.analysis._options import keyword_names, nearest
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.bonds import Cutoffs
from amtoolkit.analysis.cache import FrameCache, cached_frames
from amtoolkit.analysis.compare import (
    COMPARE_ADF_CUTOFF,
    COMPARE_ADF_NBINS,
    COMPARE_RDF_NBINS,
    COMPARE_RDF_RMAX,
    Comparison,
    compare,
)
from amtoolkit.analysis.elastic import ELASTIC_DEFAULTS, elastic_settings
from amtoolkit.analysis.report import (
    ANALYSES,
    DEFAULT_ANALYSES,
    FRAME_ANALYSES,
    POTENTIAL_ANALYSES,
    REPORT_OPTIONS,
    AnalysisReport,
    FrameRunner,
    build_report,
    labelled_error,
    merge_frame_results,
    report_options,
    select_analyses,
    serial_frames,
)
from amtoolkit.errors import StructureError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from amtoolkit.analysis.adf import ADFResult
    from amtoolkit.analysis.coordination import CoordinationResult
    from amtoolkit.analysis.crystallinity import CrystallinityResult
    from amtoolkit.analysis.elastic import ElasticResult
    from amtoolkit.analysis.energy import EnergyResult
    from amtoolkit.analysis.entropy import EntropyResult, OverlapResult
    from amtoolkit.analysis.metrics import PropertyErrors
    from amtoolkit.analysis.network import NetworkResult
    from amtoolkit.analysis.rdf import RDFResult
    from amtoolkit.analysis.rings import RingsResult
    from amtoolkit.analysis.structure_factor import MeasuredSq, StructureFactorResult
    from amtoolkit.analysis.vdos import VDOSResult

# the report and comparison names stay importable from here (they used to live here)
__all__ = [
    "ANALYSES",
    "COMPARE_ADF_CUTOFF",
    "COMPARE_ADF_NBINS",
    "COMPARE_RDF_NBINS",
    "COMPARE_RDF_RMAX",
    "DEFAULT_ANALYSES",
    "ELASTIC_DEFAULTS",
    "FRAME_ANALYSES",
    "POTENTIAL_ANALYSES",
    "REPORT_OPTIONS",
    "AnalysisReport",
    "Analyzer",
    "Comparison",
]


class Analyzer:
    """Measure amorphous structures and compare sets of them.

    Every method takes one Atoms or a sequence (a set); set results are averages over
    the set with per-structure values kept. Ghost atoms (Z = 0) are ignored.

    Args:
        potential: a potential name from ``amtoolkit.potentials.POTENTIALS`` (e.g.
            ``"sw-si"``, ``"tersoff-sio2"``), the path of a potential file (any LAMMPS
            potential, ``"cuzr.yaml"``; docs/potentials.md), an ASE calculator, or None.
            Needed only for energy, elastic and vdos (and relaxation before
            crystallinity).
        workers: processes that share out the frames of a set in energy, elastic, vdos
            and report (one serial LAMMPS run each; same numbers as one process). Needs
            a potential name: a calculator object cannot be copied to other processes.
        cache: a folder (or `analysis.cache.FrameCache`) that keeps the per-frame results
            of energy, elastic, vdos and crystallinity as each frame of a set finishes
            (``report``, ``per_frame``, and those methods on a set); a later Analyzer
            with the same potential reads them back instead of measuring again, so an
            interrupted analysis of many frames continues where it stopped. Needs a
            potential name (or none). None or False: no cache.
        **potential_options: keyword arguments for ``get_calculator`` when `potential`
            is a name.

    Raises:
        ValueError: unknown potential name (the message lists the known ones), workers
            below 1, or workers > 1 or a cache with a calculator object.
        TypeError: `potential` is neither a name nor a calculator, or potential options
            without a potential name (a keyword close to the Analyzer's own, such as
            ``potental=``, is named as a misspelling).
    """

    def __init__(
        self,
        potential: str | Calculator | None = None,
        *,
        workers: int = 1,
        cache: str | os.PathLike | FrameCache | bool | None = None,
        **potential_options: Any,
    ):
        if potential is not None and not isinstance(potential, (str, os.PathLike, Calculator)):
            raise TypeError(
                f"potential must be a name or an ASE calculator, got {type(potential).__name__}"
            )
        if isinstance(potential, (str, os.PathLike)):
            potential = _check_potential_name(potential)
            from amtoolkit.potentials import get_spec

            get_spec(potential).resolve_options(potential_options)  # bad options: now
        elif potential_options:
            for key in potential_options:  # a misspelled keyword of the Analyzer itself
                close = nearest(key, keyword_names(Analyzer.__init__))
                if close:
                    raise TypeError(f"unknown keyword {key!r} (did you mean {close!r}?)")
            given = "no potential" if potential is None else "a calculator object"
            raise TypeError(
                f"potential options {', '.join(sorted(potential_options))} need a potential "
                f"name, not {given} (a calculator carries its own settings)"
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if workers > 1 and isinstance(potential, Calculator):
            raise ValueError(
                "workers > 1 needs a potential name (e.g. 'sw-si'): a calculator object "
                "cannot be copied to worker processes"
            )
        if cache is False:  # as the command line's --no-cache
            cache = None
        elif cache is True:
            raise TypeError("cache=True: give the cache folder (a path), or None / False")
        if cache is not None and isinstance(potential, Calculator):
            raise ValueError(
                "cache needs a potential name (e.g. 'sw-si'): the results of a calculator "
                "object cannot be told apart from those of another"
            )
        self.workers = workers
        self.potential = potential
        self._potential_options = dict(potential_options)
        if cache is not None and not isinstance(cache, FrameCache):
            cache = FrameCache(cache, potential, potential_options)
        self.cache: FrameCache | None = cache
        self._calculator: Calculator | None = (
            potential if isinstance(potential, Calculator) else None
        )

    def __repr__(self) -> str:
        workers = f", workers={self.workers}" if self.workers > 1 else ""
        cache = f", cache={str(self.cache.directory)!r}" if self.cache is not None else ""
        return f"Analyzer(potential={self.potential_name!r}{workers}{cache})"

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
        one real atom, no two atoms on one site (nearer than
        `potentials.calculator.COINCIDENT`: an atom entered twice, which bond counts take
        for a bond and the RDF leaves out); with `with_potential` and a named potential,
        that the potential covers every element.
        """
        from amtoolkit.analysis._structures import atom_name
        from amtoolkit.potentials.calculator import COINCIDENT, overlapping_pair

        (real,) = prepare(atoms)
        pair = overlapping_pair(real, COINCIDENT)
        if pair is not None:
            i, j, d = pair
            raise StructureError(
                f"{atom_name(real, i)} and {atom_name(real, j)} are {d:.3g} Å apart (under "
                f"{COINCIDENT} Å): one site holds two atoms"
            )
        if with_potential:
            self._check_coverage(real)

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

    def network(
        self,
        structures: Atoms | Sequence[Atoms],
        cutoffs: Cutoffs = None,
        formers: str | Sequence[str] | None = None,
        anion: str = "O",
    ) -> NetworkResult:
        """Q^n speciation of the network formers and anion types of oxide glasses (see
        `analysis.network.network`).

        Args:
            structures: one Atoms or a set (pooled).
            cutoffs: bond cutoff specification; only former-anion bonds count (default:
                the covalent rule, Si-O < 2.30 Å).
            formers: network formers (default: those of `analysis.network.FORMERS`
                present: B, Si, P, Ge, As).
            anion: the bridging element.

        Returns:
            NetworkResult (``qn``, ``connectivity``, ``anion_types``, ``per_structure``;
            ``.plot()``).
        """
        from amtoolkit.analysis.network import network

        return network(structures, cutoffs, formers=formers, anion=anion)

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
                silica convention; docs/analysis.md, *Ring statistics*) and all atoms
                otherwise.

        Returns:
            RingsResult (``counts``, ``mean_size``, ``per_structure``; ``.plot()``).
        """
        structures = _materialised(structures)
        from amtoolkit.analysis.rings import rings

        if count_species == "auto":
            silica = {{"Si", "O"} <= set(a.get_chemical_symbols()) for a in prepare(structures)}
            if len(silica) > 1:
                raise ValueError(
                    "count_species='auto' counts silica frames in Si atoms and others in all "
                    "atoms, and this set mixes both; analyse them apart or give count_species"
                )
            count_species = "Si" if silica == {True} else None
        return rings(structures, cutoff=cutoff, maxlength=maxlength, count_species=count_species)

    def structure_factor(
        self,
        structures: Atoms | Sequence[Atoms],
        qmax: float = 20.0,
        nq: int = 400,
        rmax: float | None = None,
        window: bool = True,
        dr: float = 0.01,
        weighting: str = "number",
    ) -> StructureFactorResult:
        """Static structure factor S(q) from g(r) (see `analysis.structure_factor`).

        Args:
            structures: one Atoms or a set (averaged).
            qmax: largest q, 1/Å.
            nq: number of q points.
            rmax: upper limit of the r integral, Å (default: half the shortest lattice
                vector, `analysis.structure_factor.half_width`).
            window: apply the Lorch window.
            dr: bin width of the g(r) that is transformed, Å.
            weighting: "number" (all atoms alike), "neutron" (coherent scattering
                lengths) or "xray" (atomic form factors), to compare with diffraction data.

        Returns:
            StructureFactorResult (``q``, ``s``, ``per_structure``; ``.plot()``).
        """
        from amtoolkit.analysis.structure_factor import structure_factor

        return structure_factor(
            structures, qmax=qmax, nq=nq, rmax=rmax, window=window, dr=dr, weighting=weighting
        )

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
        structures = _materialised(structures)
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
        structures = _materialised(structures)
        from amtoolkit.analysis.energy import relax_structure

        calc = self._calculator_for("relax", structures)
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
        structures = _materialised(structures)
        from amtoolkit.analysis.energy import energy

        calc = self._calculator_for("energy", structures)
        if self._by_frame(structures):
            return self._set_by_frame("energy", structures, relax=relax, fmax=fmax)
        return energy(structures, calc, relax=relax, fmax=fmax)

    def elastic(
        self,
        structures: Atoms | Sequence[Atoms],
        relax: bool = True,
        delta: float | None = None,
        fmax: float | None = None,
        n_steps: int | None = None,
        relax_ions: bool = True,
        method: str = "strain",
        displacement: float = 1e-3,
    ) -> ElasticResult:
        """Relaxed-ion elastic constants and isotropic moduli, GPa (`analysis.elastic`).

        Args:
            structures: one Atoms or a set.
            relax: relax positions and cell (zero pressure) before straining.
            delta: strain increment (None: 0.005 for "strain", 1e-4 for "hessian").
            fmax: force criterion of all relaxations, eV/Å. None: the potential's
                label setting (`PotentialSpec.elastic_options`: 1e-2 for tersoff-sio2,
                as the a-sio2 labels, 1e-3 for bmp-glass), else 1e-4 (1e-3 leaves the
                ions of diamond Si under-relaxed: C44 56.1 instead of 56.4 GPa).
            n_steps: strains per strain pattern ("strain" only). None: the potential's
                label setting (3 for tersoff-sio2 and bmp-glass), else 5.
            relax_ions: relaxed-ion constants (False: clamped-ion constants).
            method: "strain" (stress-strain fit, ions relaxed at every strain) or
                "hessian" (harmonic route C_affine - Xi^T H^+ Xi / V at the relaxed
                structure; needs a smooth energy surface, see docs/analysis.md).
            displacement: atomic finite-difference step of the Hessian, Å ("hessian").

        Returns:
            ElasticResult (``C``, ``bulk_modulus``, ``shear_modulus`` ... per structure).

        Raises:
            ValueError: no potential; CoverageError: an element the potential lacks.
        """
        structures = _materialised(structures)
        from amtoolkit.analysis.elastic import elastic

        calc = self._calculator_for("elastic", structures)
        if method == "hessian" and isinstance(self.potential, str):
            from amtoolkit.potentials import get_spec

            if not get_spec(self.potential).smooth:
                warnings.warn(
                    f"{self.potential!r} is not smooth (a sharp cutoff): the harmonic "
                    "route's finite differences cross it (G = -373 GPa with bmp-glass on a "
                    "Li silicate); use method='strain'",
                    UserWarning,
                    stacklevel=2,
                )
        defaults = self.elastic_defaults()
        options = dict(
            relax=relax,
            delta=delta,
            fmax=defaults["fmax"] if fmax is None else fmax,
            n_steps=defaults["n_steps"] if n_steps is None else n_steps,
            relax_ions=relax_ions,
            method=method,
            displacement=displacement,
        )
        if self._by_frame(structures):
            return self._set_by_frame("elastic", structures, **options)
        return elastic(structures, calc, **options)

    def elastic_defaults(self) -> dict[str, Any]:
        """``fmax`` and ``n_steps`` that `elastic` uses when not given: the potential's
        label settings (`PotentialSpec.elastic_options`), else ``ELASTIC_DEFAULTS``."""
        return elastic_settings(self.potential if isinstance(self.potential, str) else None)

    def vdos(
        self,
        structures: Atoms | Sequence[Atoms],
        displacement: float = 0.01,
        sigma: float = 0.2,
        nbins: int = 400,
        relax: bool = True,
        frequency_range: tuple[float, float] | None = None,
        fmax: float = 1e-3,
        symmetrize: bool = True,
    ) -> VDOSResult:
        """Vibrational density of states from Gamma-point phonons (`analysis.vdos`).

        Args:
            structures: one Atoms or a set (averaged).
            displacement: finite-displacement amplitude, Å.
            sigma: Gaussian broadening, THz.
            nbins: number of frequency points.
            relax: relax positions and cell first.
            frequency_range: (low, high) of the frequency grid, THz; default spans every
                mode plus 5 sigma on either side.
            fmax: force criterion of that relaxation, eV/Å.
            symmetrize: symmetrize force constants (acoustic sum rule) first.

        Returns:
            VDOSResult (``frequency`` THz, ``dos``, ``mode_frequencies``; ``.plot()``).

        Raises:
            ValueError: no potential; CoverageError: an element the potential lacks.
        """
        structures = _materialised(structures)
        from amtoolkit.analysis.vdos import check_options, vdos

        check_options(displacement, sigma, nbins, frequency_range, fmax)  # before any worker
        calc = self._calculator_for("vdos", structures)
        options = dict(
            displacement=displacement,
            sigma=sigma,
            nbins=nbins,
            relax=relax,
            frequency_range=frequency_range,
            fmax=fmax,
            symmetrize=symmetrize,
        )
        if self._by_frame(structures):
            return self._set_by_frame("vdos", structures, **options)
        return vdos(structures, calc, **options)

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
        self,
        generated: Atoms | Sequence[Atoms],
        reference: Atoms | Sequence[Atoms],
        *,
        energy: bool | None = None,
        generated_energy: float | None = None,
    ) -> Comparison:
        """Compare a generated set with a reference set (`analysis.compare.compare`).

        RDF (rmax 5 Å, 100 bins) and ADF (cutoff 3.0 Å, 180 bins) are averaged over each
        set, then compared by RMSD; densities are compared as given. With a potential,
        both sets are relaxed and their mean energies per atom compared (``energy=None``,
        the default: when the Analyzer has a potential; ``True``: always, ``False``:
        never; `generated_energy`: the generated set's, when already known). The
        relaxations run as `energy` runs them: shared over the `workers` and kept in the
        `cache`, the reference's too.

        Returns:
            Comparison (``.summary()`` prints a table).

        Raises:
            CoverageError: the potential lacks an element of either set.
            ValueError: ``energy=True`` on an Analyzer without a potential.
        """
        calc = None
        reference_energy = None
        if energy and self.potential is None:
            self.calculator("the energies of compare(energy=True)")
        if self.potential is not None and energy is not False:
            calc = self.calculator("energy")  # energy() checks each set's coverage
            if generated_energy is None:
                generated_energy = self.energy(generated).mean_energy
            else:
                self._check_coverage(generated)
            reference_energy = self.energy(reference).mean_energy
        return compare(
            generated,
            reference,
            calc,
            potential=self.potential_name,
            generated_energy=generated_energy,
            reference_energy=reference_energy,
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
        options: Mapping[str, Mapping[str, Any]] | None = None,
        measured_sq: MeasuredSq | str | os.PathLike | None = None,
        note: Callable[[str], None] | None = None,
    ) -> AnalysisReport:
        """Run several analyses on a set, skipping frames that fail (`analysis.report`).

        Frames are checked one by one (geometry, and coverage by the potential when a
        potential-based analysis is asked for); the potential-based analyses (energy,
        elastic, vdos) also run frame by frame. A frame that fails is left out of every
        analysis and reported through `on_skip`. Structure analyses then run on the
        remaining set.

        Args:
            structures: frames to analyse.
            analyses: names from `ANALYSES`.
            labels: one label per frame for messages (default "frame k").
            reference: a reference set to compare with (see `compare`); the structure
                analyses asked for also run on it, side by side in the summary and figure.
            skip_errors: skip failing frames; False raises the first failure.
            on_skip: called with (label, one-line reason) for each skipped frame.
            progress: show a tqdm progress bar over frames on stderr (None: only on a
                terminal).
            options: keyword arguments of the analyses by name, over the report's own
                (`analysis.report.REPORT_OPTIONS`), e.g. ``{"sq": {"weighting":
                "neutron"}}``; the reference set is analysed with them too.
            measured_sq: a measured S(q) (`analysis.structure_factor.MeasuredSq`, or a
                two-column file of q in 1/Å and S(q)) to set beside the computed one
                (give the weighting of the measurement in `options`): the report's
                ``sq_agreement`` (RMSD and R factor), a summary section, the JSON and the
                S(q) panel. Needs the "sq" analysis.
            note: called with a line of progress text, per frame when no bar is shown
                and before each set-wide analysis of a large set
                (`analysis.report.build_report`); e.g. ``print``.

        Returns:
            AnalysisReport (``.summary()``, ``.to_dict()``, ``.plot(path)``).

        Raises:
            StructureError: no frame could be analysed (the message is the first
                frame's reason).
            ValueError: an unknown analysis name, or a potential-based one without a
                potential.
        """
        wanted = select_analyses(analyses)
        chosen = report_options(wanted, options)
        measured = self._measured_sq(measured_sq, chosen)
        if measured is not None:
            _warn_unweighted(structures, chosen["structure_factor"])
        with_potential = [name for name in wanted if name in POTENTIAL_ANALYSES]
        for name in with_potential:
            self.calculator(name)  # fail now, not on every frame
        if "crystallinity" in wanted and self.potential is not None:
            with_potential.append("crystallinity")  # it relaxes with the potential first
        report = build_report(
            structures,
            wanted,
            run=self._run,
            check=partial(self.check, with_potential=bool(with_potential)),
            labels=labels,
            compare=None if reference is None else partial(self.compare, reference=reference),
            skip_errors=skip_errors,
            on_skip=on_skip,
            progress=progress,
            potential=self.potential_name,
            run_frames=self._frame_runner(),
            reference=reference,
            options=options,
            note=note,
        )
        return report if measured is None else dataclasses.replace(report, measured_sq=measured)

    @staticmethod
    def _measured_sq(
        measured_sq: MeasuredSq | str | os.PathLike | None,
        chosen: Mapping[str, Mapping[str, Any]],
    ) -> MeasuredSq | None:
        """The measured S(q) of a report, read and checked against the computed q grid
        (`chosen`: the report's options by analysis) before any analysis runs."""
        from amtoolkit.analysis.structure_factor import DEFAULT_NQ, DEFAULT_QMAX, MeasuredSq

        if measured_sq is None:
            return None
        if "structure_factor" not in chosen:
            raise ValueError(
                "measured_sq is compared with the computed S(q): add 'sq' to the analyses"
            )
        if not isinstance(measured_sq, MeasuredSq):
            measured_sq = MeasuredSq.read(measured_sq)
        sq = chosen["structure_factor"]
        qmax, nq = sq.get("qmax", DEFAULT_QMAX), sq.get("nq", DEFAULT_NQ)
        inside = measured_sq.inside(qmax / nq, qmax)
        outside = len(inside) - int(np.count_nonzero(inside))
        if outside:
            warnings.warn(
                f"{measured_sq.label}: {outside} of {len(inside)} measured points lie outside "
                f"the computed q range ({qmax / nq:.3g}-{qmax:.3g} 1/Å) and are not compared "
                "(q must be in 1/Å; a larger qmax compares more)",
                UserWarning,
                stacklevel=3,
            )
        return measured_sq

    def per_frame(
        self, name: str, structures: Atoms | Sequence[Atoms], **options: Any
    ) -> list[Any]:
        """A per-frame analysis (`FRAME_ANALYSES`: potential-based, crystallinity, rings) of
        every frame on its own: each frame's result, or the exception that failed it, in
        frame order.

        For sets where some structures may fail (a relaxation that breaks, an element
        the potential lacks) and the others must still be measured. With ``workers > 1``
        the frames are shared out over worker processes.

        Args:
            name: "energy", "elastic", "vdos", "crystallinity" or "rings".
            structures: one Atoms or a set.
            **options: keyword arguments of that method (e.g. ``fmax=1e-2``).

        Returns:
            One single-structure result (e.g. EnergyResult) or Exception per frame.

        Raises:
            ValueError: `name` is not a per-frame analysis, or a potential-based one
                without a potential.
        """
        if name not in FRAME_ANALYSES:
            raise ValueError(f"per_frame runs {FRAME_ANALYSES}, not {name!r}")
        if name in POTENTIAL_ANALYSES:
            self.calculator(name)
        frames = [structures] if isinstance(structures, Atoms) else list(structures)
        results: list[Any] = [None] * len(frames)
        for k, outcome in self._frame_runner()([(name, options)], frames):
            results[k] = outcome if isinstance(outcome, Exception) else outcome[name]
        return results

    # -- helpers -------------------------------------------------------------------------

    def _run(self, name: str, structures: Atoms | Sequence[Atoms], **options: Any) -> Any:
        """Analysis `name` (a method of this class) on `structures`."""
        return getattr(self, name)(structures, **options)

    def _by_frame(self, structures: Atoms | Sequence[Atoms]) -> bool:
        """Whether a potential-based analysis of a set runs frame by frame through
        `_frame_runner` (worker processes, or the cache); one Atoms never does."""
        if isinstance(structures, Atoms):
            return False
        return (self.workers > 1 and len(structures) > 1) or self.cache is not None

    def _frame_runner(self) -> FrameRunner:
        """How the per-frame analyses of a set run: in this process or in worker
        processes, through the cache when there is one."""
        serial = serial_frames(self._run)
        runner = serial
        if self.workers > 1 and (self.potential is None or isinstance(self.potential, str)):
            from amtoolkit.analysis.parallel import pool_frames

            pooled = pool_frames(self.potential, self._potential_options, self.workers)

            def runner(tasks, frames):  # one frame is not worth starting processes for
                return (pooled if len(frames) > 1 else serial)(tasks, frames)

        return runner if self.cache is None else cached_frames(runner, self.cache)

    def _set_by_frame(self, name: str, structures: Sequence[Atoms], **options: Any) -> Any:
        """Analysis `name` of a set, frame by frame (worker processes, the cache), as one result.

        Raises:
            The first failing frame's error (in frame order), its message prefixed with
            the frame index.
        """
        results = self.per_frame(name, prepare(structures), **options)
        for k, outcome in enumerate(results):
            if isinstance(outcome, Exception):
                raise frame_error(k, outcome) from outcome
        return merge_frame_results(name, results)

    def _calculator_for(self, what: str, structures: Atoms | Sequence[Atoms]) -> Calculator:
        """The calculator, after checking that the potential covers every element."""
        calc = self.calculator(what)
        self._check_coverage(structures)
        return calc

    def _check_coverage(self, structures: Atoms | Sequence[Atoms]) -> None:
        """The named potential covers every element, and gives no frame a net charge
        (the energy and stress of a charged periodic cell are not a material's)."""
        if isinstance(self.potential, str):
            from amtoolkit.potentials import check_elements, get_spec
            from amtoolkit.potentials.calculator import charge_message

            frames = prepare(structures)
            check_elements(self.potential, species_of(frames))
            spec = get_spec(self.potential)
            for k, atoms in enumerate(frames):
                message = charge_message(atoms, spec)
                if message is not None:
                    where = f"frame {k}: " if len(frames) > 1 else ""
                    raise StructureError(f"{where}{message}; give a charge-balanced cell")


def _materialised(structures: Atoms | Iterable[Atoms]) -> Atoms | Sequence[Atoms]:
    """`structures` as it is, or an iterator of frames (``ase.io.iread``) as a list: the
    methods that read a set more than once (coverage check, then the analysis) need one."""
    if isinstance(structures, (Atoms, Sequence)):
        return structures
    return list(structures)


def _check_potential_name(name: str | os.PathLike) -> str:
    """The potential as the Analyzer keeps it: a registered name, or a potential file as
    an absolute path (worker processes may start elsewhere). Fails early, with the known
    names, on a name that does not exist, and on a missing or malformed file."""
    from amtoolkit.potentials import POTENTIALS
    from amtoolkit.potentials.files import is_potential_file, load_potential

    if is_potential_file(name):
        return load_potential(name).source
    if name not in POTENTIALS:
        raise ValueError(
            f"unknown potential {name!r}; known: {', '.join(sorted(POTENTIALS))} "
            "(or a potential file, NAME.yaml)"
        )
    return str(name)


def frame_error(k: int, error: Exception) -> Exception:
    """`error` with "structure k: " before its message (same type when it can be rebuilt)."""
    return labelled_error(f"structure {k}", error)


def _warn_unweighted(structures: Atoms | Sequence[Atoms], sq_options: Mapping[str, Any]) -> None:
    """Warn when a measured S(q) of several elements meets a number-weighted one."""
    frames = [structures] if isinstance(structures, Atoms) else list(structures)
    # the symbols as given (no structure checks here: a bad frame is the report's to skip)
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()} - {"X"})
    if sq_options.get("weighting", "number") == "number" and len(elements) > 1:
        warnings.warn(
            f"a measured S(q) of {', '.join(elements)} is weighted by how the radiation sees "
            "each element, and this S(q) is number-weighted: give the measurement's "
            "weighting (amtool analyze --sq-weighting neutron or xray; in Python "
            "options={'sq': {'weighting': 'neutron'}})",
            UserWarning,
            stacklevel=3,
        )
