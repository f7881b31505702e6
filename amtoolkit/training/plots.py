"""Training curves: the losses of a run against the epoch, and by diffusion time.

Written by `train` as ``loss.png`` beside ``metrics.csv`` at the end of a run (and
drawn from any ``metrics.csv`` with `plot_metrics`): the left panel shows the training
and validation loss per epoch with the exported (best) epoch marked; the right panel
shows the validation loss in each t bin at the first and the best epoch, which says
where in the noise range training helped and where the model is still weak.

Example:
    >>> from amtoolkit.training import plot_metrics
    >>> plot_metrics("runs/a-si/metrics.csv", "runs/a-si/loss.png")
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from amtoolkit.data._files import atomic_path

__all__ = ["LOSS_FIGURE", "plot_metrics"]

LOSS_FIGURE = "loss.png"
"""File name of the training-curve figure in a run's output folder."""

FEW_EPOCHS = 30
"""Runs of at most this many epochs get a marker on every epoch."""

_BIN = re.compile(r"^(train|val)_loss_t([0-9.]+)-([0-9.]+)$")


def plot_metrics(
    metrics: str | os.PathLike | Sequence[dict[str, float]],
    path: str | os.PathLike,
) -> Path:
    """Draw the training curves of a run into `path` (format by its ending).

    Args:
        metrics: a ``metrics.csv`` path, or its rows (``Trainer.history``).
        path: the figure to write (atomically).

    Returns:
        `path`.

    Raises:
        ValueError: no rows, or rows without a ``train_loss`` column.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    from amtoolkit.training.trainer import read_metrics

    rows = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    where = metrics if isinstance(metrics, (str, os.PathLike)) else "metrics"
    if not rows:
        raise ValueError(f"{where}: no training rows to plot (no epoch finished)")
    if "train_loss" not in rows[0]:
        raise ValueError(f"{where}: no train_loss column to plot")
    figure = Figure(figsize=(9.5, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    has_val = any(math.isfinite(row.get("val_loss", math.nan)) for row in rows)
    marker = "." if len(rows) <= FEW_EPOCHS else None  # a line of one point is invisible
    left.plot(epochs, [row["train_loss"] for row in rows], marker=marker, label="train")
    key = "val_loss" if has_val else "train_loss"
    if has_val:
        left.plot(epochs, [row["val_loss"] for row in rows], marker=marker, label="validation")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    best = min(rows, key=lambda row: _finite(row[key]))
    left.plot(best["epoch"], best[key], "o", mfc="none", color="k", label="exported")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend(frameon=False)
    prefix = "val" if has_val else "train"
    bins = sorted(
        (float(m.group(2)), float(m.group(3)), name)
        for name in rows[0]
        if (m := _BIN.match(name)) and m.group(1) == prefix
    )
    if bins:
        centres = [(lo + hi) / 2 for lo, hi, _ in bins]
        for row, label, style in ((rows[0], "first epoch", "--"), (best, "exported", "-")):
            right.plot(
                centres,
                [row.get(name, math.nan) for _, _, name in bins],
                style,
                marker="o",
                label=f"{label} ({int(row['epoch'])})",
            )
        right.set_xlabel("diffusion time t")
        right.set_ylabel(f"{'validation' if has_val else 'training'} loss in t bin")
        right.legend(frameon=False)
    else:
        right.set_axis_off()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    return Path(path)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf
