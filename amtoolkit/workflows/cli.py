"""``amtool dataset``: make melt-quench datasets and summarise datasets from the command
line (thin layer over `amtoolkit.workflows.make_dataset` and `amtoolkit.data.summarize`).

    amtool dataset make a-si --variant anneal --cooling-rate 10 -n 200 -o a-si-anneal.h5
    amtool dataset make a-sio2 -n 100 -o a-sio2.h5 --workers 2 --seed 0
    amtool dataset make meg -n 50 -o meg.h5 --full              # the paper's 800-atom protocol
    amtool dataset make a-si -n 200 -o a-si-anneal.h5 --resume  # continue a killed run
    amtool dataset make a-si -n 200 -o a.h5 --resume --max-minutes 50  # a batch job's share
    amtool dataset make a-si -n 4 -o tiny.h5 --atoms 64 --set melt_time=2 --set liquid_time=1
    amtool dataset make glass --composition Cu50Zr50 -p cuzr.yaml --set start_density=7 \
        -n 100 -o cuzr.h5                                       # any material, any potential
    amtool dataset info a-si-quench                             # statistics of a dataset
    amtool dataset collect a-si-anneal.h5 -o partial.h5         # finished samples so far

Bad input (unknown protocol, variant or option, n < 1, an existing output without
--resume) ends with one line ``amtool: error: <message>`` and exit status 2; samples
that fail twice are reported and the exit status is 1 (the finished samples are kept).
A run stopped by --max-minutes says how many samples are done and exits with status 3;
run the same command with --resume to continue.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

import click
import numpy as np


@click.group("dataset", context_settings={"help_option_names": ["-h", "--help"]})
def dataset() -> None:
    """Make datasets of amorphous structures by melt-quench MD (LAMMPS)."""


@dataset.command("make")
@click.argument("protocol", metavar="PROTOCOL")
@click.option("-n", "--n-samples", type=int, required=True, help="Number of samples.")
@click.option("-o", "--output", "out", required=True, metavar="OUT.h5", help="Output HDF5 file.")
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@click.option(
    "--seed", type=int, default=None, help="Run seed [default: 0; with --resume the run's own]."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run into OUT.")
@click.option(
    "--full", is_flag=True, help="The paper's protocol settings (meg: 800 atoms, 5 K/ps)."
)
@click.option("--variant", help="a-si: melt, quench or anneal.")
@click.option("--cooling-rate", type=float, help="Cooling rate in K/ps (a-si anneal, meg, glass).")
@click.option("--atoms", type=int, help="Number of atoms per cell.")
@click.option("--composition", help="glass: the formula, e.g. Cu50Zr50.")
@click.option(
    "--potential", "-p", metavar="NAME|FILE", help="glass: a potential name or potential file."
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any protocol parameter, e.g. --set melt_time=5 (repeatable).",
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Start no sample after this many minutes; exit 3 if some are left (then --resume).",
)
@click.option(
    "--json",
    "json_path",
    metavar="OUT.json",
    help="Write a JSON summary (- for standard output).",
)
@click.option(
    "--no-progress", is_flag=True, help="No progress bar (none is drawn off a terminal either)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def make(
    protocol: str,
    n_samples: int,
    out: str,
    workers: int | None,
    seed: int | None,
    resume: bool,
    full: bool,
    variant: str | None,
    cooling_rate: float | None,
    atoms: int | None,
    composition: str | None,
    potential: str | None,
    settings: Sequence[str],
    max_minutes: float | None,
    json_path: str | None,
    no_progress: bool,
    debug: bool,
) -> None:
    """Generate N melt-quench samples of PROTOCOL (a-si, a-sio2, meg, glass) into OUT.h5.

    glass melts any composition under any potential: --composition Cu50Zr50 -p cuzr.yaml
    --set start_density=7.0 (docs/workflows.md)."""
    from amtoolkit.cli import (
        _warnings_as_lines,
        check_outputs,
        counted,
        echo_summary,
        sigterm_as_interrupt,
    )
    from amtoolkit.workflows.runner import (
        RunStoppedError,
        SampleFailedError,
        WorkflowError,
        earlier_run,
        make_dataset,
    )

    start = time.perf_counter()
    try:
        check_outputs(json_path)
        options = parse_settings(settings)
        given = {"variant": variant, "cooling_rate": cooling_rate, "atoms": atoms}
        given |= {"composition": composition, "potential": potential}
        for name, value in given.items():
            if value is not None and name in options:
                raise click.BadParameter(
                    f"--{name.replace('_', '-')} {value} and --set {name}={options[name]} "
                    "both given; give one",
                    param_hint=f"--{name.replace('_', '-')}",
                )
            if value is not None:
                options[name] = value
        kept = earlier_run(out)[1] if resume else 0
        with sigterm_as_interrupt(), _warnings_as_lines():
            ds = make_dataset(
                protocol,
                n_samples,
                out,
                workers=workers,
                seed=seed,
                resume=resume,
                full=full,
                progress=not no_progress and sys.stderr.isatty(),  # logs: OUT.h5.log
                command=" ".join(["amtool", *sys.argv[1:]]),
                max_minutes=max_minutes,
                **options,
            )
    except (WorkflowError, click.BadParameter, OSError) as exc:
        _fail(exc, debug, status=2)
    except RunStoppedError as exc:
        click.echo(f"amtool: {exc}", err=True)
        sys.exit(3)
    except SampleFailedError as exc:
        _write_summary(json_path, out, protocol, n_samples, None, exc.failures, start)
        _fail(exc, debug, status=1)
    except KeyboardInterrupt:
        click.echo(f"amtool: interrupted; rerun with --resume to continue {out}", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug or a LAMMPS/HDF5 problem outside the samples
        _fail(exc, debug, status=1, internal=True)
    wall = time.perf_counter() - start
    labels = ", ".join(f"{name} {float(col.mean()):.4g}" for name, col in ds.properties.items())
    earlier = f", {min(kept, len(ds))} kept from the earlier run" if kept else ""
    echo_summary(
        f"wrote {counted(len(ds), 'sample')} of {protocol} to {out} in {wall:.1f} s"
        f"{earlier} (means: {labels})",
        json_path,
    )
    _write_summary(json_path, out, protocol, n_samples, ds, [], start)


@dataset.command("collect")
@click.argument("out", metavar="OUT.h5")
@click.option("-o", "--output", required=True, metavar="PARTIAL.h5", help="Where to write.")
@click.option("--overwrite", is_flag=True, help="Replace PARTIAL.h5 if it exists.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def collect(out: str, output: str, overwrite: bool, debug: bool) -> None:
    """Write the samples finished so far by an unfinished run into OUT.h5 to PARTIAL.h5
    (the run's OUT.h5.parts folder is left as it is, so it can still be resumed)."""
    from amtoolkit.cli import _warnings_as_lines, check_outputs, counted
    from amtoolkit.workflows.runner import WorkflowError, collect_parts

    try:
        check_outputs(output)
        if os.path.exists(output) and not overwrite:
            raise WorkflowError(f"{output} exists; pass --overwrite to replace it")
        with _warnings_as_lines():  # a sample file left out
            ds = collect_parts(out, output)
    except (WorkflowError, OSError) as exc:
        _fail(exc, debug, status=2)
    click.echo(f"wrote {counted(len(ds), 'finished sample')} of {out} to {output}")


@dataset.command("label")
@click.argument("dataset_specs", nargs=-1, required=True, metavar="DATASET...")
@click.option("-o", "--output", required=True, metavar="OUT.h5", help="Labelled HDF5 dataset.")
@click.option("--potential", "-p", metavar="NAME", help="Potential for energy and moduli.")
@click.option("--elastic", is_flag=True, help="Relaxed-ion elastic moduli (needs -p).")
@click.option("--rings", is_flag=True, help="Mean ring size (Si atoms in silica).")
@click.option("--workers", type=int, default=1, show_default=True, help="Frames in parallel.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into OUT.h5.")
@click.option("--type-map", metavar="1=O,2=Si", help="LAMMPS atom types to elements.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def label(
    dataset_specs: tuple[str, ...],
    output: str,
    potential: str | None,
    elastic: bool,
    rings: bool,
    workers: int,
    resume: bool,
    type_map: str | None,
    no_progress: bool,
    debug: bool,
) -> None:
    """Measure the labels melt-quench datasets carry (density; with -p the relaxed energy,
    with --elastic the moduli; with --rings the mean ring size) on every frame of DATASET
    (files, in order, or a shipped name) and write them with their labels to OUT.h5."""
    from amtoolkit.cli import _warnings_as_lines, counted, sigterm_as_interrupt
    from amtoolkit.data import Dataset, open_dataset
    from amtoolkit.workflows.label import label_dataset
    from amtoolkit.workflows.runner import WorkflowError

    try:
        with sigterm_as_interrupt(), _warnings_as_lines():
            source: Any = dataset_specs[0]
            for spec in dataset_specs if type_map is None else ():
                check_finished(spec)
            if type_map is not None:
                source = Dataset.from_lammps_data(list(dataset_specs), type_map)
            elif len(dataset_specs) > 1:
                source = Dataset.concat(
                    [open_dataset(spec) for spec in dataset_specs],
                    names=list(dataset_specs),
                    command=" ".join(["amtool", *sys.argv[1:]]),
                )
            ds = label_dataset(
                source,
                output,
                potential=potential,
                elastic=elastic,
                rings=rings,
                workers=workers,
                resume=resume,
                progress=not no_progress and sys.stderr.isatty(),
                command=" ".join(["amtool", *sys.argv[1:]]),
            )
    except (WorkflowError, OSError, ValueError) as exc:  # DatasetError is a ValueError
        _fail(exc, debug, status=2)
    except KeyboardInterrupt:
        click.echo(f"amtool: interrupted; rerun with --resume to continue {output}", err=True)
        sys.exit(130)
    means = ", ".join(f"{k} {_finite_mean(v)}" for k, v in ds.properties.items())
    click.echo(f"wrote {counted(len(ds), 'labelled structure')} to {output} (means: {means})")


@dataset.command("merge")
@click.argument("datasets", nargs=-1, required=True, metavar="DATASET...")
@click.option("-o", "--output", required=True, metavar="OUT.h5", help="Merged HDF5 dataset.")
@click.option("--overwrite", is_flag=True, help="Replace OUT.h5 if it exists.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def merge(datasets: tuple[str, ...], output: str, overwrite: bool, debug: bool) -> None:
    """Join two or more datasets (files or shipped names) into OUT.h5, frames in order,
    properties joined by name (missing where a part lacks one)."""
    from amtoolkit.cli import _warnings_as_lines, check_outputs, counted
    from amtoolkit.data import Dataset, open_dataset
    from amtoolkit.io import DATASET_SUFFIXES

    try:
        check_outputs(output)
        if len(datasets) < 2:
            raise ValueError(f"give two or more datasets to merge, got {len(datasets)}")
        if not output.lower().endswith(DATASET_SUFFIXES):
            raise ValueError(f"{output}: the merged dataset is HDF5; name it .h5")
        if any(os.path.abspath(spec) == os.path.abspath(output) for spec in datasets):
            raise ValueError(f"{output} is one of the inputs; write the merge elsewhere")
        if os.path.exists(output) and not overwrite:
            raise ValueError(f"{output} exists; pass --overwrite to replace it")
        command = " ".join(["amtool", *sys.argv[1:]])
        for spec in datasets:
            check_finished(spec)
        parts = [open_dataset(spec) for spec in datasets]
        with _warnings_as_lines():
            merged = Dataset.concat(parts, names=datasets, command=command)
        merged.to_hdf5(output)
    except (OSError, ValueError) as exc:
        _fail(exc, debug, status=2)
    sizes = ", ".join(str(p["frames"]) for p in merged.provenance["parts"])
    click.echo(f"wrote {counted(len(merged), 'structure')} ({sizes}) to {output}")


@dataset.command("info")
@click.argument("dataset_spec", metavar="DATASET")
@click.option(
    "--json",
    "json_path",
    metavar="OUT.json",
    help="Write the summary as JSON (- for standard output).",
)
@click.option("--plot", "plot_path", metavar="OUT.png", help="Histograms of sizes and labels.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def info(dataset_spec: str, json_path: str | None, plot_path: str | None, debug: bool) -> None:
    """Sizes, composition, density and label statistics of DATASET (a file or a shipped name)."""
    from amtoolkit.cli import (
        _check_figure_format,
        _warnings_as_lines,
        check_outputs,
        echo_summary,
        emit_json,
    )
    from amtoolkit.data import open_dataset, summarize
    from amtoolkit.data.summary import plot_dataset

    try:
        check_outputs(json_path, plot_path)
        if plot_path:
            _check_figure_format(plot_path)
        check_finished(dataset_spec)
        with _warnings_as_lines():
            data = open_dataset(dataset_spec)
            summary = summarize(data)
            if plot_path:
                plot_dataset(data, plot_path)
    except (OSError, ValueError) as exc:
        _fail(exc, debug, status=2)
    echo_summary(summary.table(), json_path)
    emit_json(json_path, summary.to_dict())
    note = unfinished_extension(dataset_spec)
    if note:
        click.echo(f"amtool: note: {note}", err=True)


def unfinished_extension(spec: str) -> str | None:
    """What to say when `spec` exists and a later run into it (an extension or a resume)
    is unfinished beside it (``<spec>.parts``), else None."""
    from amtoolkit.workflows.runner import _Parts, parts_folder

    folder = parts_folder(spec)
    if not (os.path.exists(spec) and folder.is_dir()):
        return None
    parts = _Parts(folder)
    try:
        wanted = json.loads(parts.manifest.read_text()).get("n_samples")
    except (OSError, ValueError, AttributeError):
        wanted = None
    done = len(parts.finished())
    of = f" of {wanted}" if wanted else ""
    return (
        f"a later run into {spec} is unfinished ({folder.name} holds {done}{of} samples): "
        "this summary is of the file as last written; finish the run with the same "
        "command and --resume"
    )


def check_finished(spec: str) -> None:
    """Refuse, pointing to ``collect`` and ``--resume``, a dataset `spec` that is not
    written yet because the `make_dataset` run into it is unfinished (only its work
    folder ``<spec>.parts`` exists).

    Raises:
        ValueError: `spec` is such an output.
    """
    from amtoolkit.workflows.label import progress_path
    from amtoolkit.workflows.runner import parts_folder

    if not os.path.exists(spec) and progress_path(spec).is_file():
        raise ValueError(
            f"{spec} is not written yet: its `amtool dataset label` run is unfinished "
            f"({progress_path(spec).name} holds its frames); finish it with the same "
            "command and --resume"
        )
    if not os.path.exists(spec) and parts_folder(spec).is_dir():
        raise ValueError(
            f"{spec} is not written yet: its run is unfinished ({parts_folder(spec).name} "
            f"holds its samples); take those finished so far with `amtool dataset collect "
            f"{spec} -o partial.h5`, or finish it with `amtool dataset make ... -o {spec} "
            "--resume`"
        )


def parse_settings(settings: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings -> dict; VALUE is read as JSON when it parses, else text.

    Dashes in NAME become underscores (``melt-time`` = ``melt_time``).
    """
    out: dict[str, Any] = {}
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        key = name.strip().replace("-", "_")
        if key in out:
            raise click.BadParameter(f"{key} is set twice; give it once", param_hint="--set")
        out[key] = value
    return out


def _write_summary(
    path: str | None,
    out: str,
    protocol: str,
    n_samples: int,
    ds: Any,
    failures: list[dict[str, Any]],
    start: float,
) -> None:
    if path is None:
        return
    summary: dict[str, Any] = {
        "output": out,
        "protocol": protocol,
        "n_samples": n_samples,
        "wall_s": time.perf_counter() - start,
        "failed_samples": failures,
    }
    if ds is not None:
        summary["n_written"] = len(ds)
        summary["property_means"] = {k: float(v.mean()) for k, v in ds.properties.items()}
    from amtoolkit.cli import emit_json

    emit_json(path, summary)


def _fail(exc: BaseException, debug: bool, status: int, internal: bool = False) -> None:
    if debug:
        traceback.print_exception(exc)
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    message = lines[0]
    if internal:
        message = f"internal error ({type(exc).__name__}: {message}); rerun with --debug"
    click.echo(f"amtool: error: {message}", err=True)
    sys.exit(status)


def _finite_mean(values: Any) -> str:
    """The mean of the finite values, or "not measured" when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return f"{float(finite.mean()):.4g}" if finite.size else "not measured"
