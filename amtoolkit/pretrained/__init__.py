"""Shipped (pretrained) models: ``<name>.pt`` weights + ``<name>.json`` model card here.

A shipped model is an ordinary checkpoint (`amtoolkit.checkpoint`) whose two files sit
in this folder with the model's name as stem (``a-sio2.pt`` + ``a-sio2.json``), plus an
optional human-readable model card ``<name>.md``. `available()` lists the names,
`checkpoint_stem(name)` gives the stem to pass to `amtoolkit.checkpoint.load_checkpoint`;
users call ``Generator.from_pretrained(name)``.

Example:
    >>> from amtoolkit import pretrained
    >>> pretrained.available()            # e.g. ['a-si', 'a-sio2']
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from amtoolkit.checkpoint import FORMAT as CARD_FORMAT
from amtoolkit.checkpoint import (
    INFO_SUFFIX,
    WEIGHTS_SUFFIX,
    ModelInfo,
    card_hint,
    checkpoint_paths,
    read_info,
)

__all__ = [
    "PRETRAINED_DIR",
    "UnknownModelError",
    "available",
    "checkpoint_stem",
    "model_info",
    "resolve",
]

PRETRAINED_DIR = Path(__file__).resolve().parent
"""Folder holding the shipped checkpoints."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A model name: no path separators, no leading dot."""


class UnknownModelError(ValueError):
    """No shipped model has this name; the message lists the available ones."""


def available() -> list[str]:
    """Names of the shipped models (both ``<name>.pt`` and ``<name>.json`` present), sorted."""
    names = []
    for card in PRETRAINED_DIR.glob(f"*{INFO_SUFFIX}"):
        stem = card.name[: -len(INFO_SUFFIX)]
        if _NAME.match(stem) and (PRETRAINED_DIR / f"{stem}{WEIGHTS_SUFFIX}").is_file():
            names.append(stem)
    return sorted(names)


def checkpoint_stem(name: str) -> Path:
    """Checkpoint stem (``PRETRAINED_DIR / name``) of the shipped model `name`.

    Raises:
        UnknownModelError: `name` is not shipped; the message lists what is.
    """
    names = available()
    if not isinstance(name, str) or not _NAME.match(name) or name not in names:
        shipped = ", ".join(names) if names else "none yet"
        raise UnknownModelError(f"no shipped model named {name!r}; available: {shipped}")
    return PRETRAINED_DIR / name


def model_info(name: str) -> ModelInfo:
    """Model card (`ModelInfo`) of the shipped model `name`, without loading its weights."""
    return read_info(checkpoint_stem(name))


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint stem of `name_or_path`: a checkpoint (stem, ``.pt`` or ``.json``) if
    either file exists, else the shipped model of that name. A shipped model's bare name
    (``"a-si"``) stays the shipped model when the files of that name in the working folder
    are not a whole checkpoint (an ``a-si.json`` written by ``amtool analyze --json``).

    Raises:
        ValueError: neither; the message names the missing card and lists the shipped models.
    """
    text = str(name_or_path)
    if not text.strip() or Path(text).name in ("", ".", ".."):
        shipped = ", ".join(available()) or "none yet"
        raise ValueError(
            f"{text!r} names no model: give a shipped model ({shipped}) or a checkpoint path"
        )
    weights, card = checkpoint_paths(name_or_path)
    if text in available() and not _is_checkpoint(weights, card):
        return checkpoint_stem(text)
    if weights.is_file() or card.is_file():
        return card.with_suffix("")
    shipped = ", ".join(available()) or "none yet"
    raise ValueError(
        f"{text!r} is neither a checkpoint ({card} not found) nor a shipped model "
        f"(available: {shipped}){card_hint(name_or_path)}"
    )


def _is_checkpoint(weights: Path, card: Path) -> bool:
    """Whether `weights` and `card` both exist and the card says it is a model card."""
    if not (weights.is_file() and card.is_file()):
        return False
    try:
        return json.loads(card.read_text(encoding="utf-8")).get("format") == CARD_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
