"""Vibrational density of states at the Gamma point of the simulation cell (phonopy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from amtoolkit.analysis._options import integer, interval, positive
from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare
from amtoolkit.analysis.energy import relax_structure

#: the broadened grid extends this many sigmas beyond the lowest and highest mode
GRID_MARGIN_SIGMAS = 5.0


@dataclasses.dataclass(frozen=True)
class VDOSResult(Result):
    """Gaussian-broadened vibrational density of states, averaged over a set.

    Attributes:
        frequency: frequency grid, THz, shape [nbins].
        dos: density of states normalised to unit area (sum dos * dfrequency = 1),
            1/THz, shape [nbins]; multiply by 3N for modes per THz.
        mode_frequencies: Gamma-point mode frequencies of each structure, THz, each
            of shape [3 * n_atoms]; imaginary modes are reported as negative numbers.
        sigma: Gaussian broadening (standard deviation), THz.
        per_structure: DOS of each structure on `frequency`, shape [n_structures, nbins].
    """

    frequency: np.ndarray
    dos: np.ndarray
    mode_frequencies: tuple[np.ndarray, ...]
    sigma: float
    per_structure: np.ndarray

    def plot(self, ax=None):
        """Plot the DOS against frequency; returns the matplotlib Axes."""
        ax = new_axes(ax)
        ax.plot(self.frequency, self.dos)
        ax.set_xlabel("Frequency (THz)")
        ax.set_ylabel("VDOS (1/THz)")
        return ax


def gamma_frequencies(
    atoms: Atoms,
    calculator: Calculator,
    *,
    displacement: float = 0.01,
    symprec: float = 1e-5,
    symmetrize: bool = True,
) -> np.ndarray:
    """Phonon frequencies at Gamma of the given cell by finite displacements.

    The cell itself is the phonopy unit cell, primitive cell and supercell (no
    reduction), so the 3N modes of the whole cell are returned, as needed for
    amorphous structures. Symmetry (spglib, `symprec`) only reduces the number of
    displaced cells; an amorphous (P1) cell of N atoms needs 6N force calls.

    Args:
        atoms: periodic structure, ideally relaxed.
        calculator: ASE calculator giving forces.
        displacement: atomic displacement amplitude, Å.
        symprec: symmetry tolerance passed to phonopy, Å.
        symmetrize: symmetrize the force constants (index permutation and acoustic
            sum rule) before diagonalising.

    Returns:
        Frequencies in THz, ascending, shape [3 * n_atoms]; imaginary ones negative.

    References:
        A. Togo, L. Chaput, T. Tadano, I. Tanaka, J. Phys.: Condens. Matter 35,
        353001 (2023) (phonopy finite-displacement method).
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unitcell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )
    phonon = Phonopy(
        unitcell,
        supercell_matrix=np.eye(3, dtype=int),
        primitive_matrix="P",
        symprec=symprec,
    )
    phonon.generate_displacements(distance=displacement)
    forces = []
    for cell in phonon.supercells_with_displacements:
        displaced = Atoms(
            numbers=atoms.numbers,
            cell=cell.cell,
            scaled_positions=cell.scaled_positions,
            masses=atoms.get_masses(),
            pbc=True,
        )
        displaced.calc = calculator
        forces.append(displaced.get_forces())  # [n_atoms, 3] eV/Å
    phonon.forces = np.array(forces)
    phonon.produce_force_constants(show_drift=False)
    if symmetrize:
        phonon.symmetrize_force_constants()
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    frequencies = phonon.qpoints.frequencies[0]  # [3 * n_atoms] THz
    return np.sort(np.asarray(frequencies, dtype=float))


def broadened_dos(mode_frequencies: np.ndarray, frequency: np.ndarray, sigma: float) -> np.ndarray:
    """Sum of unit-area Gaussians centred on the modes, divided by the number of modes.

    Args:
        mode_frequencies: mode frequencies, THz, shape [n_modes].
        frequency: grid, THz, shape [nbins].
        sigma: Gaussian standard deviation, THz.

    Returns:
        DOS on the grid, 1/THz, shape [nbins]; integrates to 1 over the real line.
    """
    sigma = positive("sigma", sigma, "width in THz")
    modes = np.asarray(mode_frequencies, dtype=float)
    z = (np.asarray(frequency, dtype=float)[:, None] - modes[None, :]) / sigma  # [nbins, n_modes]
    gauss = np.exp(-0.5 * z**2) / (sigma * np.sqrt(2.0 * np.pi))
    return gauss.sum(axis=1) / len(modes)


def check_options(
    displacement: float = 0.01,
    sigma: float = 0.2,
    nbins: int = 400,
    frequency_range: tuple[float, float] | None = None,
    fmax: float = 1e-3,
) -> None:
    """Check the options of :func:`vdos`; it calls this before its first force call.

    A P1 cell of N atoms takes 6N force calls, so a bad option must fail first; code that
    hands the options to `vdos` in other processes can call this before starting them.

    Raises:
        ValueError: naming the option and its value: displacement, sigma or fmax not a
            positive, finite number; nbins not an integer >= 2; frequency_range not
            None or finite (low, high) with low < high.
    """
    positive("displacement", displacement, "length in Å")
    positive("fmax", fmax, "force in eV/Å")
    _grid_options(sigma, nbins, frequency_range)


def _grid_options(
    sigma: float, nbins: int, frequency_range: tuple[float, float] | None
) -> tuple[float, int, tuple[float, float] | None]:
    """Checked ``(sigma, nbins, frequency_range)`` of the broadened frequency grid."""
    span = None
    if frequency_range is not None:
        span = interval("frequency_range", frequency_range, "frequencies in THz")
    return positive("sigma", sigma, "width in THz"), integer("nbins", nbins, 2), span


def vdos(
    structures: Atoms | Iterable[Atoms],
    calculator: Calculator,
    displacement: float = 0.01,
    sigma: float = 0.2,
    nbins: int = 400,
    frequency_range: tuple[float, float] | None = None,
    relax: bool = True,
    fmax: float = 1e-3,
    symmetrize: bool = True,
) -> VDOSResult:
    """Vibrational density of states of a structure (or set) from Gamma-point phonons.

    Ghost atoms are dropped; with `relax`, positions and cell are relaxed at zero
    pressure first (:func:`amtoolkit.analysis.energy.relax_structure`). The 3N
    Gamma frequencies of each cell (:func:`gamma_frequencies`) are broadened with
    Gaussians of width `sigma`; a set gives the mean of the per-structure DOS.

    Args:
        structures: one periodic Atoms or a sequence of them.
        calculator: ASE calculator giving forces (and stress if `relax`).
        displacement: finite-displacement amplitude, Å.
        sigma: Gaussian broadening, THz.
        nbins: number of grid points.
        frequency_range: (low, high) of the grid in THz; default spans all modes
            plus 5 sigma on either side.
        relax: relax positions and cell before computing phonons.
        fmax: force criterion of the relaxation, eV/Å.
        symmetrize: symmetrize force constants (acoustic sum rule) first.

    Returns:
        VDOSResult (frequency grid in THz, DOS normalised to unit area, mode frequencies).

    Raises:
        ValueError: an option out of range (:func:`check_options`), before any force call.
        StructureError: a structure that cannot be analysed.
    """
    check_options(displacement, sigma, nbins, frequency_range, fmax)
    frames = prepare(structures)
    modes = []
    for atoms in frames:
        if relax:
            atoms = relax_structure(atoms, calculator, fmax=fmax, cell=True)
        modes.append(
            gamma_frequencies(atoms, calculator, displacement=displacement, symmetrize=symmetrize)
        )
    return vdos_from_modes(modes, sigma=sigma, nbins=nbins, frequency_range=frequency_range)


def vdos_from_modes(
    modes: Sequence[np.ndarray],
    sigma: float = 0.2,
    nbins: int = 400,
    frequency_range: tuple[float, float] | None = None,
) -> VDOSResult:
    """Broadened, set-averaged DOS from the Gamma-point mode frequencies of each structure.

    Args:
        modes: mode frequencies of each structure, THz, each of shape [3 * n_atoms].
        sigma: Gaussian broadening, THz.
        nbins: number of grid points.
        frequency_range: (low, high) of the grid in THz; default spans all modes
            plus 5 sigma on either side.

    Returns:
        VDOSResult (the mean of the per-structure DOS, each normalised to unit area).

    Raises:
        ValueError: sigma, nbins or frequency_range out of range (:func:`check_options`).
    """
    sigma, nbins, span = _grid_options(sigma, nbins, frequency_range)
    modes = tuple(np.asarray(m, dtype=float) for m in modes)
    if span is None:
        every = np.concatenate(modes)
        low = min(0.0, float(every.min())) - GRID_MARGIN_SIGMAS * sigma
        high = float(every.max()) + GRID_MARGIN_SIGMAS * sigma
    else:
        low, high = span
    frequency = np.linspace(low, high, nbins)
    per_structure = np.array([broadened_dos(m, frequency, sigma) for m in modes])
    return VDOSResult(
        frequency=frequency,
        dos=per_structure.mean(axis=0),
        mode_frequencies=tuple(modes),
        sigma=float(sigma),
        per_structure=per_structure,
    )
