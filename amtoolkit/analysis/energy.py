"""Energy, density and pressure of structures after zero-pressure relaxation.

The relaxation of every analysis function in this package (energy, elastic) goes
through :func:`relax_structure`, which delegates to ``amtoolkit.potentials.relax``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import GPa

from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare
from amtoolkit.data.properties import AMU_PER_A3_TO_G_PER_CM3

#: grams per amu times cm^3 per Å^3 (1 amu/Å^3 = 1.66053906660 g/cm^3)


@dataclasses.dataclass(frozen=True)
class EnergyResult(Result):
    """Per-structure energies, densities and pressures (after relaxation if `relaxed`).

    Attributes:
        energy_per_atom: potential energy per atom, eV/atom, shape [n_structures].
        density: mass density, g/cm^3, shape [n_structures].
        pressure: hydrostatic pressure -trace(stress)/3, GPa, shape [n_structures].
        relaxed: True if positions and cell were relaxed to zero pressure first.
        n_atoms: number of real (non-ghost) atoms per structure, shape [n_structures].
        unconverged: per structure, 1 where the relaxation stopped short of `fmax`
            (its energy is then an upper bound), else 0, shape [n_structures];
            None where not recorded.
    """

    energy_per_atom: np.ndarray
    density: np.ndarray
    pressure: np.ndarray
    relaxed: bool
    n_atoms: np.ndarray
    unconverged: np.ndarray | None = None

    @property
    def mean_energy(self) -> float:
        """Mean energy per atom over the set (eV/atom)."""
        return float(np.mean(self.energy_per_atom))

    @property
    def std_energy(self) -> float:
        """Population standard deviation of the energy per atom over the set (eV/atom)."""
        return float(np.std(self.energy_per_atom))

    @property
    def mean_density(self) -> float:
        """Mean density over the set (g/cm^3)."""
        return float(np.mean(self.density))

    @property
    def std_density(self) -> float:
        """Population standard deviation of the density over the set (g/cm^3)."""
        return float(np.std(self.density))

    @property
    def mean_pressure(self) -> float:
        """Mean pressure over the set (GPa)."""
        return float(np.mean(self.pressure))

    @property
    def std_pressure(self) -> float:
        """Population standard deviation of the pressure over the set (GPa)."""
        return float(np.std(self.pressure))

    def plot(self, ax=None):
        """Energy per atom against density, one point per structure; returns the Axes."""
        ax = new_axes(ax)
        ax.plot(self.density, self.energy_per_atom, "o", color="C0", label="structures")
        low, high = float(np.min(self.density)), float(np.max(self.density))
        if high - low < 0.04:  # a few hundredths of a g/cm^3 at least: no axis of round-off
            middle = 0.5 * (low + high)  # every point inside, however they are spread
            ax.set_xlim(middle - 0.02, middle + 0.02)
        ax.set_xlabel("density (g/cm³)" + (", relaxed" if self.relaxed else ""))
        ax.set_ylabel("energy (eV/atom)")
        ax.ticklabel_format(useOffset=False)
        return ax

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("energy", "density", "pressure"):
            out[f"mean_{name}"] = getattr(self, f"mean_{name}")
            out[f"std_{name}"] = getattr(self, f"std_{name}")
        return out


def density(atoms: Atoms) -> float:
    """Mass density of a periodic structure in g/cm^3 (ghost atoms must be removed first)."""
    return float(np.sum(atoms.get_masses()) / atoms.get_volume() * AMU_PER_A3_TO_G_PER_CM3)


def pressure(atoms: Atoms) -> float:
    """Hydrostatic pressure -trace(sigma)/3 in GPa from the attached calculator's stress."""
    stress = atoms.get_stress(voigt=True)  # [6] eV/Å^3, ASE sign (tension positive)
    return float(-np.mean(stress[:3]) / GPa)


def relax_structure(
    atoms: Atoms, calculator: Calculator, *, fmax: float = 0.01, cell: bool = True
) -> Atoms:
    """Relax positions (and the cell to zero pressure if `cell`) and return a relaxed copy.

    The single relaxation entry point of the analysis package: it calls
    :func:`amtoolkit.potentials.relax` (LAMMPS minimiser for LAMMPS calculators,
    otherwise FIRE with a Frechet cell filter when `cell`; the result meets `fmax`).

    Args:
        atoms: structure to relax (not modified).
        calculator: ASE calculator giving energy, forces and (if `cell`) stress.
        fmax: force convergence criterion, eV/Å (also applied to the cell filter's
            virial components).
        cell: also relax the cell shape and volume at zero external pressure.

    Returns:
        A relaxed copy with `calculator` attached.
    """
    from amtoolkit.potentials import relax as relax_atoms

    relaxed = relax_atoms(atoms, calculator, fmax=fmax, cell=cell)
    relaxed.calc = calculator
    return relaxed


def stopped_short(relaxed: Atoms) -> int:
    """1 if `relaxed` comes from a relaxation that did not reach its force criterion
    (``info["relax_converged"]`` False, set by ``amtoolkit.potentials.relax``), else 0."""
    return int(relaxed.info.get("relax_converged", True) is False)


def _with_calculator(atoms: Atoms, calculator: Calculator) -> Atoms:
    out = atoms.copy()
    out.calc = calculator
    return out


def energy(
    structures: Atoms | Iterable[Atoms],
    calculator: Calculator,
    relax: bool = True,
    fmax: float = 0.01,
) -> EnergyResult:
    """Energy per atom, density and pressure of each structure, optionally after relaxation.

    Ghost atoms (Z = 0) are dropped first. With `relax`, positions and cell are relaxed
    at zero external pressure (:func:`relax_structure`) before measuring.

    Args:
        structures: one periodic Atoms or a sequence of them.
        calculator: ASE calculator (energy, forces, stress), e.g. from
            ``amtoolkit.potentials.get_calculator("sw-si")``.
        relax: relax positions and cell before measuring.
        fmax: force convergence criterion for the relaxation, eV/Å.

    Returns:
        EnergyResult with per-structure arrays (eV/atom, g/cm^3, GPa) and set means/sd.
    """
    frames = prepare(structures)
    energies, densities, pressures, counts, short = [], [], [], [], []
    for atoms in frames:
        if relax:
            measured = relax_structure(atoms, calculator, fmax=fmax, cell=True)
        else:
            measured = _with_calculator(atoms, calculator)
        short.append(stopped_short(measured) if relax else 0)
        energies.append(measured.get_potential_energy() / len(measured))
        densities.append(density(measured))
        pressures.append(pressure(measured))
        counts.append(len(measured))
    return EnergyResult(
        energy_per_atom=np.array(energies),
        density=np.array(densities),
        pressure=np.array(pressures),
        relaxed=bool(relax),
        n_atoms=np.array(counts, dtype=int),
        unconverged=np.array(short, dtype=int),
    )
