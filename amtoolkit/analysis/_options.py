"""Checks of the numeric options of the analysis functions, made before any work is done.

Each check raises a one-line ValueError that names the option and the value it got.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np


def shown(value: Any) -> str:
    """`value` as a message shows it: strings quoted, numpy scalars as plain numbers and
    strings (``3``, ``'x'``, not ``np.int64(3)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, (str, bytes)) else str(value)


def listed(items: Sequence[Any], limit: int = 10) -> str:
    """The first `limit` of `items`, comma-separated, ``...`` after them when there are
    more (frame or sample indices in a message)."""
    text = ", ".join(str(item) for item in items[:limit])
    return text + (", ..." if len(items) > limit else "")


def nearest(key: str, names: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The name of `names` closest to a misspelt `key` (difflib), or None."""
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=cutoff)
    return close[0] if close else None


def keyword_names(function: Callable[..., Any], keyword_only: bool = False) -> tuple[str, ...]:
    """The named parameters of `function`: not ``self``, ``*args`` or ``**kwargs``, nor
    private ones (``_stacklevel``); with `keyword_only`, only those after ``*``."""
    kinds = (
        (inspect.Parameter.KEYWORD_ONLY,)
        if keyword_only
        else (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    return tuple(
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in kinds and p.name != "self" and not p.name.startswith("_")
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)  # numpy numbers are Real


def positive(name: str, value: Any, what: str = "number") -> float:
    """`value` as a float when it is a finite real number > 0.

    Args:
        name: the option, as the caller spells it.
        value: what the caller passed.
        what: what the number is, with its unit (``"length in Å"``), for the message.

    Raises:
        ValueError: a non-number (string, bool, None), NaN, an infinity, or a value <= 0.
    """
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite {what}, got {shown(value)}")
    return float(value)


def integer(name: str, value: Any, minimum: int) -> int:
    """`value` as an int when it is an integer (not a bool or a float) >= `minimum`.

    Raises:
        ValueError: naming `name` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {shown(value)}")
    return int(value)


def interval(name: str, value: Any, what: str = "numbers") -> tuple[float, float]:
    """`value` as ``(low, high)`` floats when it is a pair of finite reals with low < high.

    Raises:
        ValueError: naming `name` and the value.
    """
    pair = () if isinstance(value, (str, bytes)) else value
    try:
        low, high = pair
    except (TypeError, ValueError):
        low = high = None
    finite = _is_real(low) and _is_real(high) and math.isfinite(low) and math.isfinite(high)
    if not (finite and low < high):
        raise ValueError(
            f"{name} must be (low, high), finite {what} with low < high, got {shown(value)}"
        )
    return float(low), float(high)
