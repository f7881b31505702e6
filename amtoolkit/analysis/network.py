"""Network connectivity of oxide glasses: Q^n speciation and anion types.

A network former (Si in a-SiO2; `FORMERS`) bonded to n *bridging* anions (each bonded
to at least one other former) is a Q^n unit; an anion bonded to two formers bridges, to
one it is non-bridging (NBO), to none it is free, and to three or more over-coordinated
(a tricluster). Pure silica glass is nearly all Q^4 with bridging oxygens; a Q^3 unit
and its NBO mark a broken Si-O-Si link, the defect a melt-quench or a generated
structure most often carries. The connectivity <n> is the mean n of a former.

Bonds are former-anion pairs under the usual cutoff specification
(`amtoolkit.analysis.bonds`; the covalent rule bonds Si-O below 2.30 Å).

References:
    Q^n notation: E. Lippmaa et al., J. Am. Chem. Soc. 102, 4889 (1980); its use for
    simulated silicate glasses: e.g. A. Pedone, J. Phys. Chem. C 113, 20773 (2009).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare, species_of
from amtoolkit.analysis.bonds import Cutoffs, bonded_pairs
from amtoolkit.analysis.coordination import add_counts

__all__ = ["ANIONS", "ANION_TYPES", "FORMERS", "NetworkResult", "network", "network_formers"]

FORMERS = ("B", "Si", "P", "Ge", "As")
"""The network formers Q^n counts by default (Zachariasen's glass formers). Intermediates
such as Al, Ti or Zn, and modifiers, are not: an O they bond to does not bridge unless
it also bonds to a second former. Name others with ``formers=`` (e.g. Al in
aluminosilicates, where it sits in tetrahedra)."""

ANIONS = ("N", "O", "F", "S", "Cl")
"""Elements that can be the bridging anion."""

ANION_TYPES = ("free", "non-bridging", "bridging", "over-coordinated")
"""Anion types by the number of formers bonded to them: 0, 1, 2, 3 or more."""


@dataclasses.dataclass(frozen=True)
class NetworkResult(Result):
    """Q^n speciation of the network formers and types of the anion, pooled over a set.

    Attributes:
        anion: the bridging element (e.g. "O").
        qn: former -> n -> fraction of that former's atoms bonded to n bridging anions
            (fractions of one former sum to 1).
        connectivity: former -> mean n (network connectivity).
        anion_types: type (`ANION_TYPES`) -> fraction of the anions (they sum to 1).
        per_structure: one dict per structure: former -> mean n, and "bridging" ->
            fraction of the anions that bridge.
        modifiers: the other cations of the set (neither formers nor the anion), which
            do not bridge: Al of an aluminosilicate unless named among the formers.
    """

    anion: str
    qn: dict[str, dict[int, float]]
    connectivity: dict[str, float]
    anion_types: dict[str, float]
    per_structure: list[dict[str, float]]
    modifiers: list[str] = dataclasses.field(default_factory=list)

    def plot(self, ax=None):
        """Bar chart of the Q^n fractions per former; returns the Axes."""
        ax = new_axes(ax)
        width = 0.8 / max(len(self.qn), 1)
        for k, (former, fractions) in enumerate(self.qn.items()):
            ns = sorted(fractions)
            offset = (k - (len(self.qn) - 1) / 2) * width
            ax.bar(np.asarray(ns) + offset, [fractions[n] for n in ns], width=width, label=former)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"n (bridging {self.anion} per former): Q$^n$")
        ax.set_ylabel("fraction of formers")
        ax.legend(frameon=False)
        return ax


def network_formers(species: Sequence[str]) -> list[str]:
    """The default formers among `species`: those in `FORMERS`."""
    return [s for s in species if s in FORMERS]


def network(
    structures: Atoms | Iterable[Atoms],
    cutoffs: Cutoffs = None,
    formers: str | Sequence[str] | None = None,
    anion: str = "O",
) -> NetworkResult:
    """Q^n speciation of the formers and the anion types of a set of oxide structures.

    Args:
        structures: one Atoms or a sequence (periodic, ghosts ignored).
        cutoffs: bond cutoff specification (`amtoolkit.analysis.bonds`); only
            former-anion bonds count. Default: the covalent rule (Si-O < 2.30 Å).
        formers: the network formers (default: those of the set in `FORMERS`: B, Si, P,
            Ge, As).
        anion: the bridging element (one of `ANIONS`).

    Returns:
        NetworkResult (``qn``, ``connectivity``, ``anion_types``, ``per_structure``).

    Raises:
        StructureError: non-periodic cell, zero volume, non-finite positions.
        ValueError: a frame without the anion (a set mixing oxides with other
            structures would count their formers as Q^0), an anion that is not one,
            a former not in the set, or no former.
    """
    frames = prepare(structures)
    species = species_of(frames)
    if anion not in ANIONS:
        raise ValueError(f"anion {anion!r} is not one of {', '.join(ANIONS)}")
    for k, atoms in enumerate(frames):
        if not np.any(atoms.numbers == atomic_numbers[anion]):
            where = f"frame {k} has" if len(frames) > 1 else "the structure has"
            raise ValueError(
                f"{where} no {anion} atoms (elements {', '.join(species_of([atoms]))}): Q^n "
                f"speciation is for {anion}-bridged networks"
            )
    formers = network_formers(species) if formers is None else formers
    formers = [formers] if isinstance(formers, str) else list(formers)
    if not formers:
        raise ValueError(
            f"no network former ({', '.join(FORMERS)}) in the structures (elements "
            f"{', '.join(species)}); name the formers, e.g. formers=['Al']"
        )
    missing = [f for f in formers if f not in species or f == anion]
    if missing:
        raise ValueError(
            f"formers {missing} are not cations of the structures (elements "
            f"{', '.join(species)}, anion {anion})"
        )
    anion_z = atomic_numbers[anion]
    former_z = np.array([atomic_numbers[f] for f in formers])
    qn_counts = {f: np.zeros(0, dtype=np.int64) for f in formers}
    type_counts = np.zeros(len(ANION_TYPES), dtype=np.int64)
    per_structure = []
    for atoms in frames:
        n_bridging, bridges = _bridging_counts(atoms, cutoffs, former_z, anion_z)
        type_counts += np.bincount(np.minimum(bridges, 3), minlength=4)
        means: dict[str, float] = {}
        for f in formers:
            n_f = n_bridging[atoms.numbers == atomic_numbers[f]]
            if len(n_f):
                means[f] = float(n_f.mean())
                qn_counts[f] = add_counts(qn_counts[f], np.bincount(n_f))
        means["bridging"] = float(np.mean(bridges == 2)) if len(bridges) else float("nan")
        per_structure.append(means)
    qn = {}
    connectivity = {}
    for f, counts in qn_counts.items():
        total = counts.sum()
        qn[f] = {int(n): float(counts[n] / total) for n in np.flatnonzero(counts)}
        connectivity[f] = float(np.dot(np.arange(len(counts)), counts) / total)
    anion_types = {
        name: float(c / type_counts.sum()) for name, c in zip(ANION_TYPES, type_counts, strict=True)
    }
    return NetworkResult(
        anion=anion,
        qn=qn,
        connectivity=connectivity,
        anion_types=anion_types,
        per_structure=per_structure,
        modifiers=[s for s in species if s not in formers and s != anion],
    )


def _bridging_counts(
    atoms: Atoms, cutoffs: Cutoffs, former_z: np.ndarray, anion_z: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per atom, the number of bridging anions bonded to it [n_atoms]; per anion, the
    number of formers bonded to it [n_anions]."""
    i, j = bonded_pairs(atoms, cutoffs, "ij")
    numbers = atoms.numbers
    link = np.isin(numbers[i], former_z) & (numbers[j] == anion_z)
    i, j = i[link], j[link]  # former i bonded to anion j
    formers_of = np.bincount(j, minlength=len(atoms))
    bridging = formers_of[j] >= 2
    n_bridging = np.bincount(i[bridging], minlength=len(atoms))
    return n_bridging, formers_of[numbers == anion_z]
