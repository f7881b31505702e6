"""Exceptions that name what is wrong with a user's input."""

from __future__ import annotations


class StructureError(ValueError):
    """A structure cannot be analysed: bad cell, non-finite positions, missing periodicity.

    The message names the problem in one line (and the frame, when known).
    """


class CoverageError(ValueError):
    """An element is not covered by a classical potential."""
