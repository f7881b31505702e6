"""``amtool train CONFIG.yaml``: train a diffusion denoiser from a YAML config.

A thin layer over `amtoolkit.training.train`: reads the config, applies the command
line overrides, shows a progress bar and one line per epoch, prints a summary and can
write it as JSON. Bad input (missing file, unknown config key, wrong value) ends with
one line ``amtool: error: <message>`` and exit status 2.
"""

from __future__ import annotations

import shlex
import sys

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_path", metavar="CONFIG.yaml")
@click.option("--resume", is_flag=True, help="Continue the run in the output folder (last.pt).")
@click.option(
    "--overwrite", is_flag=True, help="Start afresh even if the output folder holds a run."
)
@click.option("--out", "out_dir", metavar="DIR", help="Output folder (overrides out_dir).")
@click.option("--epochs", type=int, help="Number of epochs (overrides epochs).")
@click.option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (overrides device).")
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bar or per-epoch lines (notes such as 'resuming ...' stay).",
)
@click.option(
    "--json",
    "json_path",
    metavar="OUT",
    help="Write the run summary as JSON (- for standard output).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def train(
    config_path: str,
    resume: bool,
    overwrite: bool,
    out_dir: str | None,
    epochs: int | None,
    device: str | None,
    no_progress: bool,
    json_path: str | None,
    debug: bool,
) -> None:
    """Train a diffusion model as CONFIG.yaml says (see docs/training.md).

    Under torchrun every process runs this command; rank 0 writes the outputs.
    """
    from amtoolkit.cli import (
        _user_errors,
        _warnings_as_lines,
        check_outputs,
        echo_summary,
        emit_json,
        sigterm_as_interrupt,
    )

    main_rank = _is_main_rank()
    with _user_errors(debug, quiet=not main_rank), _warnings_as_lines():
        check_outputs(json_path)
        if resume and overwrite:
            raise ValueError(
                "give --resume (continue the run) or --overwrite (start afresh), not both"
            )
        if out_dir is not None and not out_dir.strip():
            raise ValueError("--out is empty; give the output folder")
        from amtoolkit.training import load_config
        from amtoolkit.training import train as run_training

        config = load_config(config_path)
        changes = {
            k: v
            for k, v in {"out_dir": out_dir, "epochs": epochs, "device": device}.items()
            if v is not None
        }
        if changes:
            config = config.replace(**changes)
        log = None
        if main_rank:  # --no-progress keeps the notes (resuming ...), drops the epoch lines
            log = _echo_above_bar if not no_progress else _notes_only
        try:
            with sigterm_as_interrupt():
                result = run_training(
                    config,
                    resume=resume,
                    overwrite=overwrite,
                    progress=not no_progress and sys.stderr.isatty(),  # no bars in logs
                    log=log,
                    command=_command_line(config_path, resume, overwrite, changes),
                )
        except KeyboardInterrupt:
            if main_rank:
                if not no_progress and sys.stderr.isatty():
                    click.echo(err=True)  # off the progress bar's unfinished line
                click.echo(
                    f"amtool: interrupted; the finished epochs are kept: rerun with --resume "
                    f"to continue {config.output_dir}",
                    err=True,
                )
            sys.exit(130)
        except FloatingPointError as err:  # the run diverged: a setting, not a bug
            raise ValueError(f"{config_path}: {err}") from None
        if not main_rank:
            return
        did = "trained" if result.trained else "exported (no epoch left to train)"
        echo_summary(
            f"{did} {config.name}: {result.epochs} epochs in {result.wall_time_s:.1f} s; "
            f"best {result.selected_by} {result.best_loss:.4f} at epoch {result.best_epoch} "
            f"({result.weights} weights)\n"
            f"model: {result.checkpoint}.pt + {result.checkpoint}.json\n"
            f"metrics: {result.out_dir}/metrics.csv (curves: loss.png); resume state: "
            f"{result.out_dir}/last.pt",
            json_path,
        )
        emit_json(json_path, result.to_dict())


def _command_line(
    config_path: str, resume: bool, overwrite: bool, changes: dict[str, object]
) -> str:
    """The equivalent ``amtool train`` command, recorded in the checkpoint."""
    words = ["amtool", "train", config_path]
    words += ["--resume"] * resume + ["--overwrite"] * overwrite
    for key, value in changes.items():
        words += ["--out" if key == "out_dir" else f"--{key}", str(value)]
    return shlex.join(words)


def _is_main_rank() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _notes_only(line: str) -> None:
    """A training log line on stderr, unless it is a per-epoch line."""
    if not line.startswith("epoch "):
        click.echo(line, err=True)


def _echo_above_bar(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
