"""Bond definitions shared by coordination, ADF and ring statistics.

A *cutoff specification* says which atom pairs are bonded (neighbours):

- ``None``: the covalent rule ``d < 1.3 (r_cov,i + r_cov,j)`` with
  ``ase.data.covalent_radii`` (Si-O < 2.30 Å, Si-Si < 2.89 Å). In oxides (structures
  that contain O) only cation-anion pairs bond under this rule, the anions being O and
  the N, F and Cl of oxynitride and oxyfluoride glasses (`OXIDE_ANIONS`): cation-cation
  and anion-anion contacts are not bonds there (the Si-Si distance of edge-sharing
  tetrahedra, ~2.4-2.9 Å, would otherwise count as Si-Si bonds);
- a float ``r``: every pair with ``d < r`` (Å);
- a mapping ``{("Si", "O"): 2.3, ("O", "O"): 3.0}`` (symmetric; ``"Si-O"`` string keys
  are accepted too): only the listed element pairs bond, each with its own cutoff.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from amtoolkit.analysis.neighbors import neighbor_list

COVALENT_FACTOR = 1.3
"""Bond when d < COVALENT_FACTOR * (r_cov,i + r_cov,j); docs/analysis.md, *Cutoffs and
coordination*."""

OXYGEN = atomic_numbers["O"]

OXIDE_ANIONS = tuple(atomic_numbers[s] for s in ("N", "O", "F", "Cl"))
"""Atomic numbers of the anions of the covalent rule in oxides: O, and N, F, Cl as they
sit in oxynitride and oxyfluoride glasses (bonded to the cations, not to O)."""

Cutoffs = float | Mapping[tuple[str, str] | str, float] | None


def _pair_key(key: tuple[str, str] | str) -> tuple[str, str]:
    if isinstance(key, str):
        parts = key.split("-")
        if len(parts) != 2:
            raise ValueError(f"cutoff key {key!r} is not an element pair like 'Si-O'")
        return parts[0], parts[1]
    if len(key) != 2:
        raise ValueError(f"cutoff key {key!r} is not an element pair like ('Si', 'O')")
    return str(key[0]), str(key[1])


def _number(symbol: str) -> int:
    if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
        raise ValueError(f"unknown element {symbol!r} in cutoff specification")
    return atomic_numbers[symbol]


def cutoff_table(cutoffs: Cutoffs, numbers: np.ndarray) -> np.ndarray:
    """Pair-cutoff lookup table indexed by atomic numbers.

    Args:
        cutoffs: cutoff specification (see module docstring), Å.
        numbers: atomic numbers present (any shape); sizes the table.

    Returns:
        ``table[Z_i, Z_j]`` in Å, shape ``[max(Z) + 1, max(Z) + 1]``, symmetric; 0 means
        the pair never bonds.
    """
    zmax = int(np.max(numbers)) if np.size(numbers) else 0
    if isinstance(cutoffs, Mapping):
        keys = [(_number(a), _number(b), float(r)) for a, b, r in _items(cutoffs)]
        zmax = max([zmax] + [max(za, zb) for za, zb, _ in keys])
        table = np.zeros((zmax + 1, zmax + 1))
        seen: dict[tuple[int, int], float] = {}
        for za, zb, r in keys:
            if not np.isfinite(r) or r < 0:
                raise ValueError(
                    f"cutoff for {chemical_symbols[za]}-{chemical_symbols[zb]} must be a "
                    f"finite non-negative distance, got {r}"
                )
            pair = (min(za, zb), max(za, zb))
            if pair in seen and seen[pair] != r:
                raise ValueError(
                    f"conflicting cutoffs for {chemical_symbols[za]}-{chemical_symbols[zb]}: "
                    f"{seen[pair]} and {r}"
                )
            seen[pair] = r
            table[za, zb] = table[zb, za] = r
        return table
    if cutoffs is None:
        radii = np.asarray(covalent_radii[: zmax + 1], dtype=float)
        table = COVALENT_FACTOR * (radii[:, None] + radii[None, :])
        if OXYGEN in np.asarray(numbers) and zmax >= OXYGEN:
            anion = np.isin(np.arange(zmax + 1), OXIDE_ANIONS)
            table[anion[:, None] == anion[None, :]] = 0.0  # cation-cation, anion-anion
        return table
    r = float(cutoffs)
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"cutoff must be a positive distance in Å, got {cutoffs!r}")
    return np.full((zmax + 1, zmax + 1), r)


def _items(cutoffs: Mapping) -> list[tuple[str, str, float]]:
    out = []
    for key, r in cutoffs.items():
        a, b = _pair_key(key)
        out.append((a, b, r))
    return out


def _warn_no_named_pair(cutoffs: Mapping, numbers: np.ndarray) -> None:
    """Warn when a cutoff mapping names no pair the structure has: nothing can bond."""
    present = {chemical_symbols[z] for z in np.unique(numbers)}
    named = [(a, b) for a, b, r in _items(cutoffs) if float(r) > 0]
    if named and not any(a in present and b in present for a, b in named):
        pairs = ", ".join(f"{a}-{b}" for a, b in named)
        warnings.warn(
            f"the cutoffs name {pairs}, but the structure holds only "
            f"{', '.join(sorted(present)) or 'no atoms'}: no atom is bonded",
            stacklevel=3,
        )


def bonded_pairs(atoms: Atoms, cutoffs: Cutoffs, quantities: str = "ijd") -> tuple[np.ndarray, ...]:
    """Full list of bonded pairs (i-j and j-i) under a cutoff specification.

    Pairs are kept when ``d < cutoff(Z_i, Z_j)``; the list is sorted by ``i`` (stable).

    Args:
        atoms: periodic structure (ghost atoms should already be removed).
        cutoffs: cutoff specification (see module docstring), Å.
        quantities: any of "i", "j", "S", "d", "D" as in ``neighbor_list``.

    Returns:
        One array per requested quantity, in order; ``i``/``j`` as ``np.intp``.
    """
    numbers = atoms.numbers
    table = cutoff_table(cutoffs, numbers)
    present = np.unique(numbers)
    rmax = float(table[np.ix_(present, present)].max()) if len(present) else 0.0
    if rmax <= 0:
        if isinstance(cutoffs, Mapping):
            _warn_no_named_pair(cutoffs, numbers)
        empty = {"i": np.zeros(0, np.intp), "j": np.zeros(0, np.intp), "d": np.zeros(0)}
        empty |= {"S": np.zeros((0, 3), int), "D": np.zeros((0, 3))}
        return tuple(empty[q] for q in quantities)
    if isinstance(cutoffs, Mapping) or cutoffs is None:
        need = "ijd" + "".join(q for q in quantities if q not in "ijd")
        arrays = dict(zip(need, neighbor_list(atoms, rmax, need), strict=True))
        i = arrays["i"].astype(np.intp)
        j = arrays["j"].astype(np.intp)
        keep = arrays["d"] < table[numbers[i], numbers[j]]
        arrays["i"], arrays["j"] = i, j
    else:  # one cutoff for every pair: no per-pair lookup
        need = "id" + "".join(q for q in quantities if q not in "id")
        arrays = dict(zip(need, neighbor_list(atoms, rmax, need), strict=True))
        arrays["i"] = arrays["i"].astype(np.intp)
        if "j" in arrays:
            arrays["j"] = arrays["j"].astype(np.intp)
        keep = arrays["d"] < rmax
    index = np.flatnonzero(keep)
    centers = arrays["i"][index]
    if len(atoms) <= np.iinfo(np.uint16).max:
        centers = centers.astype(np.uint16)  # numpy sorts 16-bit keys by radix sort, O(n)
    index = index[np.argsort(centers, kind="stable")]
    return tuple(np.take(arrays[q], index, axis=0) for q in quantities)
