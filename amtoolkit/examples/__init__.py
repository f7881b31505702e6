"""Small example structures shipped with amtoolkit.

    >>> from amtoolkit import examples
    >>> examples.path("a-si")          # Path to the extxyz file
    >>> examples.load("a-si")          # list[Atoms]

On the command line an example is named ``example:NAME``::

    amtool analyze example:a-si --rings --adf

How each file was made is in ``amtoolkit/examples/README.md``.
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

__all__ = ["EXAMPLES", "load", "names", "path"]

_HERE = Path(__file__).resolve().parent

#: example name -> file in this folder
EXAMPLES = {
    "a-si": "a-si-216.extxyz",
}


def names() -> list[str]:
    """Names of the shipped examples."""
    return sorted(EXAMPLES)


def path(name: str) -> Path:
    """Path of the shipped example `name` (see `names()`).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return _HERE / EXAMPLES[name]
    except KeyError:
        raise ValueError(f"unknown example {name!r}; known: {', '.join(names())}") from None


def load(name: str) -> list[Atoms]:
    """The frames of the shipped example `name`."""
    from amtoolkit.io import read_structures

    return read_structures(path(name))
