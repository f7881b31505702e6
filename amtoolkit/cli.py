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
import math
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from amtoolkit import __version__

if TYPE_CHECKING:
    from ase import Atoms

EXAMPLE_PREFIX = "example:"
HELD_OUT_PREFIX = "held-out:"
"""``held-out:MODEL``: the structures a model never trained on (`Generator.held_out`)."""
STREAM_SUFFIXES = (".extxyz", ".xyz")
"""Endings accepted for the extended XYZ that `generate` and `refine` stream to."""

#: flag name -> analysis name in amtoolkit.analyzer.ANALYSES
_FLAGS = {
    "rdf": "rdf",
    "adf": "adf",
    "coordination": "coordination",
    "network": "network",
    "rings": "rings",
    "sq": "structure_factor",
    "crystallinity": "crystallinity",
    "energy": "energy",
    "elastic": "elastic",
    "vdos": "vdos",
}


def counted(n: int, noun: str) -> str:
    """``"1 structure"``, ``"3 structures"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""click >= 8.2 raises this for a group called without a command (then shows its help)."""


class _Amtool(click.Group):
    """The command group, with click's usage errors (a bad option value, a missing
    argument, an unknown command) as one line, like every other amtool error."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS_IS_HELP as err:  # a bare group: its help, as click shows it
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx is not None else "amtool"
            click.echo(f"amtool: error: {err.format_message()} ({where} -h for help)", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


class _FilesAndReference(click.Command):
    """`amtool analyze`: notes where its FILES stand relative to ``--reference``.

    ``--reference`` takes one file a flag, so a shell glob after it
    (``--reference ref_*.dat``) puts every file but the first among FILES, silently. The
    positional arguments before the first ``--reference`` and after one are counted
    into ``ctx.meta["files_around_reference"]`` = (before, after) for the command to
    refuse a run with FILES on both sides."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        before, after, seen_reference, tokens = [], [], False, iter(args)
        for token in tokens:
            if token == "--":
                (after if seen_reference else before).extend(tokens)
            elif token in takes_value:
                seen_reference |= token == "--reference"
                next(tokens, None)
            elif token.startswith("--reference="):
                seen_reference = True
            elif not token.startswith("-") or token == "-":
                (after if seen_reference else before).append(token)
        ctx.meta["files_around_reference"] = (before, after)
        return super().parse_args(ctx, args)


def _check_files_around_reference(ctx: click.Context) -> None:
    """Refuse FILES on both sides of ``--reference`` (see `_FilesAndReference`)."""
    before, after = ctx.meta.get("files_around_reference", ([], []))
    if before and after:
        raise ValueError(
            f"FILES on both sides of --reference ({', '.join(after[:3])}"
            f"{' ...' if len(after) > 3 else ''} after it): --reference takes one file a "
            "flag, so a shell glob after it lands among FILES; quote the glob "
            "(--reference 'ref_*.dat') or repeat --reference for each file"
        )


def _expand_globs(names: Sequence[str]) -> list[str]:
    """`names` with each quoted glob (``'ref_*.dat'``, not an existing file) replaced by
    the files it matches, sorted.

    Raises:
        ValueError: a glob that matches no file.
    """
    import glob

    expanded: list[str] = []
    for name in names:
        if glob.has_magic(name) and not os.path.exists(name):
            matches = sorted(glob.glob(name))
            if not matches:
                raise ValueError(f"{name}: no file matches this pattern")
            expanded += matches
        else:
            expanded.append(name)
    return expanded


@click.group(cls=_Amtool, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amtool")
def main() -> None:
    """amtool: analyse, generate and make datasets of amorphous structures."""


@main.command(cls=_FilesAndReference)
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--potential",
    "-p",
    metavar="NAME|FILE",
    help="Classical potential: a name (amtool potentials) or a potential file (.yaml).",
)
@click.option("--rdf", is_flag=True, help="Radial distribution function (first peaks).")
@click.option("--adf", is_flag=True, help="Bond-angle distribution (covalent bonds).")
@click.option("--coordination", is_flag=True, help="Coordination numbers (covalent bond rule).")
@click.option(
    "--network", is_flag=True, help="Q^n speciation and bridging-oxygen fractions (oxides)."
)
@click.option(
    "--formers",
    metavar="EL,EL",
    help="Network formers of --network (implies it), e.g. Si,Al for an aluminosilicate "
    "[default: those of B, Si, P, Ge, As present].",
)
@click.option("--rings", is_flag=True, help="Shortest-path ring statistics.")
@click.option("--sq", is_flag=True, help="Structure factor S(q) from g(r) to 20 Å.")
@click.option(
    "--sq-weighting",
    type=click.Choice(["number", "neutron", "xray"]),
    help="Weight the atoms of S(q) as neutrons or X-rays see them (implies --sq) "
    "[default: number].",
)
@click.option(
    "--sq-data",
    metavar="FILE",
    help="A measured S(q) (two columns, q in 1/Å and S) to compare with (implies --sq).",
)
@click.option("--crystallinity", is_flag=True, help="Space groups (group 1 = amorphous).")
@click.option("--energy", is_flag=True, help="Energy after relaxation (needs --potential).")
@click.option("--elastic", is_flag=True, help="Elastic moduli (needs --potential; slow).")
@click.option("--vdos", is_flag=True, help="Vibrational DOS (needs --potential; slow).")
@click.option(
    "--fmax",
    type=float,
    metavar="F",
    help="Force criterion (eV/Å) of the --energy and --elastic relaxations [default: 0.01 "
    "for --energy; for --elastic the potential's label setting (tersoff-sio2 0.01, bmp-glass "
    "0.001), else 1e-4].",
)
@click.option(
    "--reference",
    multiple=True,
    metavar="REF",
    help="Reference structures to compare with: one file a flag (repeatable), or a quoted "
    "glob ('ref_*.dat'); held-out:MODEL for the structures a model (shipped name or "
    "checkpoint) never trained on.",
)
@click.option(
    "--json", "json_path", metavar="OUT", help="Write all results as JSON (- for standard output)."
)
@click.option(
    "--plot", "plot_path", metavar="OUT.png", help="Write a figure (.png, .pdf, .svg, ...)."
)
@click.option("--type-map", metavar="1=O,2=Si", help="LAMMPS atom types to elements.")
@click.option(
    "--atom-style",
    metavar="STYLE",
    help="LAMMPS atom style of data files whose Atoms line names none (atomic, charge, full).",
)
@click.option(
    "--index", default=":", show_default=True, help="Frames of each file: ASE index, e.g. -1, ::10."
)
@click.option("--format", "fmt", metavar="FORMAT", help="ASE file format (default: guess).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the frames of --rings, --crystallinity, --energy, --elastic "
    "and --vdos.",
)
@click.option(
    "--cache",
    "cache_dir",
    metavar="DIR",
    help="Keep each frame's --rings results, and with -p its --energy, --elastic, --vdos and "
    "--crystallinity results, in DIR as it finishes; a rerun reads them back, so an "
    "interrupted run continues where it stopped [default: $AMTOOLKIT_CACHE, else "
    "$XDG_CACHE_HOME/amtoolkit/frames, else ~/.cache/amtoolkit/frames].",
)
@click.option("--no-cache", is_flag=True, help="Measure every frame afresh and keep nothing.")
@click.option("--debug", is_flag=True, help="Show tracebacks; stop at the first failing frame.")
def analyze(
    files: Sequence[str],
    potential: str | None,
    workers: int,
    reference: Sequence[str],
    json_path: str | None,
    plot_path: str | None,
    type_map: str | None,
    atom_style: str | None,
    index: str,
    fmt: str | None,
    debug: bool,
    sq_weighting: str | None,
    sq_data: str | None,
    cache_dir: str | None,
    no_cache: bool,
    formers: str | None,
    fmax: float | None,
    **flags: bool,
) -> None:
    """Analyse the structures in FILES and print a summary.

    FILES are extxyz, LAMMPS data, POSCAR, CIF... (anything ASE reads),
    example:NAME for a structure shipped with amtoolkit, or held-out:MODEL for the
    structures a model never trained on. Without analysis flags
    the summary has composition, density, RDF first peaks and coordination.
    """
    from amtoolkit.analysis.report import FRAME_ANALYSES
    from amtoolkit.analyzer import DEFAULT_ANALYSES, Analyzer

    with _user_errors(debug), _warnings_as_lines():
        _check_files_around_reference(click.get_current_context())
        files, reference = _expand_globs(files), _expand_globs(reference)
        check_outputs(json_path, plot_path)
        if plot_path:
            _check_figure_format(plot_path)
            if json_path is not None and Path(json_path).resolve() == Path(plot_path).resolve():
                raise ValueError(f"--json and --plot name the same file {plot_path!r}")
        needing = [f"--{flag}" for flag in ("energy", "elastic", "vdos") if flags[flag]]
        if needing and potential is None:
            raise ValueError(
                f"{' '.join(needing)} needs a classical potential: add -p NAME "
                "(amtool potentials lists them)"
            )
        measured_sq = None
        if sq_data is not None:
            from amtoolkit.analysis.structure_factor import MeasuredSq

            measured_sq = MeasuredSq.read(sq_data)
        if no_cache and cache_dir is not None:
            raise ValueError("give --cache DIR or --no-cache, not both")
        frames, labels = _read(files, index, fmt, type_map, atom_style)
        flags["sq"] = flags["sq"] or sq_weighting is not None or sq_data is not None
        flags["network"] = flags["network"] or formers is not None
        analyses = [name for flag, name in _FLAGS.items() if flags[flag]] or DEFAULT_ANALYSES
        per_frame = [a for a in analyses if a in FRAME_ANALYSES]
        if workers > 1 and not per_frame:
            click.echo(
                f"amtool: warning: --workers {workers} shares out the frames of --rings, "
                "--crystallinity and the potential-based analyses; these run in one process",
                err=True,
            )
        cache = None
        if not no_cache and (potential is not None or "rings" in per_frame) and per_frame:
            from amtoolkit.analysis.cache import default_cache_dir

            cache = cache_dir if cache_dir is not None else default_cache_dir()
        analyzer = Analyzer(potential, workers=workers, cache=cache)
        options: dict[str, dict[str, Any]] = {}
        if flags["sq"]:
            options["sq"] = {"weighting": sq_weighting or "number"}
        if fmax is not None:
            relaxing = [name for name in ("energy", "elastic") if flags[name]]
            if not relaxing:
                raise ValueError("--fmax sets the relaxations of --energy and --elastic; add one")
            if not (math.isfinite(fmax) and fmax > 0):
                raise ValueError(f"--fmax must be a positive force in eV/Å, got {fmax:g}")
            for name in relaxing:
                options[name] = {"fmax": fmax}
        elif flags["elastic"]:
            from amtoolkit.analysis.report import label_setting

            setting = label_setting(frames)  # generated for elastic targets: measure alike
            if setting is not None:
                options["elastic"] = {
                    key: setting[key] for key in ("fmax", "n_steps", "delta") if key in setting
                }
        if formers is not None:
            named = [part.strip() for part in formers.split(",") if part.strip()]
            if not named:
                raise ValueError("--formers names no element; give e.g. --formers Si,Al")
            present = sorted({s for a in frames for s in a.get_chemical_symbols()})
            absent = [el for el in named if el not in present or el == "O"]
            if absent:
                raise ValueError(
                    f"--formers {','.join(absent)}: not a cation of the frames (elements "
                    f"{', '.join(present)})"
                )
            options["network"] = {"formers": named}
        ref_frames, ref_skipped = None, []
        if reference:
            ref_frames, ref_skipped = _usable_reference(
                analyzer, *_read(reference, ":", fmt, type_map, atom_style), "energy" in analyses
            )
        if plot_path and not _drawable(analyses, frames):
            raise ValueError(
                f"--plot: nothing to draw for {', '.join(analyses)}; add --rdf, --adf, "
                "--coordination, --network, --rings, --sq, --energy, --elastic or --vdos"
            )
        with sigterm_as_interrupt(), _kept_on_interrupt(analyzer.cache):
            report = analyzer.report(
                frames,
                analyses,
                labels=labels,
                reference=ref_frames,
                skip_errors=not debug,
                # one frame: its failure is the error itself, not a skip line before it
                on_skip=_warn_skip if len(frames) > 1 else None,
                progress=None,
                options=options,
                measured_sq=measured_sq,
                note=lambda line: click.echo(f"amtool: {line}", err=True),
            )
        if analyzer.cache is not None and analyzer.cache.hits:
            click.echo(
                f"amtool: {counted(analyzer.cache.hits, 'frame')} read from the cache "
                f"{analyzer.cache.directory} (--no-cache measures afresh)",
                err=True,
            )
        echo_summary(report.summary(), json_path)
        data = report.to_dict()
        step_of = {label: a.info.get("timestep") for label, a in zip(labels, frames, strict=True)}
        if any(step_of.get(label) is not None for label in report.labels):  # a dump's frames
            data["timesteps"] = [step_of.get(label) for label in report.labels]
        if ref_skipped:
            data["reference_skipped"] = [{"frame": f, "reason": why} for f, why in ref_skipped]
        emit_json(json_path, data)
        if plot_path:
            try:
                report.plot(plot_path)
            except ValueError as err:  # targets no analysis measured: the run still counts
                click.echo(f"amtool: warning: no figure written: {err}", err=True)
    if report.skipped or ref_skipped:
        what = [f"{len(report.skipped)} frame(s)"] if report.skipped else []
        what += [f"{len(ref_skipped)} reference frame(s)"] if ref_skipped else []
        click.echo(f"amtool: {' and '.join(what)} skipped", err=True)
        sys.exit(1)


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def potentials(file: str | None) -> None:
    """List the classical potentials known by name, or read and check the potential file
    FILE (any LAMMPS potential in a few lines of YAML; docs/potentials.md)."""
    from amtoolkit.potentials import POTENTIALS

    if file is None:
        for name, spec in POTENTIALS.items():
            click.echo(f"{name:<14}{spec.description}")
            click.echo(f"{'':<14}elements: {', '.join(spec.elements)}")
            click.echo(f"{'':<14}reference: {spec.reference}")
        click.echo("or any LAMMPS potential in a file: -p FILE.yaml (amtool potentials FILE)")
        return
    from amtoolkit.potentials.files import check_potential

    with _user_errors(debug=False):
        click.echo(check_potential(file))


@main.command()
@click.argument("model", required=False)
def models(model: str | None) -> None:
    """List the shipped models, or describe MODEL (a shipped name or a checkpoint path):
    the properties it targets with their training ranges, the cells it was trained on,
    its default sampling and its training data."""
    from amtoolkit import pretrained
    from amtoolkit.checkpoint import checkpoint_paths, read_info
    from amtoolkit.generator import describe_model, model_kind, short_name

    with _user_errors(debug=False):
        if model is not None:
            stem = pretrained.resolve(model)
            weights, card = checkpoint_paths(stem)
            files = str(weights)
            if card.with_suffix(".md").is_file():
                files += f" (model card {card.with_suffix('.md').name})"
            click.echo(describe_model(read_info(stem), files))
            return
        rows = [("name", "kind", "elements", "targets", "atoms")]
        for name in pretrained.available():
            info = pretrained.model_info(name)
            typical = info.typical
            atoms = "" if typical is None else str(typical.n_atoms)
            if typical is not None and typical.n_atoms_range is not None:
                low, high = typical.n_atoms_range
                atoms = str(low) if low == high else f"{low}-{high}"
            targets = ", ".join(short_name(p) for p in info.property_names) or "-"
            rows.append(
                (name, model_kind(info), ", ".join(info.vocabulary.elements), targets, atoms)
            )
        widths = [max(len(row[k]) for row in rows) + 2 for k in range(len(rows[0]) - 1)]
        for row in rows:
            click.echo(
                "".join(f"{c:<{w}}" for c, w in zip(row[:-1], widths, strict=True)) + row[-1]
            )
        click.echo("amtool models NAME describes one: its targets' training ranges, cells and data")


@main.command()
@click.argument("model")
@click.option("-n", "n", type=int, required=True, help="Number of structures.")
@click.option("-o", "--output", required=True, metavar="OUT.extxyz", help="Extended XYZ output.")
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Property target, e.g. shear=40 or shear=30,40,50 (one per structure).",
)
@click.option("--cell", metavar="L|a,b,c", help="Cell edge(s) in Å, or 9 numbers (rows).")
@click.option(
    "--pore",
    metavar="R[,AXIS]",
    help="Leave a cylindrical pore of radius R Å empty, along AXIS x, y or z (default z) "
    "through the cell's centre; needs --cell.",
)
@click.option("--atoms", "n_atoms", type=int, help="Atoms per structure (sizes the cell).")
@click.option("--density", type=float, help="Mass density in g/cm3 (sizes a cubic cell).")
@click.option("--max-density", type=float, help="Ghost-atom density, atoms/Å^3.")
@click.option("--sampler", help="sde, ode, shortcut or hmc (default: the model's).")
@click.option("--steps", type=int, help="Reverse steps (default: the model's).")
@click.option(
    "--timesteps",
    metavar="T0,T1,...,0",
    help="Your own time grid, decreasing to 0 (one model step per interval).",
)
@click.option("--guidance", type=float, help="Classifier-free guidance weight w.")
@click.option(
    "--hmc-range",
    type=(float, float),
    metavar="T_LO T_HI",
    help="--sampler hmc: diffusion times with an HMC iteration [default: 0 0.5].",
)
@click.option("--dt0", type=float, help="--sampler hmc: base leapfrog step [default: 0.4].")
@click.option(
    "--noise-scale",
    type=float,
    help="--sampler sde/hmc: factor on the injected noise (default: the model's, else 1).",
)
@click.option(
    "--score-gain",
    type=float,
    help="--sampler sde/ode/shortcut: score factor 1 + gain * t (default: the model's, else 0).",
)
@click.option("--icg", is_flag=True, help="Independent condition guidance.")
@click.option("--seed", type=int, help="Run seed (default: random, printed).")
@click.option("--batch-size", type=int, help="Structures per sampler call.")
@click.option(
    "--accept",
    "accept_texts",
    multiple=True,
    metavar="TEST",
    help="Restart structures that fail TEST: closest>=D (Å), bridging>=F (bridging O "
    "fraction), Si4>=F (fraction of Si with 4 bonds); repeatable, all must hold.",
)
@click.option(
    "--max-restarts",
    type=int,
    help="Restarts of structures that fail the charge balance (oxides) or --accept "
    "[default: 3 with either, else 0].",
)
@click.option(
    "--restart-t",
    type=float,
    help="Time the restarts re-noise to (default 0.3; below the grid's start).",
)
@click.option(
    "--no-rebalance",
    is_flag=True,
    help="Oxides: leave structures unbalanced after the restarts as they are, instead of "
    "relabelling their least sure atoms and re-denoising.",
)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in OUT: give its options again (the seed, when not "
    "given, is OUT's); keeps its structures and makes the rest.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def generate(
    model: str,
    n: int,
    output: str,
    targets: Sequence[str],
    cell: str | None,
    no_rebalance: bool,
    accept_texts: Sequence[str],
    device: str,
    overwrite: bool,
    resume: bool,
    debug: bool,
    **options: object,
) -> None:
    """Generate N structures with MODEL (a shipped name or a checkpoint path).

    Structures are appended to OUT as each batch finishes, so an interrupted run keeps
    what it made, and --resume makes the rest.
    """
    from amtoolkit.generator import Generator, parse_cell

    with _user_errors(debug), _warnings_as_lines():
        gen = Generator.load(model, device=device)  # a bad model is named before OUT
        kwargs = {k: v for k, v in options.items() if v is not None and v is not False}
        if cell is not None:
            kwargs["cell"] = parse_cell(cell)
        if no_rebalance:
            kwargs["rebalance"] = False
        if accept_texts:
            from amtoolkit.analysis.criteria import parse_criterion

            kwargs["accept"] = parse_criterion(accept_texts)
        if "timesteps" in kwargs:
            text = str(kwargs["timesteps"])
            try:
                kwargs["timesteps"] = [float(w) for w in text.split(",")]
            except ValueError:
                raise ValueError(f"--timesteps {text!r} must be comma-separated times") from None
        for name, value in _targets(targets, gen.property_names).items():
            kwargs[f"target_{name}"] = value  # `density` alone also names the cell density
        _check_structure_output(output, overwrite, resume)  # after the options' own errors
        made = _made_structures(output, indexed=True) if resume else []
        with warnings.catch_warnings(record=True) as planned:  # shown once the plan holds
            warnings.simplefilter("always")
            frames = gen.generate_iter(  # checks `made`
                n,
                progress=None,
                resume=made,
                note=None
                if sys.stderr.isatty()
                else lambda line: click.echo(f"amtool: {line}", err=True),
                **kwargs,
            )
        for warning in planned:
            warnings.showwarning(warning.message, warning.category, "", 0)
        if len(made) == n:
            click.echo(f"{output} holds all {n} structures (seed {made[-1].info['seed']})")
            return
        infos: list[dict] = []
        with sigterm_as_interrupt():  # a batch scheduler's stop: kept, with the resume hint
            last = _stream(frames, output, append=bool(made), notes=(len(made), n), infos=infos)
        kept = f"; {len(made)} kept from the earlier run" if made else ""
        redone = sum(int(i.get("restarts", 0)) for i in infos)
        relabelled = sum(int(i.get("relabelled", 0)) for i in infos)
        extra = [counted(redone, "restart")] if redone else []
        extra += [f"{counted(relabelled, 'atom')} relabelled"] if relabelled else []
        kept += f"; {', '.join(extra)}" if extra else ""
        from amtoolkit.analysis.report import atom_counts

        written = counted(n - len(made), "structure")
        sizes = atom_counts([i["n_atoms"] for i in infos])
        click.echo(f"wrote {written} of {sizes} atoms to {output} (seed {last.info['seed']}{kept})")


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--model",
    "-m",
    "model",
    required=True,
    help="Model (name or checkpoint); an energy model for hmc and relax.",
)
@click.option("-o", "--output", required=True, metavar="OUT.extxyz", help="Extended XYZ output.")
@click.option("--t", "t", type=float, default=0.05, show_default=True, help="Diffusion time.")
@click.option(
    "--method",
    type=click.Choice(["hmc", "relax", "sde"]),
    default="sde",
    show_default=True,
    help="Re-noise to t and run the reverse SDE back (any score or energy model), or HMC "
    "or FIRE relaxation on an energy model's noise energy.",
)
@click.option(
    "--steps",
    type=int,
    default=100,
    show_default=True,
    help="HMC iterations / FIRE steps / reverse SDE steps.",
)
@click.option("--dt0", type=float, help="HMC base step (hmc; default 0.2).")
@click.option(
    "--n-leapfrog", type=int, help="Velocity-Verlet steps per HMC iteration (hmc; default 15)."
)
@click.option(
    "--fmax", type=float, help="FIRE criterion on the noise energy (relax; default 0.05)."
)
@click.option(
    "--noise-scale", type=float, help="Factor on the noise of the reverse SDE (sde; default 1)."
)
@click.option(
    "--target", "targets", multiple=True, metavar="NAME=VALUE", help="Property target (repeatable)."
)
@click.option(
    "--potential", "-p", metavar="NAME|FILE", help="Classical potential for a final stage."
)
@click.option(
    "--classical",
    type=click.Choice(["relax", "md", "none"]),
    default="relax",
    show_default=True,
    help="Final stage with --potential.",
)
@click.option("--md-steps", type=int, default=1000, show_default=True, help="MD steps (1 fs).")
@click.option(
    "--temperature", type=float, default=300.0, show_default=True, help="MD temperature, K."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed.")
@click.option("--batch-size", type=int, help="Structures per model batch (default 16).")
@click.option("--type-map", metavar="1=O,2=Si", help="LAMMPS atom types to elements.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in OUT (same FILES and options): keep its "
    "structures, refine the rest.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def refine(
    files: Sequence[str],
    model: str,
    output: str,
    targets: Sequence[str],
    type_map: str | None,
    device: str,
    overwrite: bool,
    resume: bool,
    debug: bool,
    **options: Any,
) -> None:
    """Refine FILES with a model: partial diffusion (re-noise to --t, reverse SDE back;
    the default), or HMC or relaxation on an energy model's noise energy, optionally
    followed by a relaxation or MD with a classical potential.

    Structures are appended to OUT as each batch finishes.
    """
    from amtoolkit.generator import Generator
    from amtoolkit.refine import refine_iter

    with _user_errors(debug), _warnings_as_lines():
        gen = Generator.load(model, device=device)  # a bad model is named before OUT
        _check_structure_output(output, overwrite, resume)
        structures, labels = _read(files, ":", None, type_map)
        target_values = _targets(targets, gen.property_names)
        given = {k: v for k, v in options.items() if v is not None}  # else refine's defaults
        made = _made_structures(output) if resume else []
        frames = refine_iter(
            structures,
            gen,
            targets=target_values,
            device=device,
            labels=labels,
            resume=made,
            **given,
        )
        if len(made) == len(structures):
            click.echo(f"nothing to do: {output} holds all {len(made)} refined structures")
            return
        with sigterm_as_interrupt():
            _stream(frames, output, append=bool(made))
        kept = f" ({len(made)} kept from the interrupted run)" if made else ""
        written = counted(len(structures) - len(made), "refined structure")
        click.echo(f"wrote {written} to {output}{kept}")


def _add_subcommands() -> None:
    """Attach subcommands defined in their own modules (imported lazily inside them)."""
    from amtoolkit.train_cli import train
    from amtoolkit.workflows.cli import dataset

    main.add_command(train)
    main.add_command(dataset)


_add_subcommands()


# ----------------------------------------------------------------------------- helpers


def _read(
    files: Sequence[str],
    index: str,
    fmt: str | None,
    type_map: str | None,
    atom_style: str | None = None,
) -> tuple[list, list[str]]:
    """All frames of `files` and one label ``file[k]`` per frame, k its place in the file."""
    from amtoolkit.io import parse_type_map, read_numbered

    numbers_of_type = parse_type_map(type_map)
    frames, labels = [], []
    for name in files:
        if name.startswith(HELD_OUT_PREFIX):
            read, numbers = _held_out(name[len(HELD_OUT_PREFIX) :], index)
        else:
            read, numbers = read_numbered(
                _resolve(name),
                index,
                format=fmt,
                type_map=numbers_of_type,
                atom_style=atom_style,
            )
        frames += read
        labels += [f"{name}[{k}]" for k in numbers]
    return frames, labels


def _usable_reference(
    analyzer: Any, frames: list, labels: list[str], relaxed: bool
) -> tuple[list, list[tuple[str, str]]]:
    """The reference frames that pass the analyzer's checks (with the potential's coverage
    when they are to be relaxed), each other one reported as skipped; and (label, reason)
    of those.

    Raises:
        ValueError: no reference frame passes (naming the first one's problem).
    """
    from amtoolkit.analysis.report import one_line
    from amtoolkit.errors import CoverageError, StructureError

    usable, problems = [], []
    for atoms, label in zip(frames, labels, strict=True):
        try:
            analyzer.check(atoms, with_potential=relaxed)
        except (StructureError, CoverageError) as err:
            problems.append((label, one_line(err)))
            continue
        usable.append(atoms)
    if not usable:
        label, reason = problems[0]
        raise ValueError(f"no usable reference frame: {label}: {reason}")
    for label, reason in problems:
        _warn_skip(f"reference {label}", reason)
    return usable, problems


def _drawable(analyses: Sequence[str], frames: Sequence) -> bool:
    """Whether a report of `analyses` on `frames` may have a panel to draw: a plotted
    analysis, or design targets (``target_<property>``) in the frames to check."""
    from amtoolkit.analysis.report import PLOTTED_ANALYSES
    from amtoolkit.data.properties import TARGET_PREFIX

    if any(name in PLOTTED_ANALYSES for name in analyses):
        return True
    return any(key.startswith(TARGET_PREFIX) for atoms in frames for key in atoms.info)


def _held_out(model: str, index: str) -> tuple[list, list[int]]:
    """The `index` frames of the structures `model` never trained on (``held-out:MODEL``)
    and their places in that set."""
    from ase.io.formats import string2index

    from amtoolkit.generator import Generator

    if not model:
        raise ValueError(f"{HELD_OUT_PREFIX} needs a model name, e.g. {HELD_OUT_PREFIX}a-sio2")
    frames = Generator.load(model).held_out()
    try:
        wanted = string2index(index)
        places = range(len(frames))[wanted]
    except (ValueError, IndexError) as err:
        raise ValueError(f"{HELD_OUT_PREFIX}{model}: --index {index}: {err}") from None
    if isinstance(places, int):
        return [frames[places]], [places]
    return [frames[k] for k in places], list(places)


def _resolve(name: str) -> str:
    """A file name, or the path of a shipped example for ``example:NAME``."""
    if name.startswith(EXAMPLE_PREFIX):
        from amtoolkit import examples

        return str(examples.path(name[len(EXAMPLE_PREFIX) :]))
    return name


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill``, a batch scheduler's stop) acts as Ctrl-C, so a
    long run stops the same clean way: workers ended, finished work kept, the resume hint
    printed (SIGTERM otherwise ends Python at once and leaves worker processes behind)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show Python warnings, and warnings logged by amtoolkit (e.g. a sample with
    implausible labels), as ``amtool: warning: <message>`` lines on stderr."""
    import logging
    import warnings

    def line(message: Any) -> None:
        click.echo(f"amtool: warning: {_warning_line(str(message))}", err=True)

    class _Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line(record.getMessage())

    package = logging.getLogger("amtoolkit")
    handler = _Lines(level=logging.WARNING)
    package.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: line(message)
            yield
    finally:
        package.removeHandler(handler)


WARNING_WIDTH = 300
"""Most characters of a warning line (a library's warning can quote a whole input:
numpy's empty-file warning listed every line of a dump)."""


def _warning_line(message: str) -> str:
    """The first line of `message`, cut to `WARNING_WIDTH` characters."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return first if len(first) <= WARNING_WIDTH else first[: WARNING_WIDTH - 5] + " ..."


STDOUT = "-"
"""``--json -`` writes the JSON to standard output (and the text summary to stderr)."""


def check_outputs(*paths: str | None) -> None:
    """Fail before any work when an output file (None: not asked for) cannot be written."""
    from amtoolkit.io import check_writable

    for path in paths:
        if path is not None and path != STDOUT:
            check_writable(path)


def emit_json(path: str | None, data: Any) -> None:
    """Write `data` as JSON to `path` (None: not asked for; ``-``: standard output)."""
    from amtoolkit.io import json_text, write_json

    if path == STDOUT:
        click.echo(json_text(data))
    elif path is not None:
        write_json(path, data)


def echo_summary(text: str, json_path: str | None) -> None:
    """Print a command's text summary; on stderr when its JSON goes to standard output."""
    click.echo(text, err=json_path == STDOUT)


def _check_structure_output(path: str, overwrite: bool, resume: bool = False) -> None:
    """Fail before any work on an OUT that cannot take the extended XYZ stream (or, with
    `resume`, that holds no run to continue); then hold OUT for this command's run
    (`_only_writer`), before looking at what OUT holds, so that a run still writing it is
    named as such."""
    check_outputs(path)
    if os.path.splitext(path)[1].lower() not in STREAM_SUFFIXES:
        raise ValueError(
            f"-o {path}: structures are written as extended XYZ; name the file "
            f"{' or '.join(STREAM_SUFFIXES)} (amtoolkit.io.write_structures converts them)"
        )
    if resume and overwrite:
        raise ValueError("give --resume (continue OUT) or --overwrite (start afresh), not both")
    click.get_current_context().with_resource(_only_writer(path))
    if resume and not os.path.exists(path):
        raise ValueError(f"nothing to resume: {path} does not exist")
    if os.path.exists(path) and not (overwrite or resume):
        raise ValueError(f"{path} exists; pass --overwrite to replace it or --resume")


def _only_writer(path: str) -> contextlib.AbstractContextManager:
    """Hold an exclusive lock (``.<name>.lock`` beside `path`, removed when the run ends)
    while this run writes `path`: a second run into the same file (two ``--resume`` at
    once appended the same structures twice) is refused. The kernel drops the lock when
    the process dies, so a killed run's lock file does not block the resume."""
    from amtoolkit.data._files import exclusive_lock

    folder, name = os.path.split(os.path.abspath(path))
    return exclusive_lock(os.path.join(folder, f".{name}.lock"), path, remove=True)


def _made_structures(path: str, indexed: bool = False) -> list[Atoms]:
    """The whole structures in `path`; a last one cut short (the run was killed while
    writing it) is dropped from the file, which is rewritten atomically without it. With
    `indexed` (a generate run), the structures' ``index`` records must count 0, 1, ...

    Raises:
        ValueError: an unreadable file, one holding no whole structure, or (`indexed`)
            one whose indices repeat or skip (two runs wrote into it at once).
    """
    from amtoolkit.io import ReadError, read_stream, write_structures

    try:
        made, cut = read_stream(path)
    except ReadError as err:
        raise ValueError(
            f"cannot resume: {err}; repair the file or start afresh (--overwrite)"
        ) from None
    if not made:
        raise ValueError(f"nothing to resume: {path} holds no whole structure")
    for position, atoms in enumerate(made if indexed else ()):
        index = atoms.info.get("index")
        if index is not None and index != position:
            raise ValueError(
                f"cannot resume: structure {position} of {path} records index {index} (two "
                "runs wrote into it at once, or files were joined); start afresh "
                "(--overwrite)"
                + (f" or keep only its first {position} structures" if position else "")
            )
    if cut:
        click.echo(
            f"amtool: {path}: dropping a structure cut short after the {len(made)} whole ones",
            err=True,
        )
        write_structures(path, made, format="extxyz")
    return made


def _targets(texts: Sequence[str], property_names: Sequence[str]) -> dict[str, Any]:
    """``--target NAME=VALUE`` options by full property name; one given twice (also as an
    alias and its name) is refused, naming the option."""
    from amtoolkit.generator import parse_target, resolve_property

    out: dict[str, Any] = {}
    for text in texts:
        name, value = parse_target(text)
        key = resolve_property(name, property_names)
        if key in out:
            raise ValueError(f"--target {text}: {key!r} is given twice")
        out[key] = value
    return out


def _stream(
    frames: Iterator[Atoms],
    output: str,
    append: bool = False,
    notes: tuple[int, int] | None = None,
    infos: list[dict] | None = None,
) -> Atoms:
    """Write each structure of `frames` to `output` (extended XYZ) as it comes, after
    what it holds when `append`, and return the last. The file is opened at the first
    structure, so a run that fails before one is made leaves no file (and an existing one
    untouched); an interrupted run keeps what it wrote. With `notes` = (structures made
    before, all structures), a line per structure on stderr when it is not a terminal
    (a log of a long run, where no progress bar is drawn); `infos` collects each written
    structure's ``info``, with its number of atoms as ``n_atoms``."""
    import ase.io

    written, fh, last = 0, None, None
    try:
        for last in frames:
            if fh is None:  # held over the loop, closed below
                fh = open(output, "a" if append else "w", encoding="utf-8")
            ase.io.write(fh, last, format="extxyz")
            fh.flush()
            written += 1
            if infos is not None:
                infos.append({**last.info, "n_atoms": len(last)})
            if notes is not None and not sys.stderr.isatty():
                before, total = notes
                click.echo(
                    f"amtool: structure {before + written} of {total} written to {output}",
                    err=True,
                )
    except KeyboardInterrupt:
        if written:
            said = f"{counted(written, 'structure')} written to {output}"
        elif append:
            said = f"{output} is as it was"
        else:  # nothing to resume: OUT was never opened
            click.echo(
                "amtool: interrupted before the first structure; nothing written: rerun the "
                "same command (without --resume) to start again",
                err=True,
            )
            sys.exit(130)
        click.echo(f"amtool: interrupted; {said}: rerun with --resume to make the rest", err=True)
        sys.exit(130)
    finally:
        if fh is not None:
            fh.close()
    if last is None:
        raise ValueError(f"no structures to write to {output}")
    return last


def _check_figure_format(path: str) -> None:
    """Fail before any work on a figure file name matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    if path == STDOUT:
        raise ValueError("--plot needs a file name (.png, .pdf or .svg); - is for --json only")
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    known = FigureCanvasBase.get_supported_filetypes()
    if fmt not in known:
        raise ValueError(
            f"--plot {path}: unknown figure format {fmt!r} (use .png, .pdf, .svg or "
            f"{', '.join(sorted(set(known) - {'png', 'pdf', 'svg'}))})"
        )


@contextlib.contextmanager
def _kept_on_interrupt(cache: Any) -> Iterator[None]:
    """On Ctrl-C (or SIGTERM) say what the interrupted analysis kept, and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        if cache is not None and (cache.stored or cache.hits):
            done = [f"{counted(cache.stored, 'frame')} measured"] if cache.stored else []
            done += [f"{counted(cache.hits, 'frame')} read from the cache"] if cache.hits else []
            click.echo(
                f"amtool: interrupted; {' and '.join(done)}, kept in {cache.directory}: "
                "rerun the same command to continue",
                err=True,
            )
        else:
            click.echo("amtool: interrupted", err=True)
        sys.exit(130)


def _warn_skip(label: str, reason: str) -> None:
    click.echo(f"amtool: skipped {label}: {reason}", err=True)


@contextlib.contextmanager
def _user_errors(debug: bool, quiet: bool = False) -> Iterator[None]:
    """Turn exceptions into ``amtool: error: <one line>`` and exit status 2 (1 for bugs);
    `quiet` exits with the same status but prints nothing (the other processes of a
    torchrun, whose rank 0 says it once)."""
    try:
        yield
    except (OSError, ValueError, ImportError, KeyError) as exc:  # bad input or missing extra
        if debug:
            traceback.print_exc()
        if not quiet:
            click.echo(f"amtool: error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say so in one line unless debugging
        if debug:
            traceback.print_exc()
        if quiet:
            sys.exit(1)
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
