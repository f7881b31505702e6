"""`amtool`: the amtoolkit command line, a thin layer over the library.

    amtool analyze run.extxyz                       # composition, density, RDF peaks, CN
    amtool analyze glass.dat --type-map 1=O,2=Si --rings --sq --json out.json --plot out.png
    amtool analyze gen.extxyz --reference ref.extxyz --potential tersoff-sio2 --energy
    amtool analyze example:a-si                     # a structure shipped with amtoolkit
    amtool potentials

Bad input (unreadable file, non-periodic or zero-volume cell, NaN positions in the whole
input) ends with one line ``amtool: error: <message>`` on stderr and exit status 2
(``--debug`` shows the traceback). A frame that fails is reported, skipped, and the
exit status is 1 at the end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

import click

from amtoolkit import __version__

EXAMPLE_PREFIX = "example:"

#: flag name -> analysis name in amtoolkit.analyzer.ANALYSES
_FLAGS = {
    "rdf": "rdf",
    "adf": "adf",
    "coordination": "coordination",
    "rings": "rings",
    "sq": "structure_factor",
    "crystallinity": "crystallinity",
    "energy": "energy",
    "elastic": "elastic",
    "vdos": "vdos",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amtool")
def main() -> None:
    """amtool: analyse amorphous structures (and, later, generate and train)."""


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--potential", "-p", metavar="NAME", help="Classical potential (amtool potentials).")
@click.option("--rdf", is_flag=True, help="Radial distribution function (first peaks).")
@click.option("--adf", is_flag=True, help="Bond-angle distribution (covalent bonds).")
@click.option("--coordination", is_flag=True, help="Coordination numbers (covalent bond rule).")
@click.option("--rings", is_flag=True, help="Shortest-path ring statistics.")
@click.option("--sq", is_flag=True, help="Structure factor S(q), number-weighted, g(r) to 20 Å.")
@click.option("--crystallinity", is_flag=True, help="Space groups (group 1 = amorphous).")
@click.option("--energy", is_flag=True, help="Energy after relaxation (needs --potential).")
@click.option("--elastic", is_flag=True, help="Elastic moduli (needs --potential; slow).")
@click.option("--vdos", is_flag=True, help="Vibrational DOS (needs --potential; slow).")
@click.option(
    "--reference",
    multiple=True,
    metavar="REF",
    help="Reference structures to compare with (repeatable).",
)
@click.option("--json", "json_path", metavar="OUT", help="Write all results as JSON.")
@click.option("--plot", "plot_path", metavar="OUT.png", help="Write a figure (.png, .pdf or .svg).")
@click.option("--type-map", metavar="1=O,2=Si", help="LAMMPS atom types to elements.")
@click.option(
    "--index", default=":", show_default=True, help="Frames of each file: ASE index, e.g. -1, ::10."
)
@click.option("--format", "fmt", metavar="FORMAT", help="ASE file format (default: guess).")
@click.option("--debug", is_flag=True, help="Show tracebacks; stop at the first failing frame.")
def analyze(
    files: Sequence[str],
    potential: str | None,
    reference: Sequence[str],
    json_path: str | None,
    plot_path: str | None,
    type_map: str | None,
    index: str,
    fmt: str | None,
    debug: bool,
    **flags: bool,
) -> None:
    """Analyse the structures in FILES and print a summary.

    FILES are extxyz, LAMMPS data, POSCAR, CIF... (anything ASE reads), or
    example:NAME for a structure shipped with amtoolkit. Without analysis flags
    the summary has composition, density, RDF first peaks and coordination.
    """
    from amtoolkit.analyzer import DEFAULT_ANALYSES, Analyzer

    with _user_errors(debug):
        if plot_path:
            _check_figure_format(plot_path)
        analyzer = Analyzer(potential)
        frames, labels = _read(files, index, fmt, type_map)
        ref_frames = _read(reference, ":", fmt, type_map)[0] if reference else None
        analyses = [name for flag, name in _FLAGS.items() if flags[flag]] or DEFAULT_ANALYSES
        report = analyzer.report(
            frames,
            analyses,
            labels=labels,
            reference=ref_frames,
            skip_errors=not debug,
            on_skip=_warn_skip,
            progress=None,
        )
        click.echo(report.summary())
        if json_path:
            from amtoolkit.io import write_json

            write_json(json_path, report.to_dict())
        if plot_path:
            report.plot(plot_path)
    if report.skipped:
        click.echo(f"amtool: {len(report.skipped)} frame(s) skipped", err=True)
        sys.exit(1)


@main.command()
def potentials() -> None:
    """List the classical potentials known by name."""
    from amtoolkit.potentials import POTENTIALS

    for name, spec in POTENTIALS.items():
        click.echo(f"{name:<14}{spec.description}")
        click.echo(f"{'':<14}elements: {', '.join(spec.elements)}")
        click.echo(f"{'':<14}reference: {spec.reference}")


# ----------------------------------------------------------------------------- helpers


def _read(
    files: Sequence[str], index: str, fmt: str | None, type_map: str | None
) -> tuple[list, list[str]]:
    """All frames of `files` and one label ``file[k]`` per frame."""
    from amtoolkit.io import parse_type_map, read_structures

    numbers_of_type = parse_type_map(type_map)
    frames, labels = [], []
    for name in files:
        path = _resolve(name)
        read = read_structures(path, index=index, format=fmt, type_map=numbers_of_type)
        frames += read
        labels += [f"{name}[{k}]" for k in range(len(read))]
    return frames, labels


def _resolve(name: str) -> str:
    """A file name, or the path of a shipped example for ``example:NAME``."""
    if name.startswith(EXAMPLE_PREFIX):
        from amtoolkit import examples

        return str(examples.path(name[len(EXAMPLE_PREFIX) :]))
    return name


def _check_figure_format(path: str) -> None:
    """Fail before any work on a figure file name matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    known = FigureCanvasBase.get_supported_filetypes()
    if fmt not in known:
        raise ValueError(
            f"--plot {path}: unknown figure format {fmt!r} (use .png, .pdf, .svg or "
            f"{', '.join(sorted(set(known) - {'png', 'pdf', 'svg'}))})"
        )


def _warn_skip(label: str, reason: str) -> None:
    click.echo(f"amtool: skipped {label}: {reason}", err=True)


@contextlib.contextmanager
def _user_errors(debug: bool) -> Iterator[None]:
    """Turn exceptions into ``amtool: error: <one line>`` and exit status 2 (1 for bugs)."""
    try:
        yield
    except (OSError, ValueError, ImportError, KeyError) as exc:  # bad input or missing extra
        if debug:
            traceback.print_exc()
        click.echo(f"amtool: error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say so in one line unless debugging
        if debug:
            traceback.print_exc()
        click.echo(
            f"amtool: error: internal error ({type(exc).__name__}: {_one_line(exc)}); "
            "rerun with --debug for the traceback",
            err=True,
        )
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    main()
