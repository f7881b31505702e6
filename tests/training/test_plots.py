"""Training curves drawn from metrics rows or a metrics.csv."""

from __future__ import annotations

import math

import pytest

from amtoolkit.training import plot_metrics, write_metrics


def _rows(n: int, validation: bool = True) -> list[dict[str, float]]:
    rows = []
    for epoch in range(1, n + 1):
        row = {"epoch": float(epoch), "train_loss": 1.0 / epoch}
        row["train_loss_t0.01-0.50"] = 1.2 / epoch
        row["train_loss_t0.50-0.99"] = 0.8 / epoch
        row["val_loss"] = 1.1 / epoch if validation else math.nan
        row["val_loss_t0.01-0.50"] = 1.3 / epoch if validation else math.nan
        row["val_loss_t0.50-0.99"] = math.nan  # a bin no validation system fell in
        rows.append(row)
    return rows


def test_curves_from_rows_and_from_the_csv(tmp_path):
    png = plot_metrics(_rows(5), tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = write_metrics(tmp_path / "metrics.csv", _rows(3, validation=False))
    pdf = plot_metrics(csv, tmp_path / "loss.pdf")  # the format follows the ending
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_no_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no training rows to plot"):
        plot_metrics([], tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()
    header_only = tmp_path / "metrics.csv"
    header_only.write_text("epoch,train_loss,val_loss\n")
    with pytest.raises(ValueError, match="metrics.csv: no training rows to plot"):
        plot_metrics(header_only, tmp_path / "loss.png")
