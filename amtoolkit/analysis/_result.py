"""Base class for analysis results: frozen dataclasses that serialise to plain JSON types."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Convert numpy arrays/scalars, tuples-as-keys and nested containers to JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


def _key(k: Any) -> str:
    if isinstance(k, tuple):
        return "-".join(str(x) for x in k)
    return str(k)


@dataclasses.dataclass(frozen=True)
class Result:
    """A frozen analysis result. Subclasses add fields; `to_dict()` gives JSON-ready data."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def new_axes(ax=None):
    """Return `ax`, or a fresh matplotlib Axes on a new figure when `ax` is None."""
    if ax is not None:
        return ax
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(4.5, 3.4))
    return ax


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
