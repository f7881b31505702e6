"""Reports: several analyses of one set of frames, a summary table and a figure.

:func:`build_report` runs a list of analyses over a set, frame by frame where a
potential is involved, leaving out frames that fail; :class:`AnalysisReport` holds what
was measured, prints it as tables (:meth:`AnalysisReport.summary`, what ``amtool
analyze`` shows) and draws every result that has a picture on one figure
(:meth:`AnalysisReport.plot`). The analyses themselves are passed in as a callable, so
this module knows nothing about potentials; :meth:`amtoolkit.Analyzer.report` wires
them up.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import textwrap
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from amtoolkit.analysis._peaks import smoothed, vertex
from amtoolkit.analysis._result import Result, to_jsonable
from amtoolkit.analysis._structures import as_structure_list, prepare, species_of
from amtoolkit.analysis.energy import density
from amtoolkit.analysis.network import ANIONS, FORMERS
from amtoolkit.analysis.rdf import first_peak
from amtoolkit.data.properties import TARGET_PREFIX, label_of
from amtoolkit.errors import CoverageError, StructureError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from amtoolkit.analysis.compare import Comparison
    from amtoolkit.analysis.metrics import PropertyErrors, TargetCheck
    from amtoolkit.analysis.structure_factor import MeasuredSq, SqAgreement

__all__ = [
    "ANALYSES",
    "DEFAULT_ANALYSES",
    "POTENTIAL_ANALYSES",
    "REPORT_OPTIONS",
    "REPORT_SQ_RMAX",
    "TETRAHEDRAL_ANGLE",
    "TITLES",
    "AnalysisReport",
    "build_report",
    "first_sq_peak",
    "format_table",
    "mean_std",
    "merge_frame_results",
    "one_line",
    "report_options",
    "run_frame",
    "save_figure",
    "select_analyses",
    "serial_frames",
    "summary_rows",
]

#: analyses a report knows, in the order they are run and printed
ANALYSES = (
    "rdf",
    "adf",
    "coordination",
    "network",
    "rings",
    "structure_factor",
    "crystallinity",
    "energy",
    "elastic",
    "vdos",
)
#: analyses whose results `AnalysisReport.plot` draws (design targets get panels too)
PLOTTED_ANALYSES = (
    "rdf",
    "adf",
    "coordination",
    "network",
    "rings",
    "structure_factor",
    "energy",
    "elastic",
    "vdos",
)
#: what a report runs when nothing is asked for: seconds on 3000 atoms
DEFAULT_ANALYSES = ("rdf", "coordination")
#: analyses that need a potential; run frame by frame (they are the slow ones)
POTENTIAL_ANALYSES = ("energy", "elastic", "vdos")
#: analyses a report runs frame by frame, so that a frame where one fails (a relaxation
#: that breaks, a cell spglib cannot read) is skipped and the others are still measured,
#: and a long trajectory's frames share out over workers and land in the cache (rings:
#: 0.7 s a 3000-atom frame)
FRAME_ANALYSES = (*POTENTIAL_ANALYSES, "crystallinity", "rings")
#: upper limit of the g(r) integral of S(q) in reports, Å: one q resolution for every cell
#: size (the Lorch window smears features narrower than about 2 pi / rmax), periodic images
#: included in cells narrower than twice this; half the cell width of a 216-atom a-Si cell
#: (8 Å) smears its first S(q) peak at 2.0 1/Å down to S = 1.0 where the direct sum over
#: the cell's reciprocal lattice gives 1.47 (20 Å gives 1.30; cost grows as rmax^3)
REPORT_SQ_RMAX = 20.0
ANALYSIS_ALIASES = {"sq": "structure_factor"}
"""Other names of analyses: the `amtool analyze` flag of the structure factor."""

#: options a report passes (bond angles between covalently bonded atoms, not 3.0 Å pairs)
REPORT_OPTIONS: dict[str, dict[str, Any]] = {
    "adf": {"cutoff": None},
    "structure_factor": {"rmax": REPORT_SQ_RMAX},
}
#: tetrahedral angle arccos(-1/3), degrees: the reference line of the ADF panel
TETRAHEDRAL_ANGLE = 109.4712206
#: section and panel titles
TITLES = {
    "rdf": "radial distribution function",
    "adf": "bond-angle distribution (covalent bonds)",
    "coordination": "coordination",
    "network": "network connectivity (Q^n)",
    "rings": "rings",
    "structure_factor": "structure factor S(q)",
    "crystallinity": "crystallinity",
    "energy": "energy",
    "elastic": "elastic moduli",
    "vdos": "vibrational density of states (Gamma point)",
}

#: per-structure array fields of the potential-based results, joined frame after frame
_PER_STRUCTURE_FIELDS = {
    "energy": ("energy_per_atom", "density", "pressure", "n_atoms"),
    "elastic": (
        "C_per_structure",
        "C_error",
        "bulk_modulus",
        "shear_modulus",
        "youngs_modulus",
        "poisson_ratio",
        "residual",
    ),
}

#: runs one analysis: ``run(name, structures, **options) -> Result``
AnalysisRunner = Callable[..., Result]


class FrameResults(dict):
    """The per-frame results of one frame by analysis name, with the warnings its
    analyses raised (category, message), to be raised again under the frame's label."""

    def __init__(
        self,
        results: Mapping[str, Result],
        raised: Sequence[tuple[type[Warning], str]] = (),
    ) -> None:
        super().__init__(results)
        self.raised = list(raised)


#: the potential-based results of one frame by analysis name, or why the frame failed
FrameOutcome = FrameResults | Exception

#: analyses to run on each frame: (name, keyword options) pairs
FrameTasks = Sequence[tuple[str, Mapping[str, Any]]]

#: ``run_frames(tasks, frames)`` yields ``(k, outcome)`` for every frame k, in any order
FrameRunner = Callable[[FrameTasks, Sequence[Atoms]], Iterator[tuple[int, FrameOutcome]]]


@dataclasses.dataclass(frozen=True)
class AnalysisReport(Result):
    """Everything a report measured on a set of frames.

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
        reference_results: the structure analyses (`REFERENCE_ANALYSES` among those
            computed) of the reference set, drawn over the frames' curves by `plot`.
        targets: property -> `TargetCheck` (per-frame target and measured value, and
            their errors) for the frames' design targets (``atoms.info["target_<property>"]``,
            as `Generator.generate` records them) that a computed analysis measures.
        measured_sq: a measured S(q) set beside the computed one (summary, JSON, and
            drawn in the S(q) panel), or None.
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
    reference_results: dict[str, Result] = dataclasses.field(default_factory=dict)
    targets: dict[str, TargetCheck] = dataclasses.field(default_factory=dict)
    measured_sq: MeasuredSq | None = None
    label_setting: dict[str, Any] | None = None

    @property
    def sq_agreement(self) -> SqAgreement | None:
        """The computed S(q) against `measured_sq`, when both are there."""
        computed = self.results.get("structure_factor")
        if self.measured_sq is None or computed is None:
            return None
        return self.measured_sq.agreement(computed)

    @property
    def target_errors(self) -> dict[str, PropertyErrors]:
        """Property -> errors of the measured values against the frames' targets."""
        return {name: check.errors for name, check in self.targets.items()}

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
        if self.reference_results:
            out["reference"] = {name: r.to_dict() for name, r in self.reference_results.items()}
        if self.targets:
            out["target_errors"] = {name: e.to_dict() for name, e in self.target_errors.items()}
            out["targets"] = {name: c.to_dict() for name, c in self.targets.items()}
        agreement = self.sq_agreement
        if agreement is not None:
            out["measured_sq"] = {**self.measured_sq.to_dict(), **agreement.to_dict()}
        return out

    @property
    def formula(self) -> str:
        """Element counts over all analysed frames, e.g. "O2000 Si1000"."""
        return " ".join(f"{el}{count}" for el, count in self.composition.items())

    def summary(self) -> str:
        """A printable multi-section table (what ``amtool analyze`` prints)."""
        total = sum(self.composition.values())
        fractions = ", ".join(f"{el} {count / total:.3f}" for el, count in self.composition.items())
        skipped = f" ({len(self.skipped)} skipped)" if self.skipped else ""
        rows = [
            ("frames analysed", f"{len(self.labels)}{skipped}"),
            ("atoms per frame", atom_counts(self.n_atoms)),
            ("composition (all frames)", self.formula),
            ("atomic fractions", fractions),
            ("density (g/cm3)", mean_std(self.density, "{:.3f}")),
            ("number density (1/A^3)", mean_std(self.n_atoms / self.volume, "{:.4f}")),
            ("volume (A^3)", mean_std(self.volume, "{:.1f}")),
        ]
        sections = [format_table("structures", rows)]
        sections += [
            format_table(TITLES[name], summary_rows(name, self.results[name], self))
            for name in ANALYSES
            if name in self.results
        ]
        if self.comparison is not None:
            sections.append(self.comparison.summary())
        rows = _reference_rows(self.results, self.reference_results)
        if rows:
            sections.append(format_table("structure vs reference", rows))
        agreement = self.sq_agreement
        if agreement is not None:
            lo, hi = agreement.q_range
            rows = [
                ("measured", agreement.label),
                ("q range compared (1/A)", f"{lo:.3f}-{hi:.3f} ({agreement.n_points} points)"),
                ("S(q) RMSD", f"{agreement.rmsd:.4f}"),
                ("R factor", f"{agreement.r_factor:.4f}"),
            ]
            sections.append(format_table("S(q) vs measured", rows))
        if self.targets:
            rows = _target_rows(self.target_errors) + self._label_scale_rows()
            sections.append(format_table("measured vs target", rows))
        text = "\n\n".join(sections)
        if " +- " in text:
            text += f"\n\n{SPREAD_NOTE}"
        return text

    def _label_scale_rows(self) -> list[tuple[str, str]]:
        """A note when elastic targets are checked against moduli measured at another
        ion-relaxation criterion than the potential's label setting: the targets are
        labels of that setting (Tersoff a-SiO2: 39.2 GPa at 1e-2, 24.9 at 3e-4)."""
        elastic = self.results.get("elastic")
        if elastic is None or elastic.fmax is None or self.potential is None:
            return []
        if not set(self.targets) & ELASTIC_LABELS:
            return []
        rows = []
        if self.label_setting is not None:
            label_fmax, source = self.label_setting["fmax"], "the model's training labels"
            if self.label_setting["moduli"] == "hill":
                rows.append(("moduli", "Voigt-Reuss-Hill averages, as the model's labels"))
        else:
            from amtoolkit.potentials import get_spec

            try:
                spec = get_spec(self.potential)
            except (KeyError, OSError, ValueError):  # a calculator's class name
                return rows
            label_fmax = spec.elastic_options.get("fmax")
            source = f"the {spec.name} label setting"
        if label_fmax is None or math.isclose(elastic.fmax, label_fmax):
            return rows
        return rows + [
            (
                "note",
                f"elastic targets are labels relaxed to fmax {label_fmax:g} eV/Å ({source}); "
                f"moduli at fmax {elastic.fmax:g} are on another scale and do not compare "
                "with them",
            )
        ]

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Draw every computed result that has a picture, one panel each.

        The figure title names the composition, the number of frames and the mean
        density, so that a saved figure says what it shows. With a reference set, its
        curves are drawn dashed grey over the frames' (RDF, ADF, S(q)) and its ring and
        coordination fractions as open markers; each checked design target gets a panel
        of measured against target values.

        Args:
            path: image file to write (format from its ending, written atomically), or None.

        Returns:
            The matplotlib Figure.

        Raises:
            ValueError: nothing that was computed can be plotted.
        """
        panels = [
            (name, TITLES[name], result)
            for name, result in self.results.items()
            if name in PLOTTED_ANALYSES
        ]
        panels += [
            (f"target:{name}", f"{name.replace('_', ' ')}: measured vs target", check)
            for name, check in self.targets.items()
        ]
        if not panels:
            raise ValueError(
                "nothing to plot: compute an RDF, ADF, coordination, rings, S(q), energy, "
                "elastic moduli or VDOS, or measure a property the frames have design "
                "targets for"
            )
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (name, title, result) in zip(axes.flat, panels, strict=False):
            result.plot(ax=ax)
            if name in self.reference_results:
                _draw_reference(ax, name, self.reference_results[name])
            if name == "energy" and self.comparison is not None:
                _draw_reference_energy(ax, self.comparison)
            if name == "structure_factor" and self.measured_sq is not None:
                _draw_measured_sq(ax, self.measured_sq)
            ax.set_title(title, fontsize="medium")
            if name == "adf":
                _mark_tetrahedral_angle(ax)
            _drop_lone_legend(ax)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        # about 11 characters of the medium title font per inch: wrap to the figure width
        fig.suptitle(textwrap.fill(self._figure_title(), width=int(11 * 4.6 * ncols)))
        if path is not None:
            save_figure(fig, path)
        return fig

    def _figure_title(self) -> str:
        rho = mean_std(self.density, "{:.3f}").replace("+-", "±")
        if len(self.labels) == 1:
            what = f"{os.path.basename(self.labels[0])}: {self.formula}"
        else:
            total = sum(self.composition.values())
            fractions = ", ".join(f"{el} {c / total:.1%}" for el, c in self.composition.items())
            atoms = atom_counts(self.n_atoms)
            what = f"{len(self.labels)} frames of {atoms} atoms ({fractions})"
        return f"{what}, density {rho} g/cm³"


# ------------------------------------------------------------------------- building


def select_analyses(analyses: Sequence[str]) -> list[str]:
    """The requested analyses in the order of `ANALYSES`.

    ``"sq"`` (the `amtool analyze --sq` flag) is ``"structure_factor"``; one name may be
    given as a string.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(analyses, str):
        analyses = [analyses]
    analyses = [ANALYSIS_ALIASES.get(a, a) for a in analyses]
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {unknown[0]!r}; known: {', '.join(ANALYSES)}")
    return [a for a in ANALYSES if a in analyses]


def build_report(
    structures: Atoms | Sequence[Atoms],
    analyses: Sequence[str],
    *,
    run: AnalysisRunner,
    check: Callable[[Atoms], None],
    labels: Sequence[str] | None = None,
    compare: Callable[..., Comparison] | None = None,
    skip_errors: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
    progress: bool | None = False,
    potential: str | None = None,
    run_frames: FrameRunner | None = None,
    reference: Sequence[Atoms] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    note: Callable[[str], None] | None = None,
) -> AnalysisReport:
    """Run several analyses on a set, leaving out the frames that fail.

    Every frame is checked first with `check`; when none passes, the first failure is
    raised at once. The per-frame analyses (`FRAME_ANALYSES`: the potential-based ones and
    crystallinity) then run frame by frame, and a frame where any of them fails is left
    out of every analysis and reported through `on_skip`. The structure analyses run
    once on the remaining set, with `REPORT_OPTIONS`; per-frame results are merged with
    :func:`merge_frame_results`.

    Args:
        structures: frames to analyse.
        analyses: names from `ANALYSES`.
        run: ``run(name, structures, **options)`` computes analysis `name`
            (e.g. ``getattr(analyzer, name)``).
        check: raises StructureError or CoverageError for a frame that cannot be analysed.
        labels: one label per frame for messages (default "frame k").
        compare: called with the analysed (ghost-free) frames to compare them with a
            reference set, with ``generated_energy=`` the mean relaxed energy when the
            energy analysis ran and ``energy=False`` (no relaxed energies) when it did
            not, or None.
        skip_errors: skip failing frames; False raises the first failure.
        on_skip: called with (label, one-line reason) for each skipped frame.
        progress: show a tqdm progress bar over frames on stderr (None: only on a
            terminal).
        potential: name of the potential, for the report.
        run_frames: runs the potential-based analyses frame by frame (e.g. in worker
            processes); default :func:`serial_frames` with `run`.
        reference: a reference set on which the structure analyses asked for
            (`REFERENCE_ANALYSES`) run too, for the side-by-side summary and figure.
        options: keyword arguments of analyses, by name, over `REPORT_OPTIONS` (e.g.
            ``{"sq": {"weighting": "neutron"}}``); the reference set gets them too.
        note: called with a line of progress text: one per measured frame of the
            per-frame analyses when no progress bar is shown, and one before each
            set-wide analysis of a set of more than `STAGE_NOTE_ATOMS` atoms (a log of a
            long run, where no bar is drawn, or the stage after the bar).

    Returns:
        AnalysisReport.

    Raises:
        StructureError, CoverageError: no frame could be analysed (the message is the
            first frame's reason, named by its label).
        ValueError: an unknown analysis, or as many labels as frames are not given.
    """
    from tqdm import tqdm

    frames = as_structure_list(structures)
    wanted = select_analyses(analyses)
    chosen = report_options(wanted, options)
    per_frame = [a for a in wanted if a in FRAME_ANALYSES]
    labels = list(labels) if labels is not None else [f"frame {k}" for k in range(len(frames))]
    if len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")

    # cheap checks first: when no frame passes them, fail at once with one message
    problems: dict[int, Exception] = {}
    for k, atoms in enumerate(frames):
        try:
            check(atoms)
        except (StructureError, CoverageError) as exc:
            if not skip_errors:  # the first failure, named by its frame
                raise labelled_error(labels[k], exc) from exc
            problems[k] = exc
    if len(problems) == len(frames):
        raise _nothing_to_analyse(labels, problems)

    # skip lines wait for the first frame that succeeds: when none does, the one error says it
    held: list[tuple[str, str]] | None = [(labels[k], one_line(exc)) for k, exc in problems.items()]

    def skip(label: str, reason: str) -> None:
        if on_skip is None:
            return
        if held is None:
            on_skip(label, reason)
        else:
            held.append((label, reason))

    outcomes: dict[int, FrameOutcome] = dict(problems)
    todo = [k for k in range(len(frames)) if k not in problems]
    bar = tqdm(
        total=len(frames),
        desc="frames",
        unit="frame",
        file=sys.stderr,
        disable=None if progress is None else not progress,
    )
    bar.update(len(problems))
    runner = serial_frames(run) if run_frames is None else run_frames
    tasks = [(name, chosen[name]) for name in per_frame]
    frame_notes = note if (bar.disable and per_frame) else None
    for done, (j, outcome) in enumerate(runner(tasks, [frames[k] for k in todo]), start=1):
        k = todo[j]
        if frame_notes is not None:
            failed = " (failed)" if isinstance(outcome, Exception) else ""
            frame_notes(f"frame {done} of {len(todo)} measured{failed}: {labels[k]}")
        for category, message in getattr(outcome, "raised", ()):
            warnings.warn(f"{labels[k]}: {message}", category, stacklevel=3)
        if isinstance(outcome, Exception):
            if not skip_errors:
                bar.close()
                raise labelled_error(labels[k], outcome) from outcome
            skip(labels[k], one_line(outcome))
        elif held is not None:  # a frame succeeded: the held lines go out
            pending, held = held, None
            for line in pending:
                skip(*line)
        outcomes[k] = outcome
        bar.update(1)
    bar.close()

    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    failures: dict[int, Exception] = {}
    for k, label in enumerate(labels):
        outcome = outcomes[k]
        if isinstance(outcome, Exception):
            failures[k] = outcome
            skipped.append((label, one_line(outcome)))
        else:
            kept.append(k)
    if not kept:
        raise _nothing_to_analyse(labels, failures)

    set_wide = [name for name in wanted if name not in per_frame]
    n_atoms = sum(len(frames[k]) for k in kept)
    stage_notes = note if note is not None and n_atoms > STAGE_NOTE_ATOMS else None

    def set_wide_result(name: str, real: list[Atoms]) -> Result:
        if stage_notes is not None:
            stage_notes(f"{TITLES[name]} of {len(real)} frames ({n_atoms} atoms)")
        return run(name, real, **chosen[name])

    while True:  # a set analysis that fails on some frames: leave them out, run again
        real = prepare([frames[k] for k in kept])
        try:
            results = {
                name: merge_frame_results(name, [outcomes[k][name] for k in kept])  # type: ignore[index]
                if name in per_frame
                else set_wide_result(name, real)
                for name in wanted
            }
            break
        except (StructureError, ValueError):
            culprits = _failing_frames(run, set_wide, chosen, real)
            if not culprits:
                raise
        lines = []
        for j, exc in culprits.items():
            k = kept[j]
            if not skip_errors:
                raise labelled_error(labels[k], exc) from exc
            failures[k] = exc
            lines.append((labels[k], one_line(exc)))
        kept = [k for j, k in enumerate(kept) if j not in culprits]
        if not kept:
            raise _nothing_to_analyse(labels, failures)
        skipped += lines
        for line in lines:
            skip(*line)
    kept_labels = [labels[k] for k in kept]
    reference_results: dict[str, Result] = {}
    if reference is not None:
        reference_real = prepare(reference)
        reference_atoms = sum(len(a) for a in reference_real)
        for name in wanted:
            if name not in REFERENCE_ANALYSES:
                continue
            if note is not None and reference_atoms > STAGE_NOTE_ATOMS:
                note(f"{TITLES[name]} of the {len(reference_real)} reference frames")
            try:
                reference_results[name] = run(
                    name, reference_real, **_reference_options(name, results, chosen[name])
                )
            except ValueError as err:
                if name not in ("rings", "network"):
                    raise
                # the frames' ring atoms are not the reference's (silica frames, an
                # Si-only reference): sizes in different atoms do not compare; a
                # reference without the anion has no Q^n to compare
                what = "Q^n" if name == "network" else "ring-size"
                warnings.warn(
                    f"reference: no {what} comparison ({one_line(err)})", UserWarning, stacklevel=2
                )
    frame_density = np.array([density(a) for a in real])
    setting = label_setting([frames[k] for k in kept])
    return AnalysisReport(
        labels=kept_labels,
        skipped=skipped,
        n_atoms=np.array([len(a) for a in real]),
        composition=_composition(real),
        density=frame_density,
        volume=np.array([a.get_volume() for a in real]),
        rdf_peaks=_rdf_peaks(results.get("rdf")),
        results=results,
        comparison=None if compare is None else _compare(compare, real, results.get("energy")),
        potential=potential,
        reference_results=reference_results,
        targets=target_checks([frames[k] for k in kept], results, frame_density, setting),
        label_setting=setting,
    )


def _failing_frames(
    run: AnalysisRunner,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    frames: Sequence[Atoms],
) -> dict[int, Exception]:
    """Position -> error of every frame on which one of the set analyses `names` fails on
    its own (what a failing set analysis is traced back to)."""
    failing: dict[int, Exception] = {}
    for j, atoms in enumerate(frames):
        for name in names:
            try:
                run(name, [atoms], **options[name])
            except (StructureError, ValueError) as exc:
                failing[j] = exc
                break
    return failing


def _compare(compare: Callable[..., Comparison], real: list[Atoms], energy: Any) -> Comparison:
    """The comparison; its relaxed energies only when the energy analysis ran, whose
    relaxations it reuses (the same relaxation: the defaults of both)."""
    if energy is None:
        return compare(real, energy=False)
    return compare(real, generated_energy=energy.mean_energy)


def label_setting(frames: Sequence[Atoms]) -> dict[str, Any] | None:
    """How the elastic targets of generated frames were measured as training labels
    (``label_moduli``, ``label_fmax``, ``label_elastic_steps`` and ``label_elastic_delta``
    of their info, recorded by `Generator`): ``{"moduli", "fmax", "n_steps"[, "delta"]}``,
    or None when no frame says or the frames disagree."""
    keys = ("label_moduli", "label_fmax", "label_elastic_steps")
    settings = {
        (
            str(a.info[keys[0]]),
            float(a.info[keys[1]]),
            int(a.info[keys[2]]),
            float(a.info.get("label_elastic_delta", -1.0)),  # -1: not recorded
        )
        for a in frames
        if set(keys) <= set(a.info)
    }
    if len(settings) != 1:
        return None
    moduli, fmax, n_steps, delta = settings.pop()
    setting: dict[str, Any] = {"moduli": moduli, "fmax": fmax, "n_steps": n_steps}
    if delta > 0:
        setting["delta"] = delta
    return setting


def target_checks(
    frames: Sequence[Atoms],
    results: Mapping[str, Result],
    frame_density: np.ndarray,
    setting: Mapping[str, Any] | None = None,
) -> dict[str, TargetCheck]:
    """The measured properties against the frames' ``target_<property>`` info entries, for
    every targeted property that a computed result measures per frame. Elastic moduli
    are the averages the frames' model was trained on (`setting`, by default
    `label_setting(frames)`: Voigt-Reuss-Hill for a `glass` dataset, cubic otherwise)."""
    from amtoolkit.analysis.metrics import target_check

    if setting is None:
        setting = label_setting(frames)
    hill = setting is not None and setting["moduli"] == "hill"
    out: dict[str, TargetCheck] = {}
    for name in sorted({k[len(TARGET_PREFIX) :] for a in frames for k in a.info if _is_target(k)}):
        measured = _measured(name, results, frame_density, hill=hill)
        if measured is None:
            continue
        targets = [_finite_or_nan(a.info.get(f"{TARGET_PREFIX}{name}")) for a in frames]
        check = target_check(name, targets, measured)
        if check.errors.n:
            out[name] = check
    return out


def _is_target(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(TARGET_PREFIX) and len(key) > len(TARGET_PREFIX)


def _finite_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _measured(
    name: str, results: Mapping[str, Result], frame_density: np.ndarray, hill: bool = False
) -> np.ndarray | None:
    """Per-frame measured values of property `name` (elastic moduli as Voigt-Reuss-Hill
    averages with `hill`, else cubic), or None when nothing measured it."""
    if name == "density":
        return frame_density
    if name in ELASTIC_PROPERTIES and "elastic" in results:
        elastic = results["elastic"]
        values = elastic.hill[name] if hill else getattr(elastic, name)
        return np.asarray(values, dtype=float)
    if name == "relaxed_energy" and "energy" in results:
        return np.asarray(results["energy"].energy_per_atom, dtype=float)
    if name == "ring_size" and "rings" in results:
        return results["rings"].mean_size_per_structure
    return None


def _target_rows(errors: Mapping[str, PropertyErrors]) -> list[tuple[str, str]]:
    rows = []
    for name, e in errors.items():
        label = label_of(name)
        mape = f", MAPE {e.mape:.1f}%" if math.isfinite(e.mape) else ""
        rows.append((label, f"MAE {e.mae:.3g}, RMSE {e.rmse:.3g}{mape} (n {e.n})"))
    return rows


def _reference_rows(
    results: Mapping[str, Result], reference: Mapping[str, Result]
) -> list[tuple[str, str]]:
    """Scalar summaries of the frames against the reference set's, "frames vs reference"."""
    rows: list[tuple[str, str]] = []
    if "coordination" in reference:
        mine, theirs = results["coordination"].mean, reference["coordination"].mean
        rows += [
            (f"{el} mean coordination", f"{mine[el]:.3f} vs {theirs[el]:.3f}")
            for el in mine
            if el in theirs
        ]
    if "network" in reference:
        mine, theirs = results["network"], reference["network"]
        rows += [
            (f"{el} connectivity <n>", f"{n:.3f} vs {theirs.connectivity[el]:.3f}")
            for el, n in mine.connectivity.items()
            if el in theirs.connectivity
        ]
        bridging = (mine.anion_types["bridging"], theirs.anion_types["bridging"])
        rows.append((f"bridging {mine.anion} fraction", f"{bridging[0]:.3f} vs {bridging[1]:.3f}"))
    if "rings" in reference:
        mine, theirs = results["rings"], reference["rings"]
        unit = f" ({'+'.join(mine.count_species)} atoms)" if mine.count_species else ""
        rows.append((f"mean ring size{unit}", f"{mine.mean_size:.3f} vs {theirs.mean_size:.3f}"))
    if "structure_factor" in reference:
        rows += _sq_reference_rows(results["structure_factor"], reference["structure_factor"])
    return rows


SAME_PEAK_WINDOW = 0.5
"""Main S(q) peaks of two sets further apart than this (1/Å) are different peaks (the FSDP
of one, the principal peak of the other)."""


def _sq_reference_rows(mine: Any, theirs: Any) -> list[tuple[str, str]]:
    """S(q) peaks of the frames against the reference's: each set's own main (tallest)
    peak; when those are different peaks, also the reference's peak nearest the frames'
    main one; and the first sharp diffraction peaks when either set has one before its
    main peak."""
    rows: list[tuple[str, str]] = []
    pair = (mine, theirs)
    try:
        mains = [r.peak_position() for r in pair]
    except ValueError:  # no peak inside one of the grids
        return rows
    rows.append(("S(q) main peak q (1/A)", f"{mains[0]:.3f} vs {mains[1]:.3f}"))
    if abs(mains[0] - mains[1]) > SAME_PEAK_WINDOW:
        window = (max(mains[0] - SAME_PEAK_WINDOW, 0.0), mains[0] + SAME_PEAK_WINDOW)
        try:
            near = theirs.peak_position(*window)
        except ValueError:
            near = None
        value = "none" if near is None else f"{near:.3f}"
        rows.append(("reference S(q) peak nearest the frames' main (1/A)", value))
    firsts = [first_sq_peak(r.q, r.s) for r in pair]
    if all(f is not None for f in firsts) and any(
        f < m for f, m in zip(firsts, mains, strict=True)
    ):
        heights = [float(np.interp(f, r.q, r.s)) for f, r in zip(firsts, pair, strict=True)]
        rows.append(("S(q) first peak q (1/A)", f"{firsts[0]:.3f} vs {firsts[1]:.3f}"))
        rows.append(("S(q) at first peak", f"{heights[0]:.3f} vs {heights[1]:.3f}"))
    return rows


STAGE_NOTE_ATOMS = 20_000
"""Atoms in a set above which a report notes each set-wide analysis as it starts (rings
and S(q) of twenty 3000-atom glasses: 35 s with no sign of life after the frames' bar)."""

REFERENCE_ANALYSES = ("rdf", "adf", "coordination", "network", "rings", "structure_factor")
"""Analyses a report also runs on its reference set, to show the two side by side."""

ELASTIC_PROPERTIES = ("shear_modulus", "bulk_modulus", "youngs_modulus", "poisson_ratio")
"""Properties measured per frame by the elastic analysis (targets it can be checked on)."""

REFERENCE_STYLE = {"color": "0.45", "ls": "--", "lw": 1.2}
"""Line style of the reference set's curves in `AnalysisReport.plot`."""


def _draw_measured_sq(ax: Any, measured: MeasuredSq) -> None:
    """A measured S(q) as points over the S(q) panel."""
    ax.plot(measured.q, measured.s, "o", ms=2.5, mfc="none", color="tab:red", label=measured.label)
    ax.legend(frameon=False)


def _draw_reference(ax: Any, name: str, result: Result) -> None:
    """The reference set's result of analysis `name` over a panel of the frames'."""
    if name == "rdf":
        ax.plot(result.r, result.g, label="reference", **REFERENCE_STYLE)
    elif name == "adf":
        ax.plot(result.theta, result.p, label="reference", **REFERENCE_STYLE)
    elif name == "structure_factor":
        ax.plot(result.q, result.s, label="reference", **REFERENCE_STYLE)
    elif name == "rings":
        sizes = sorted(result.fractions)
        fractions = [result.fractions[n] for n in sizes]
        ax.plot(sizes, fractions, "o", mfc="none", color="k", label="reference")
    elif name in ("coordination", "network"):
        groups = result.distribution if name == "coordination" else result.qn
        for k, (element, distribution) in enumerate(groups.items()):
            cns = sorted(distribution)
            ax.plot(
                cns,
                [distribution[c] for c in cns],
                "osd^v"[k % 5],
                mfc="none",
                color="k",
                label=f"{element} reference",
            )
    else:
        return
    ax.legend(frameon=False)


def _draw_reference_energy(ax: Any, comparison: Comparison) -> None:
    """The reference set's mean relaxed energy across the energy panel, when the
    comparison relaxed it."""
    if comparison.energy_reference is None:
        return
    ax.axhline(comparison.energy_reference, label="reference mean", **REFERENCE_STYLE)
    ax.legend(frameon=False)


def run_frame(run: AnalysisRunner, tasks: FrameTasks, atoms: Atoms) -> FrameResults:
    """The analyses of one frame: ``{name: run(name, atoms, **options)}`` over `tasks`,
    with the warnings they raised kept (each message once) rather than shown, so that the
    report can name the frame (also from a worker process)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = {name: run(name, atoms, **options) for name, options in tasks}
    raised = {(w.category, str(w.message)): None for w in caught}
    return FrameResults(results, list(raised))


def serial_frames(run: AnalysisRunner) -> FrameRunner:
    """A `FrameRunner` that runs the frames one after another in this process."""

    def run_frames(tasks: FrameTasks, frames: Sequence[Atoms]):
        for k, atoms in enumerate(frames):
            try:
                outcome: FrameOutcome = run_frame(run, tasks, atoms)
            except Exception as exc:  # any failure of one frame skips that frame only
                outcome = exc
            yield k, outcome

    return run_frames


def merge_frame_results(name: str, results: Sequence[Result]) -> Result:
    """Combine one-frame results of a per-frame analysis (`FRAME_ANALYSES`) into one set
    result.

    Energy and elastic results have their per-structure arrays joined (the mean C is
    recomputed), crystallinity results their per-structure lists, ring counts are summed;
    VDOS results are re-broadened on one grid spanning every frame's modes (or on their
    common grid, when a frequency range was given), exactly as
    :func:`amtoolkit.analysis.vdos.vdos` does for a set.

    Args:
        name: "energy", "elastic", "vdos", "crystallinity" or "rings".
        results: one result per frame, all from the same settings.

    Returns:
        A result of the same type, equal to the analysis of the whole set.

    Raises:
        ValueError: `name` is not a per-frame analysis.
    """
    first = results[0]
    if len(results) == 1:
        return first
    if name == "rings":
        from amtoolkit.analysis.rings import rings_of_set

        if len({(r.count_species, r.maxlength) for r in results}) > 1:
            raise ValueError(
                "the frames' ring sizes are counted in different atoms (count_species='auto' "
                "counts silica frames in Si atoms and others in all atoms, and this set "
                "mixes both); analyse them apart or give count_species"
            )
        per_structure = [c for r in results for c in r.per_structure]
        return rings_of_set(per_structure, first.maxlength, first.count_species)
    if name == "crystallinity":
        return dataclasses.replace(
            first,
            spacegroup=[g for r in results for g in r.spacegroup],
            number=[n for r in results for n in r.number],
            crystalline=[c for r in results for c in r.crystalline],
        )
    if name == "vdos":
        from amtoolkit.analysis.vdos import vdos_from_modes

        modes = [m for r in results for m in r.mode_frequencies]
        grid = first.frequency
        same_grid = all(np.array_equal(r.frequency, grid) for r in results)
        span = (float(grid[0]), float(grid[-1])) if same_grid else None  # a range was given
        return vdos_from_modes(
            modes, sigma=first.sigma, nbins=len(first.frequency), frequency_range=span
        )
    if name not in _PER_STRUCTURE_FIELDS:
        raise ValueError(f"cannot combine per-frame results of {name!r}")
    joined = {
        field: np.concatenate([getattr(r, field) for r in results])
        for field in _PER_STRUCTURE_FIELDS[name]
    }
    if name == "elastic":
        joined["C"] = joined["C_per_structure"].mean(axis=0)
        if first.n_negative_modes is not None:
            joined["n_negative_modes"] = np.concatenate([r.n_negative_modes for r in results])
    recorded = all(r.unconverged is not None for r in results)
    joined["unconverged"] = np.concatenate([r.unconverged for r in results]) if recorded else None
    return dataclasses.replace(first, **joined)


def report_options(
    analyses: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each of `analyses` in a report: `REPORT_OPTIONS`, updated
    by `options` (keyed by analysis name or alias).

    Raises:
        ValueError: options for an analysis that is not among `analyses`.
    """
    given = {ANALYSIS_ALIASES.get(k, k): dict(v) for k, v in (options or {}).items()}
    extra = [name for name in given if name not in analyses]
    if extra:
        raise ValueError(
            f"options for {extra[0]!r}, which the report does not run ({', '.join(analyses)})"
        )
    return {name: {**REPORT_OPTIONS.get(name, {}), **given.get(name, {})} for name in analyses}


def _reference_options(
    name: str, results: Mapping[str, Result], chosen: Mapping[str, Any]
) -> dict[str, Any]:
    """Options of analysis `name` on the reference set: the report's, with ring sizes
    counted in the same atoms as the frames' (Si atoms for silica frames, else all), so
    that the two are comparable whatever the reference holds (a reference where that
    rule does not apply gets no ring statistics)."""
    options = dict(chosen)
    if name == "rings":
        species = results["rings"].count_species
        options["count_species"] = list(species) if species else None
    return options


def _composition(frames: Sequence[Atoms]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for atoms in frames:
        counts.update(atoms.get_chemical_symbols())
    return {el: counts[el] for el in species_of(frames)}


def _rdf_peaks(result: Result | None) -> dict[tuple[str, str], float]:
    if result is None:
        return {}
    return {pair: first_peak(result, pair) for pair in result.pairs}


def _nothing_to_analyse(labels: Sequence[str], failures: Mapping[int, Exception]) -> Exception:
    """The error to raise when every frame failed: the first failure, named by its label."""
    k, exc = min(failures.items())
    message = f"{labels[k]}: {one_line(exc)}"
    if len(labels) > 1:
        message = f"no frame could be analysed; {message}"
    error_type = CoverageError if isinstance(exc, CoverageError) else StructureError
    return error_type(message)


def labelled_error(label: str, error: Exception) -> Exception:
    """`error` with "label: " before its one-line message, of the same type when that type
    can be built from a message (else RuntimeError)."""
    message = f"{label}: {one_line(error)}"
    try:
        return type(error)(message)
    except Exception:  # noqa: BLE001 - a type that takes other arguments
        return RuntimeError(message)


def one_line(exc: BaseException) -> str:
    """The first line of an error message, for a skipped frame or a command-line error.

    Input errors (ValueError and its subclasses StructureError, CoverageError) read as
    their message; anything else is prefixed with its type, so that a bug does not
    pass for bad input.
    """
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not text:
        return type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


# -------------------------------------------------------------------------- summary


def summary_rows(name: str, result: Result, report: AnalysisReport) -> list[tuple[str, str]]:
    """The (key, value) rows of one analysis in the report summary.

    Args:
        name: analysis name from `ANALYSES`.
        result: its result.
        report: the report (for values computed once, e.g. RDF first peaks).

    Returns:
        Rows of text, units in the keys; empty for an analysis without rows.
    """
    if name == "rdf":
        return _rdf_rows(report)
    rows = _SUMMARY_ROWS.get(name)
    return rows(result) if rows is not None else []


def _rdf_rows(report: AnalysisReport) -> list[tuple[str, str]]:
    rows = [(f"first peak {a}-{b} (A)", f"{r:.3f}") for (a, b), r in report.rdf_peaks.items()]
    return rows or [("first peak (A)", "n/a")]


def _coordination_rows(result) -> list[tuple[str, str]]:
    rows = []
    for el, mean in result.mean.items():
        dist = result.distribution.get(el, {})
        top = ", ".join(f"{cn}: {f:.3f}" for cn, f in sorted(dist.items()) if f >= 0.001)
        rows.append((f"{el} mean coordination", f"{mean:.3f}  ({top})"))
    return rows


def _network_rows(result) -> list[tuple[str, str]]:
    rows = []
    for el, qn in result.qn.items():
        top = ", ".join(f"Q{n}: {f:.3f}" for n, f in sorted(qn.items()) if f >= 0.001)
        rows.append((f"{el} connectivity <n>", f"{result.connectivity[el]:.3f}  ({top})"))
    types = ", ".join(f"{name} {f:.3f}" for name, f in result.anion_types.items() if f >= 0.001)
    rows.append((f"{result.anion} types", types))
    if result.modifiers:
        hint = ""
        if set(result.modifiers) & set(INTERMEDIATES):
            formers = ",".join([*result.qn, *(m for m in result.modifiers if m in INTERMEDIATES)])
            hint = f" (--formers {formers} counts intermediates as formers)"
        rows.append(("other cations", ", ".join(result.modifiers) + hint))
    return rows


INTERMEDIATES = ("Al", "Ti", "Zn", "Be")
"""Cations that a network summary suggests counting as formers when present (Al of an
aluminosilicate: left a modifier, a 50SiO2-20Al2O3-30CaO glass reads bridging O 0.17,
counted as a former 0.76)."""


def _adf_rows(result) -> list[tuple[str, str]]:
    if not np.any(result.p > 0):
        return [("most likely angle (deg)", "n/a (no angles)")]
    theta = np.asarray(result.theta, dtype=float)
    mean = float(np.sum(theta * result.p) / np.sum(result.p))
    centres = [el for el, p in result.by_center.items() if np.any(p > 0)]
    rows = []
    if len(centres) <= 1:  # one mean or mode over O-Si-O and Si-O-Si angles means nothing
        rows += [
            ("mean angle (deg)", f"{mean:.1f}"),
            ("most likely angle (deg)", f"{_smoothed_mode(theta, result.p):.1f}"),
        ]
    rows += [
        (f"most likely angle at {el} (deg)", f"{_smoothed_mode(theta, p):.1f}")
        for el, p in result.by_center.items()
        if np.any(p > 0)
    ]
    rows += [  # the network's own angle, apart from the modifiers' at the same anion
        (f"most likely angle {a}-{center}-{b} (deg)", f"{_smoothed_mode(theta, p):.1f}")
        for (a, center, b), p in result.by_triplet.items()
        if center in ANIONS and a == b and a in FORMERS and _has_others(result, center)
    ]
    return rows


def _has_others(result, center: str) -> bool:
    """Whether angles at `center` also join other elements than one former pair (a
    modified glass, where the angle at the anion mixes several kinds)."""
    return sum(1 for (_, c, _) in result.by_triplet if c == center) > 1


ADF_MODE_SMOOTHING = 2.0
"""Degrees: sd of the Gaussian the ADF is smoothed with before its maximum is read, so
that the most likely angle of a glass is its peak's, not the noise of one 1° bin."""


def _smoothed_mode(theta: np.ndarray, p: np.ndarray) -> float:
    """The angle of the maximum of `p` smoothed with a Gaussian of `ADF_MODE_SMOOTHING`
    degrees, refined by a parabola through it and its neighbours."""
    step = float(theta[1] - theta[0]) if len(theta) > 1 else 1.0
    smooth = smoothed(p, ADF_MODE_SMOOTHING / step)
    return vertex(theta, smooth, int(np.argmax(smooth)))


def _rings_rows(result) -> list[tuple[str, str]]:
    total = sum(result.counts.values())
    unit = f" ({'+'.join(result.count_species)} atoms)" if result.count_species else ""
    fractions = ", ".join(f"{n}: {f:.3f}" for n, f in result.fractions.items())
    return [
        ("rings found", f"{total} (up to size {result.maxlength})"),
        (f"mean ring size{unit}", f"{result.mean_size:.3f}"),
        ("size fractions", fractions or "none"),
    ]


def _structure_factor_rows(result) -> list[tuple[str, str]]:
    from amtoolkit.analysis.structure_factor import WEIGHTING_NAMES

    rows = [("weighting", WEIGHTING_NAMES[result.weighting])]
    try:
        q = result.peak_position()
    except ValueError:  # S(q) largest at an end of the grid: no peak to report
        return [*rows, ("main peak q (1/A)", f"none in (0.5, {result.q[-1]:.1f}]")]
    s = float(np.interp(q, result.q, result.s))
    rows += [("main peak q (1/A)", f"{q:.3f}"), ("S(q) at main peak", f"{s:.3f}")]
    first = first_sq_peak(result.q, result.s)
    if first is not None and first < q:
        rows += [
            ("first peak q (1/A)", f"{first:.3f}"),
            ("S(q) at first peak", f"{float(np.interp(first, result.q, result.s)):.3f}"),
        ]
    return rows


def first_sq_peak(q: ArrayLike, s: ArrayLike, qmin: float = 0.5) -> float | None:
    """Position (1/Å) of the first local maximum of S(q) above 1 at q > `qmin`.

    In network glasses this is the first sharp diffraction peak (silica: about 1.5 1/Å),
    which the main (highest) peak often is not.

    Args:
        q: scattering vector magnitudes, 1/Å, ascending, shape [nq].
        s: S(q) on `q`, shape [nq].
        qmin: ignore maxima below this q (the q -> 0 region of a small cell), 1/Å.

    Returns:
        The q of the first such maximum, or None when there is none.
    """
    q, s = np.asarray(q, dtype=float), np.asarray(s, dtype=float)
    inner = np.arange(1, len(s) - 1)
    peaks = inner[(s[inner] > s[inner - 1]) & (s[inner] >= s[inner + 1])]
    peaks = peaks[(s[peaks] > 1.0) & (q[peaks] > qmin)]
    return vertex(q, s, int(peaks[0])) if len(peaks) else None


def _crystallinity_rows(result) -> list[tuple[str, str]]:
    groups = Counter(result.spacegroup)
    return [
        ("crystalline frames", f"{int(np.sum(result.crystalline))} of {len(result.crystalline)}"),
        ("space groups", ", ".join(f"{g} x{c}" for g, c in groups.most_common())),
    ]


def _energy_rows(result) -> list[tuple[str, str]]:
    state = "relaxed" if result.relaxed else "as given"
    return [
        (f"energy (eV/atom, {state})", mean_std(result.energy_per_atom, "{:.4f}")),
        (f"density (g/cm3, {state})", mean_std(result.density, "{:.3f}")),
        (f"pressure (GPa, {state})", mean_std(result.pressure, "{:.3f}")),
    ] + _unconverged_rows(result, "their energies are upper bounds")


def _unconverged_rows(result, consequence: str) -> list[tuple[str, str]]:
    """A note row when some structures' relaxations stopped short of the force criterion."""
    if result.unconverged is None or not np.any(result.unconverged):
        return []
    short = int(np.count_nonzero(result.unconverged))
    total = len(result.unconverged)
    return [
        (
            "note",
            f"{short} of {total} structures have relaxations that stopped short of fmax "
            f"({int(np.sum(result.unconverged))} in all; see the warnings): {consequence}",
        )
    ]


ELASTIC_LABELS = frozenset({"shear_modulus", "bulk_modulus", "youngs_modulus", "poisson_ratio"})
"""Properties measured by the elastic analysis."""

LOOSE_ION_FMAX = 1e-3
"""Ion-relaxation criterion (eV/Å) above which the elastic summary says that relaxed-ion
moduli come out stiff: Tersoff a-SiO2 (81 atoms) gave G = C44 38.9 GPa at 1e-2, 30.9 at
3e-3 and 27.7 at 3e-4 (converged)."""

ANISOTROPY_NOTE = 0.1
"""Difference between the cubic-average and the Voigt-Reuss-Hill Poisson ratio of a set
above which the elastic summary says the cells are far from isotropic."""


def _elastic_rows(result) -> list[tuple[str, str]]:
    hill = result.hill
    rows = [
        ("bulk modulus K (GPa)", mean_std(result.bulk_modulus, "{:.1f}")),
        ("shear modulus G = C44 (GPa)", mean_std(result.shear_modulus, "{:.1f}")),
        ("Young's modulus E (GPa)", mean_std(result.youngs_modulus, "{:.1f}")),
        ("Poisson ratio E/2G - 1", mean_std(result.poisson_ratio, "{:.3f}")),
        ("bulk modulus K, Voigt-Reuss-Hill (GPa)", mean_std(hill["bulk_modulus"], "{:.1f}")),
        ("shear modulus G, Voigt-Reuss-Hill (GPa)", mean_std(hill["shear_modulus"], "{:.1f}")),
        ("Poisson ratio, Voigt-Reuss-Hill", mean_std(hill["poisson_ratio"], "{:.3f}")),
        ("fit residual (GPa)", mean_std(result.residual, "{:.3f}")),
    ]
    strained = result.method == "strain" and result.relaxed_ions
    if result.fmax is not None:
        settings = f"fmax {result.fmax:g} eV/Å"
        if strained:
            settings += f"; {result.n_steps} strains of {result.delta:g} per pattern"
        rows.append(("relaxations", settings))
    if strained and result.fmax is not None and result.fmax > LOOSE_ION_FMAX:
        rows.append(
            (
                "note",
                f"ions relaxed only to {result.fmax:g} eV/Å after each strain: the moduli may "
                "lie above the relaxed-ion ones (Tersoff a-SiO2 at 1e-2 eV/Å: G of an 81-atom "
                "cell 40 % above its value at 3e-4, docs/analysis.md), as "
                "do the targets of models trained on labels made so; a smaller fmax "
                "(amtool analyze --fmax 3e-4, fmax= in Python) relaxes them further",
            )
        )
    cubic, vrh = np.nanmean(result.poisson_ratio), np.nanmean(hill["poisson_ratio"])
    if np.isfinite(cubic) and np.isfinite(vrh) and abs(cubic - vrh) > ANISOTROPY_NOTE:
        rows.append(
            (
                "note",
                "the two Poisson ratios differ: the cells are far from isotropic (small or "
                "unrelaxed cells); K, G = C44, E and E/2G - 1 average C11, C12, C44 (cubic), "
                "Voigt-Reuss-Hill uses every C_ij",
            )
        )
    unstable = np.flatnonzero(result.unstable)
    if unstable.size:
        rows.append(
            (
                "note",
                f"{len(unstable)} of {len(result.unstable)} structures "
                f"({', '.join(map(str, unstable[:8]))}{', ...' if unstable.size > 8 else ''}) "
                "have a stiffness matrix with a negative eigenvalue: no stable solid as "
                "measured, their moduli mean nothing (a smaller delta or larger cells)",
            )
        )
    return rows + _unconverged_rows(result, "their moduli carry residual-force errors")


def _vdos_rows(result) -> list[tuple[str, str]]:
    f = np.asarray(result.frequency)
    dos = np.asarray(result.dos)
    highest = max(float(np.max(m)) for m in result.mode_frequencies)
    return [
        ("peak frequency (THz)", f"{_mode(f, dos):.2f}"),
        ("highest mode (THz)", f"{highest:.2f}"),  # not the broadened grid's end
    ]


_SUMMARY_ROWS: dict[str, Callable[[Any], list[tuple[str, str]]]] = {
    "coordination": _coordination_rows,
    "network": _network_rows,
    "adf": _adf_rows,
    "rings": _rings_rows,
    "structure_factor": _structure_factor_rows,
    "crystallinity": _crystallinity_rows,
    "energy": _energy_rows,
    "elastic": _elastic_rows,
    "vdos": _vdos_rows,
}


def _mode(x: np.ndarray, y: np.ndarray) -> float:
    """The x of the largest y."""
    return float(np.asarray(x)[int(np.argmax(y))])


SPREAD_NOTE = "a +- b: mean and standard deviation over the frames (not an error of the mean)"
"""The last line of a report summary that shows a spread."""


def mean_std(values: ArrayLike, fmt: str) -> str:
    """``"mean +- sd"`` of `values` in format `fmt` (just the value when all are equal)."""
    values = np.asarray(values, dtype=float).ravel()
    if np.all(values == values[0]):  # one value, or all the same
        return fmt.format(float(values[0]))
    return f"{fmt.format(float(values.mean()))} +- {fmt.format(float(values.std()))}"


def atom_counts(n_atoms: ArrayLike) -> str:
    """Atoms per frame: ``"216"``, or ``"182-183 (mean 182.5)"`` when they differ."""
    n = np.asarray(n_atoms, dtype=int).ravel()
    if n.min() == n.max():
        return str(int(n[0]))
    return f"{int(n.min())}-{int(n.max())} (mean {n.mean():.1f})"


def format_table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """A titled two-column text table, keys left-aligned."""
    width = max([len(k) for k, _ in rows] + [len(title)])
    lines = [title, "-" * len(title)]
    lines += [f"{key:<{width}}  {value}" for key, value in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figure


def _mark_tetrahedral_angle(ax: Axes) -> None:
    """A dotted vertical line at 109.47 degrees, labelled at the top of the panel."""
    ax.axvline(TETRAHEDRAL_ANGLE, color="0.5", ls=":", lw=1.0, zorder=0)
    ax.annotate(
        "109.5°",
        xy=(TETRAHEDRAL_ANGLE, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(2, -2),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize="small",
        color="0.4",
    )


def _drop_lone_legend(ax: Axes) -> None:
    """Remove a legend that names a single curve (e.g. "total" of a one-element g(r))."""
    legend = ax.get_legend()
    if legend is not None and len(legend.get_texts()) < 2:
        legend.remove()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write `fig` to `path` atomically, in the format its ending names (default PNG)."""
    from amtoolkit.io import atomic_output

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
