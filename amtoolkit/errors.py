"""Exceptions that name what is wrong with a user's input."""

from __future__ import annotations

import os
import sys


class StructureError(ValueError):
    """A structure cannot be analysed: bad cell, non-finite positions, missing periodicity.

    The message names the problem in one line (and the frame, when known).
    """


class CoverageError(ValueError):
    """An element is not covered by a classical potential."""


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller of this function point
    at the first frame outside amtoolkit and ASE: the user's line (``refine(...)``, a
    ``for`` over its results, ``atoms.get_forces()``), not the package's plumbing."""
    import ase

    inside = tuple(os.path.dirname(f) + os.sep for f in (ase.__file__, __file__))
    frame, level = sys._getframe(1), 1  # level 1: the function that warns
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level
