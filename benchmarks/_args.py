"""Command-line pieces shared by the benchmark scripts (not a benchmark itself).

Every benchmark refuses bad input before any work, with one line on stderr,
``<script>: error: <message>``, and exit status 2 (as ``amtool`` does):

- `ArgumentParser`: argparse's parser whose usage errors (a bad value, an unknown
  option) are that one line instead of the usage followed by the line;
- ``type=`` functions for argparse that refuse a bad number or name while the command
  line is parsed: `positive_int`, `int_at_least`, `non_negative_int`, `positive_float`,
  `non_negative_float`, `open_interval`, `noise_scale`, `score_gain`, `potential`,
  `device`, `existing_file` (and `sampler_choices` for ``choices=``);
- `fail`: that line for a check that needs several options, as a SystemExit to raise;
- `user_errors`: around a script's main, turns the ValueError or OSError the library
  raises for a bad model, file, dataset or potential name into that line;
- `write_json`: a report as standard JSON (NaN and infinity as null, numpy numbers as
  plain ones) through `amtoolkit.io.write_json`, with the machine's load average;
- `train_smoke`: a smoke model trained afresh in the benchmark's work folder.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn


def script_name(prog: str | None = None) -> str:
    """`prog` (default: the running script's file name) without ``.py``, e.g.
    ``bench_generator quality-a-si`` for a subcommand's parser."""
    prog = prog or Path(sys.argv[0]).name or "bench"
    first, _, rest = prog.partition(" ")
    return f"{first.removesuffix('.py')} {rest}".strip()


def fail(message: str, script: str | None = None) -> SystemExit:
    """Print ``<script>: error: <message>`` on stderr; the SystemExit (status 2) to raise."""
    print(f"{script or script_name()}: error: {message}", file=sys.stderr)
    return SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with its usage errors as one line, ``<script>: error: <message>``,
    exit status 2 (``-h`` still prints the usage); subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        raise fail(message, script_name(self.prog))


@contextlib.contextmanager
def user_errors(script: str | None = None) -> Iterator[None]:
    """Turn a ValueError or OSError (the library's errors for a bad model, file, dataset or
    potential name, and for bad values it checks itself) into one line and exit status 2.

    Set ``BENCH_TRACEBACK=1`` to see the traceback as well.
    """
    try:
        yield
    except KeyboardInterrupt:
        print(f"{script or script_name()}: interrupted; nothing written", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, OSError) as err:
        if os.environ.get("BENCH_TRACEBACK"):
            import traceback

            traceback.print_exc()
        lines = str(err).strip().splitlines()
        raise fail(lines[0] if lines else type(err).__name__, script) from None


# ----------------------------------------------------------------------------- types


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _int_at_least(text: str, minimum: int) -> int:
    value = _number(text, int)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a count)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (a seed; a size where 0 means "no limit")."""
    return _int_at_least(text, 0)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""
    return lambda text: _int_at_least(text, minimum)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value:g}")
    return value


def open_interval(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a number strictly between `lo` and `hi`."""

    def parse(text: str) -> float:
        value = _number(text, float)
        if not lo < value < hi:
            raise argparse.ArgumentTypeError(f"must lie in ({lo:g}, {hi:g}), got {value:g}")
        return value

    return parse


def _library_checked(text: str, check: Callable[[float], float], name: str) -> float:
    """`text` as a float accepted by the library's `check` (its message without `name`)."""
    value = _number(text, float)
    try:
        return check(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"{name} ")) from None


def noise_scale(text: str) -> float:
    """An argparse type: a noise scale the reverse SDE takes
    (`amtoolkit.diffusion.check_noise_scale`)."""
    from amtoolkit.diffusion import check_noise_scale

    return _library_checked(text, check_noise_scale, "noise_scale")


def score_gain(text: str) -> float:
    """An argparse type: a score gain the samplers take
    (`amtoolkit.diffusion.check_score_gain`)."""
    from amtoolkit.diffusion import check_score_gain

    return _library_checked(text, check_score_gain, "score_gain")


def sampler_choices() -> list[str]:
    """Every sampler name some model supports (`amtoolkit.diffusion.SAMPLING`); whether a
    given model supports it is the library's check when the model is loaded."""
    from amtoolkit.diffusion import SAMPLING

    return sorted({name for methods in SAMPLING.values() for name in methods})


def potential(text: str) -> str:
    """An argparse type: the name of a shipped classical potential
    (`amtoolkit.potentials.get_spec`), checked before any work rather than when the first
    structure is relaxed."""
    from amtoolkit.potentials import get_spec

    try:
        get_spec(text)
    except KeyError as err:
        raise argparse.ArgumentTypeError(str(err.args[0])) from None
    return text


def device(text: str) -> str:
    """An argparse type: a torch device string (cpu, cuda, cuda:1), CUDA ones only where
    CUDA is available."""
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (cpu or cuda)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
    return text


def existing_file(text: str) -> Path:
    """An argparse type: the path of an existing file."""
    path = Path(text)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise argparse.ArgumentTypeError(f"{text}: {what}")
    return path


# ----------------------------------------------------------------------------- output


def jsonable(value: Any) -> Any:
    """`value` with numpy arrays and numbers as lists and plain numbers, keys as strings,
    and anything else that JSON has no type for (a Path, say) as its ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    return str(value)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as standard JSON (NaN and infinity as null; `jsonable`), creating the
    folder; atomically, through `amtoolkit.io.write_json`. A report (a dict) gets
    ``load_average`` (1, 5, 15 min) and ``cpus``: timings taken under load read slow.
    Returns the path."""
    from amtoolkit.io import write_json as write_strict_json

    if isinstance(data, dict) and "load_average" not in data:
        data = {**data, "load_average": list(os.getloadavg()), "cpus": os.cpu_count()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_strict_json(path, jsonable(data))


def warn_if_loaded(threads: int) -> None:
    """A line on stderr when the machine's load leaves fewer free cores than `threads`:
    the timings will read slow (2 threads on a 2-core machine at load 2.3 measured 1.51 s
    per generator step, 1 thread 0.17 s)."""
    load = os.getloadavg()[0]
    free = (os.cpu_count() or 1) - load
    if free < threads:
        print(
            f"{script_name()}: warning: load average {load:.1f} on {os.cpu_count()} cores "
            f"leaves fewer than the {threads} threads asked for: timings will read slow",
            file=sys.stderr,
        )


def train_smoke(config: Any) -> str:
    """Train a smoke model afresh and return its checkpoint stem: its `out_dir`, this
    benchmark's own product, is replaced (a rerun into the same --workdir found the last
    run's model and refused to start)."""
    import shutil

    from amtoolkit.training import train

    shutil.rmtree(config.out_dir, ignore_errors=True)
    return str(train(config).checkpoint)
