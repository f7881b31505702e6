"""Summary statistics of a dataset: sizes, composition, density and each property column.

What a user checks first about a dataset (and what docs/datasets.md reports for every
shipped set): how many structures, how large, which elements, and the mean, standard
deviation and range of every label.

Example:
    >>> from amtoolkit.data import Dataset, summarize
    >>> print(summarize(Dataset.load("a-si-quench")).table())
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.data import atomic_masses, chemical_symbols

from amtoolkit.analysis._options import listed
from amtoolkit.data.dataset import Dataset
from amtoolkit.data.ghosts import GHOST_NUMBER
from amtoolkit.data.properties import AMU_PER_A3_TO_G_PER_CM3, PLAUSIBLE_LABELS, PROPERTY_UNITS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclasses.dataclass(frozen=True)
class ColumnStats:
    """Statistics of one numeric column over the structures where it is present.

    Attributes:
        n: structures with a value (not NaN).
        mean, sd, min, max: over those structures (sd with ddof = 0; NaN when n = 0).
    """

    n: int
    mean: float
    sd: float
    min: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> ColumnStats:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return cls(0, np.nan, np.nan, np.nan, np.nan)
        return cls(int(v.size), float(v.mean()), float(v.std()), float(v.min()), float(v.max()))


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """What `summarize` returns.

    Attributes:
        n_structures: number of structures.
        n_atoms: atoms per structure (ghosts excluded).
        composition: element symbol -> atom fraction over the whole set.
        density: mass density of each structure's cell, g/cm^3.
        properties: property name -> statistics of its column.
        provenance: the dataset's provenance (source, command, protocol ...).
        implausible: property name -> indices of the structures whose label lies outside
            `PLAUSIBLE_LABELS` (a broken elastic fit, a gas): only names with any.
        links: property name -> (the other label it tracks most, Spearman rho), by
            `label_links`: a label that tracks nothing may be scatter no model can aim at.
    """

    n_structures: int
    n_atoms: ColumnStats
    composition: dict[str, float]
    density: ColumnStats
    properties: dict[str, ColumnStats]
    provenance: dict[str, Any]
    implausible: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    links: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def table(self) -> str:
        """Plain-text table, one quantity per row (what ``amtool dataset info`` prints)."""
        rows = [("structures", str(self.n_structures), "")]
        rows.append(("atoms per structure", _stats_text(self.n_atoms, "{:.0f}"), ""))
        comp = ", ".join(f"{s} {x:.3f}" for s, x in self.composition.items())
        rows.append(("composition (atom fraction)", comp, ""))
        rows.append(("cell density", _stats_text(self.density, "{:.4g}"), "g/cm3"))
        for name, stats in self.properties.items():
            text = _stats_text(stats, "{:.5g}")
            if stats.n < self.n_structures:
                text += f" ({self.n_structures - stats.n} missing)"
            unit = PROPERTY_UNITS.get(name, "")
            rows.append((name, text, "" if unit == "1" else unit))
        for name, indices in self.implausible.items():
            low, high = PLAUSIBLE_LABELS[name]
            shown = listed(indices)
            rows.append(
                (
                    f"implausible {name}",
                    f"outside ({low:g}, {high:g}) in {len(indices)} of {self.n_structures} "
                    f"structures ({shown})",
                    "",
                )
            )
        rows += _link_rows(self.links, self.n_structures)
        rows += _provenance_rows(self.provenance, self.n_structures)
        for entry in self.provenance.get("labels", []):
            if isinstance(entry, dict):
                names = ", ".join(map(str, entry.get("properties", [])))
                rows.append(("labels added", f"{names} by {entry.get('how', '?')}", ""))
                rows += _flagged_rows(entry, "of these labels")
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}{'  ' + u if u else ''}" for k, v, u in rows)


def _provenance_rows(prov: dict[str, Any], n_structures: int) -> list[tuple[str, str, str]]:
    """How the set was made: command, protocol and seed, whether the run is complete
    (with its failed samples and unconverged relaxations), resumes, and which split
    part it is."""
    rows = []
    command = prov.get("command")
    if command:
        rows.append(("made by", str(command), ""))
    parts = [p for p in prov.get("parts", []) if isinstance(p, dict)]
    if parts:
        text = ", ".join(f"{p.get('name')} ({p.get('frames')})" for p in parts)
        rows.append(("merged from", text, ""))
    if prov.get("protocol"):
        rows.append(("protocol", f"{prov['protocol']}, seed {prov.get('seed')}", ""))
    if "complete" in prov:
        failed = prov.get("failed_samples") or []
        text = "yes" if prov["complete"] else "no"
        if failed:
            indices = ", ".join(str(f.get("index")) for f in failed[:10] if isinstance(f, dict))
            text += f": {len(failed)} failed sample(s) (indices {indices})"
        elif not prov["complete"] and prov.get("n_samples"):
            text += f": {len(prov.get('samples', []))} of {prov['n_samples']} samples"
        samples = prov.get("samples")
        if isinstance(samples, list) and len(samples) != n_structures:
            text += f" (this set holds {n_structures} of the run's {len(samples)} samples)"
        rows.append(("complete", text, ""))
    rows += _flagged_rows(prov)
    for part in parts:  # a merged set: its parts' own runs (sample indices are the part's)
        rows += _flagged_rows(part.get("provenance") or {}, f"of {part.get('name')}")
    if prov.get("resumed"):
        rows.append(("resumed", f"{len(prov['resumed'])} time(s), last: {prov['resumed'][-1]}", ""))
    split = prov.get("split")
    if isinstance(split, dict):
        rows.append(
            (
                "split part",
                f"{split.get('part')} ({split.get('frames')} of "
                f"{split.get('parent_frames')} frames; val {split.get('val')}, "
                f"test {split.get('test')}, seed {split.get('seed')})",
                "",
            )
        )
    return rows


def _flagged_rows(record: dict[str, Any], whose: str = "") -> list[tuple[str, str, str]]:
    """The samples of `record` (a run's provenance, or a labels entry of a labelling run)
    whose relaxations stopped short of their fmax (``unconverged_relaxations``), and those
    whose fitted stiffness matrix was not positive definite (``elastic_unstable``)."""
    unconverged = [
        s.get("index")
        for s in record.get("samples", [])
        if isinstance(s, dict) and s.get("unconverged_relaxations")
    ]
    unstable = [
        s.get("index")
        for s in record.get("samples", [])
        if isinstance(s, dict) and s.get("elastic_unstable")
    ]
    rows = []
    for name, indices in (("unconverged relaxations", unconverged), ("unstable C", unstable)):
        if indices:
            text = f"in {len(indices)} samples ({listed(indices)})"
            rows.append((name, f"{text} {whose}" if whose else text, ""))
    return rows


def _stats_text(stats: ColumnStats, fmt: str) -> str:
    if stats.n == 0:
        return "no values"
    mean, sd, lo, hi = (fmt.format(x) for x in (stats.mean, stats.sd, stats.min, stats.max))
    return f"mean {mean}, sd {sd}, range {lo} to {hi}"


def _sizes_and_densities(
    dataset: Dataset, counts: Counter[int] | None = None
) -> tuple[list[int], list[float]]:
    """Real atoms and cell mass density (g/cm^3) of every frame; element counts are
    added to `counts` when given."""
    n_atoms, densities = [], []
    for i in range(len(dataset)):
        frame = dataset.frame(i)
        numbers = frame.numbers[frame.numbers != GHOST_NUMBER]
        if counts is not None:
            counts.update(numbers.tolist())
        n_atoms.append(numbers.size)
        volume = abs(float(np.linalg.det(frame.cell)))
        mass = float(atomic_masses[numbers].sum())
        densities.append(mass / volume * AMU_PER_A3_TO_G_PER_CM3 if volume > 0 else np.nan)
    return n_atoms, densities


def summarize(dataset: Dataset) -> DatasetSummary:
    """Sizes, composition, cell densities and property statistics of `dataset`.

    Ghost atoms (atomic number 0), if a dataset holds any, are left out of the counts and
    the density. Reads every frame once (a few seconds for thousands of structures).

    Args:
        dataset: any `Dataset`.

    Returns:
        DatasetSummary.
    """
    counts: Counter[int] = Counter()
    n_atoms, densities = _sizes_and_densities(dataset, counts)
    total = sum(counts.values()) or 1
    composition = {chemical_symbols[z]: counts[z] / total for z in sorted(counts)}
    return DatasetSummary(
        n_structures=len(dataset),
        n_atoms=ColumnStats.of(np.asarray(n_atoms, dtype=np.float64)),
        composition=composition,
        density=ColumnStats.of(np.asarray(densities)),
        properties={name: ColumnStats.of(col) for name, col in dataset.properties.items()},
        provenance=dataset.provenance,
        implausible=implausible_structures(dataset.properties),
        links=label_links(dataset.properties),
    )


LINK_NOTE = 0.2
"""Strongest |Spearman rho| below which `amtool dataset info` says a label tracks no other
(Cu50Zr50 100-atom cells: shear modulus 0.07, against 0.76 with density for a-sio2)."""

LINK_MIN_STRUCTURES = 20
"""Fewest structures for which the label links are given."""


def label_links(properties: Mapping[str, np.ndarray]) -> dict[str, tuple[str, float]]:
    """Property name -> (the other property it tracks most, its Spearman rho), over the
    structures where both are known; the moduli of one elastic fit (shear, bulk, Young's,
    Poisson) are not counted as links of one another. Constant columns and sets of fewer
    than `LINK_MIN_STRUCTURES` structures give none.

    A design target that tracks no other label (|rho| small with energy, density,
    cooling rate, ring size) may be scatter of small cells, which no model can aim at:
    what to check before training a conditioned model (docs/training.md, *A model for
    your own material*).
    """
    from scipy.stats import spearmanr

    from amtoolkit.data.properties import ELASTIC_LABEL_NAMES

    columns = {
        name: np.asarray(values, dtype=np.float64)
        for name, values in properties.items()
        if np.count_nonzero(np.isfinite(values)) >= LINK_MIN_STRUCTURES
        and np.nanstd(np.asarray(values, dtype=np.float64)) > 0
    }
    links: dict[str, tuple[str, float]] = {}
    for a, x in columns.items():
        for b, y in columns.items():
            if a == b or (a in ELASTIC_LABEL_NAMES and b in ELASTIC_LABEL_NAMES):
                continue
            known = np.isfinite(x) & np.isfinite(y)
            if np.count_nonzero(known) < LINK_MIN_STRUCTURES:
                continue
            rho = float(spearmanr(x[known], y[known]).statistic)
            if np.isfinite(rho) and (a not in links or abs(rho) > abs(links[a][1])):
                links[a] = (b, rho)
    return links


def _link_rows(
    links: Mapping[str, tuple[str, float]], n_structures: int
) -> list[tuple[str, str, str]]:
    rows = [
        (f"{name} tracks", f"{other} (Spearman {rho:+.2f})", "")
        for name, (other, rho) in links.items()
    ]
    loose = [name for name, (_, rho) in links.items() if abs(rho) < LINK_NOTE]
    if loose:
        rows.append(
            (
                "note",
                f"{', '.join(loose)} track(s) no other label (|Spearman| < {LINK_NOTE:g} over "
                f"{n_structures} structures): possibly scatter that no model can aim at; check "
                "before training on it (docs/training.md)",
                "",
            )
        )
    return rows


def implausible_structures(properties: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """Property name -> indices of the structures whose label is outside
    `PLAUSIBLE_LABELS` (names without such a range, missing values (NaN) and names
    without an implausible label are left out)."""
    found = {}
    for name, column in properties.items():
        if name not in PLAUSIBLE_LABELS:
            continue
        low, high = PLAUSIBLE_LABELS[name]
        values = np.asarray(column, dtype=np.float64)
        odd = ~np.isnan(values) & ~((values > low) & (values < high))
        if odd.any():
            found[name] = [int(i) for i in np.flatnonzero(odd)]
    return found


LOG_SPAN = 100.0
"""Ratio of largest to smallest value of a positive column above which `plot_dataset`
bins it evenly in log10 on a log axis (cooling rates of 0.1 to 100 K/ps put 15 of 20
structures in the first of a linear histogram's bins)."""


def _spans_decades(values: np.ndarray) -> bool:
    return bool(values.size and values.min() > 0 and values.max() >= LOG_SPAN * values.min())


def plot_dataset(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write `dataset_figure` to `path` (format by its ending, written atomically).

    Returns:
        `path`.
    """
    from amtoolkit.data._files import atomic_path

    figure = dataset_figure(dataset)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110)
    return Path(path)


def dataset_figure(dataset: Dataset) -> Figure:
    """Histograms of atoms per structure, cell density and every property of `dataset`,
    one panel each.

    Where the labels cluster and where they thin out is what decides which targets a
    model trained on the set can reach. A positive column spanning more than `LOG_SPAN`
    (cooling rates) is binned evenly in log10 on a log axis.

    Raises:
        ValueError: the dataset holds no structures.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state
    from matplotlib.ticker import MaxNLocator

    if not len(dataset):
        raise ValueError("nothing to plot: the dataset holds no structures")
    n_atoms, densities = _sizes_and_densities(dataset)
    panels = [("atoms per structure", n_atoms), ("cell density (g/cm3)", densities)]
    for name, column in dataset.properties.items():
        if name == "density" and np.allclose(column, densities, rtol=1e-3, equal_nan=True):
            continue  # the label is the cell density: one panel is enough
        unit = PROPERTY_UNITS.get(name, "")
        panels.append((f"{name} ({unit})" if unit and unit != "1" else name, column))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    figure = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for ax, (label, values) in zip(axes.flat, panels, strict=False):
        values = np.asarray(values, dtype=np.float64)
        known = values[np.isfinite(values)]
        n_bins = min(30, max(5, int(np.sqrt(max(known.size, 1)))))
        if _spans_decades(known):  # e.g. cooling rates 0.1-100 K/ps: even in log10
            edges = np.geomspace(known.min(), known.max(), n_bins + 1)
            ax.hist(known, bins=edges, color="tab:blue")
            ax.set_xscale("log")
        else:
            ax.hist(known, bins=n_bins, color="tab:blue")
            ax.ticklabel_format(axis="x", useOffset=False)  # 3000 atoms, not 0 + 3e3
        missing = values.size - known.size
        ax.set_xlabel(label + (f", {missing} missing" if missing else ""))
        ax.set_ylabel("structures")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if label == "atoms per structure":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    figure.suptitle(f"{len(dataset)} structures")
    return figure
