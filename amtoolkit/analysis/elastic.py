"""Relaxed-ion elastic constants, and isotropic moduli.

Two routes, both from finite differences of forces and stress of any ASE calculator:

- "strain": stress-strain fits with an ionic relaxation at every strain
  (:func:`stiffness`, matscipy style);
- "hessian": the harmonic (Lutsko) route at one relaxed structure,
  C = C_affine - (1/V) Xi^T H^+ Xi (:func:`stiffness_harmonic`), no relaxation under strain.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import GPa

from amtoolkit.analysis._result import Result, new_axes
from amtoolkit.analysis._structures import prepare
from amtoolkit.analysis.energy import relax_structure, stopped_short

#: Voigt indices of the normal (xx, yy, zz) and shear (yz, xz, xy) components
NORMAL = (0, 1, 2)
SHEAR = (3, 4, 5)
#: Cartesian index pairs of the Voigt components, order xx yy zz yz xz xy
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
#: elastic() methods
METHODS = ("strain", "hessian")
#: default strain increment per method ("strain": fit increment; "hessian": +-strain)
DEFAULT_DELTA = {"strain": 0.005, "hessian": 1e-4}
#: largest residual force (eV/Å) before stiffness_harmonic warns that the structure is
#: not at a minimum (the harmonic expansion is about a stationary point)
MINIMUM_FORCE_TOL = 0.05
#: largest relative asymmetry max|H - H^T| / max|H| of the finite-difference Hessian
#: before stiffness_harmonic warns that the energy surface is not smooth on the scale of
#: the displacement (smooth potentials give ~1e-6: 216-atom SW a-Si at 1e-3 Å)
HESSIAN_ASYMMETRY_TOL = 1e-3


MODULI = ("bulk_modulus", "shear_modulus", "youngs_modulus", "poisson_ratio")
"""Names of the isotropic moduli, as in ElasticResult and the dataset property keys."""


@dataclasses.dataclass(frozen=True)
class ElasticResult(Result):
    """Elastic constants of a set of structures and their isotropic averages.

    Attributes:
        C: mean 6x6 stiffness matrix over the set, Voigt order (xx yy zz yz xz xy), GPa.
        C_per_structure: stiffness per structure, GPa, shape [n_structures, 6, 6].
        C_error: uncertainty of each C_ij, GPa, shape [n_structures, 6, 6]: the
            regression standard error ("strain") or |C_ij - C_ji|/2 ("hessian").
        bulk_modulus: K = (C11 + 2 C12)/3 per structure, GPa, shape [n_structures].
        shear_modulus: G = C44 per structure, GPa, shape [n_structures].
        youngs_modulus: E = (C11 - C12)(C11 + 2 C12)/(C11 + C12) per structure, GPa.
        poisson_ratio: nu = E/(2G) - 1 per structure (dimensionless).
        residual: per structure, GPa, shape [n_structures]. "strain": root-mean-square
            deviation of the measured stresses from the fitted linear law
            sigma = sigma0 + C eps. "hessian": root-mean-square asymmetry
            (C_ij - C_ji)/2 over the 15 pairs i < j (finite-difference error and
            residual stress; an exact C at zero stress is symmetric).
        relaxed: positions and cell were relaxed to zero pressure before straining.
        relaxed_ions: relaxed-ion constants (False: clamped-ion).
        delta: strain increment: of the fit ("strain") or of the central differences
            ("hessian").
        n_steps: strains per strain pattern (6 patterns; 2 for "hessian": +-delta).
        method: "strain" (relaxation at every strain) or "hessian" (Lutsko route).
        n_negative_modes: "hessian" with relaxed ions: negative Hessian eigenvalues per
            structure (0 at a minimum), shape [n_structures]; otherwise None.
        displacement: "hessian" with relaxed ions: atomic displacement of the
            finite-difference Hessian, Å; otherwise None.
        unconverged: per structure, the number of its relaxations (zero-pressure and
            strained) that stopped short of `fmax`, shape [n_structures]; None where
            not recorded.
        fmax: force criterion of the relaxations, eV/Å (None where nothing was relaxed,
            or not recorded). Relaxed-ion constants need the ions relaxed far below
            the forces the strains put on them: a loose `fmax` leaves them between
            clamped- and relaxed-ion values (docs/analysis.md).
    """

    C: np.ndarray
    C_per_structure: np.ndarray
    C_error: np.ndarray
    bulk_modulus: np.ndarray
    shear_modulus: np.ndarray
    youngs_modulus: np.ndarray
    poisson_ratio: np.ndarray
    residual: np.ndarray
    relaxed: bool
    relaxed_ions: bool
    delta: float
    n_steps: int
    method: str = "strain"
    n_negative_modes: np.ndarray | None = None
    displacement: float | None = None
    unconverged: np.ndarray | None = None
    fmax: float | None = None

    @property
    def min_eigenvalue(self) -> np.ndarray:
        """Smallest eigenvalue of each structure's symmetrised stiffness matrix, GPa,
        shape [n_structures]: positive for a mechanically stable structure (Born)."""
        sym = 0.5 * (self.C_per_structure + np.swapaxes(self.C_per_structure, 1, 2))
        return np.linalg.eigvalsh(sym)[:, 0]

    @property
    def unstable(self) -> np.ndarray:
        """Per structure, whether its stiffness matrix has a non-positive eigenvalue: not
        a stable solid as measured (yielded under the strains, or not at a minimum), so
        its moduli are no material values."""
        return self.min_eigenvalue <= 0.0

    @property
    def mean_bulk_modulus(self) -> float:
        """Mean bulk modulus over the set (GPa)."""
        return float(np.mean(self.bulk_modulus))

    @property
    def mean_shear_modulus(self) -> float:
        """Mean shear modulus over the set (GPa)."""
        return float(np.mean(self.shear_modulus))

    @property
    def mean_youngs_modulus(self) -> float:
        """Mean Young's modulus over the set (GPa)."""
        return float(np.mean(self.youngs_modulus))

    @property
    def mean_poisson_ratio(self) -> float:
        """Mean Poisson ratio over the set."""
        return float(np.mean(self.poisson_ratio))

    @property
    def hill(self) -> dict[str, np.ndarray]:
        """Voigt-Reuss-Hill moduli per structure (:func:`hill_moduli`): bulk_modulus,
        shear_modulus, youngs_modulus (GPa) and poisson_ratio, each shape [n_structures]."""
        per_structure = [hill_moduli(C) for C in self.C_per_structure]
        return {name: np.array([m[name] for m in per_structure]) for name in MODULI}

    def plot(self, ax=None):
        """Bulk, shear and Young's modulus of each structure (points) and their means
        (bars); returns the Axes."""
        ax = new_axes(ax)
        names = ("bulk_modulus", "shear_modulus", "youngs_modulus")
        for k, name in enumerate(names):
            values = getattr(self, name)
            ax.bar(k, float(np.mean(values)), width=0.6, color="C0", alpha=0.35)
            spread = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.plot(k + np.asarray(spread), values, "o", color="C0", ms=4)
        ax.set_xticks(range(len(names)), ["K", "G", "E"])
        ax.set_ylabel("modulus (GPa)")
        return ax

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in MODULI:
            out[f"mean_{name}"] = getattr(self, f"mean_{name}")
        out["hill"] = {name: values.tolist() for name, values in self.hill.items()}
        return out


def cubic_averages(C: np.ndarray) -> tuple[float, float, float]:
    """Average a 6x6 stiffness matrix to the three cubic/isotropic constants.

    C11 = mean of the 3 normal diagonal terms, C12 = mean of the 6 normal off-diagonal
    terms, C44 = mean of the 3 shear diagonal terms.

    Args:
        C: stiffness matrix, shape [6, 6], Voigt order (any consistent unit).

    Returns:
        (C11, C12, C44) in the unit of `C`.
    """
    C = _check_stiffness(C)
    normal = C[:3, :3]
    c11 = float(np.mean(np.diag(normal)))
    c12 = float(np.mean(normal[~np.eye(3, dtype=bool)]))
    c44 = float(np.mean(np.diag(C)[3:]))
    return c11, c12, c44


def isotropic_moduli(C: np.ndarray) -> dict[str, float]:
    """Isotropic bulk, shear and Young's moduli and Poisson ratio of a stiffness matrix.

    With C11, C12, C44 from :func:`cubic_averages`: K = (C11 + 2 C12)/3, G = C44,
    E = (C11 - C12)(C11 + 2 C12)/(C11 + C12), nu = E/(2G) - 1. For an isotropic C
    (C44 = (C11 - C12)/2) these are the exact isotropic moduli.

    Args:
        C: stiffness matrix, shape [6, 6], GPa, Voigt order (xx yy zz yz xz xy).

    Returns:
        dict with bulk_modulus, shear_modulus, youngs_modulus (GPa) and poisson_ratio;
        a modulus whose formula divides by zero (C11 + C12 = 0 or G = 0, e.g. atoms that
        do not interact) is NaN.

    References:
        J. F. Nye, Physical Properties of Crystals (1985), ch. VIII (isotropic stiffness).
    """
    c11, c12, c44 = cubic_averages(C)
    bulk = (c11 + 2.0 * c12) / 3.0
    shear = c44
    youngs = _ratio((c11 - c12) * (c11 + 2.0 * c12), c11 + c12)
    return {
        "bulk_modulus": bulk,
        "shear_modulus": shear,
        "youngs_modulus": youngs,
        "poisson_ratio": _ratio(youngs, 2.0 * shear) - 1.0,
    }


def hill_moduli(C: np.ndarray) -> dict[str, float]:
    """Voigt-Reuss-Hill isotropic moduli of any stiffness matrix.

    Voigt (uniform strain) and Reuss (uniform stress, from S = C^-1) bounds of the bulk
    and shear moduli, averaged (Hill): with A = C11 + C22 + C33, B = C12 + C13 + C23,
    D = C44 + C55 + C66 and a, b, d the same sums of S,

        K_V = (A + 2B)/9,          G_V = (A - B + 3D)/15,
        K_R = 1/(a + 2b),          G_R = 15/(4a - 4b + 3d),
        K = (K_V + K_R)/2,  G = (G_V + G_R)/2,
        E = 9KG/(3K + G),   nu = (3K - 2G)/(2(3K + G)).

    Unlike :func:`isotropic_moduli` (G = C44 alone), every component counts and E and nu
    follow from the same K and G, so nu stays in (-1, 0.5) for any stable C. For an
    isotropic C both give the same moduli.

    Args:
        C: stiffness matrix, shape [6, 6], GPa, Voigt order (xx yy zz yz xz xy).

    Returns:
        dict with bulk_modulus, shear_modulus, youngs_modulus (GPa) and poisson_ratio;
        all NaN when C is singular.

    Raises:
        ValueError: C is not 6x6 or holds NaN or inf.

    References:
        R. Hill, Proc. Phys. Soc. A 65, 349 (1952).
    """
    C = _check_stiffness(C)
    if abs(np.linalg.det(C)) < 1e-12 * max(1.0, float(np.abs(C).max())) ** 6:
        return dict.fromkeys(MODULI, float("nan"))
    S = np.linalg.inv(C)

    def sums(M: np.ndarray) -> tuple[float, float, float]:
        return (
            float(M[0, 0] + M[1, 1] + M[2, 2]),
            float(M[0, 1] + M[0, 2] + M[1, 2]),
            float(M[3, 3] + M[4, 4] + M[5, 5]),
        )

    (A, B, D), (a, b, d) = sums(C), sums(S)
    bulk = 0.5 * ((A + 2.0 * B) / 9.0 + _ratio(1.0, a + 2.0 * b))
    shear = 0.5 * ((A - B + 3.0 * D) / 15.0 + _ratio(15.0, 4.0 * a - 4.0 * b + 3.0 * d))
    return {
        "bulk_modulus": bulk,
        "shear_modulus": shear,
        "youngs_modulus": _ratio(9.0 * bulk * shear, 3.0 * bulk + shear),
        "poisson_ratio": _ratio(3.0 * bulk - 2.0 * shear, 2.0 * (3.0 * bulk + shear)),
    }


def _ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero."""
    return float(a) / float(b) if b != 0 else float("nan")


def stiffness(
    atoms: Atoms,
    calculator: Calculator,
    *,
    delta: float = 0.005,
    n_steps: int = 5,
    relax_ions: bool = True,
    fmax: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit the full 6x6 stiffness of one (already relaxed) structure from stress-strain data.

    Each of the 6 Voigt strain components is applied alone at `n_steps` values
    delta * (step + 1 - (n_steps + 1)/2) (engineering shear strains); at each strain
    the ions are relaxed (if `relax_ions`) and the stress is fitted linearly.

    Args:
        atoms: relaxed periodic structure (no constraints).
        calculator: ASE calculator giving forces and stress.
        delta: strain increment (dimensionless).
        n_steps: strains per pattern (>= 2; odd values include the unstrained cell).
        relax_ions: relax positions at fixed strained cell (relaxed-ion constants).
        fmax: force criterion for the ion relaxation, eV/Å.

    Returns:
        (C, C_error, residual): stiffness [6, 6] GPa, its regression standard error
        [6, 6] GPa, and the RMS stress residual of the linear fit, GPa.

    References:
        matscipy.elasticity.fit_elastic_constants (stress-strain linear regression).
    """
    C, C_err, residual, _ = _stress_strain_fit(atoms, calculator, delta, n_steps, relax_ions, fmax)
    return C, C_err, residual


def _stress_strain_fit(
    atoms: Atoms,
    calculator: Calculator,
    delta: float,
    n_steps: int,
    relax_ions: bool,
    fmax: float,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """:func:`stiffness`, and the number of strained relaxations that stopped short of
    `fmax`."""
    from matscipy.elasticity import (
        fit_elastic_constants,
        full_3x3_to_Voigt_6_strain,
        generate_strained_configs,
    )

    _check_strain_args(delta, n_steps)
    reference = atoms.copy()
    reference.calc = calculator
    measured, short = [], 0
    for strained in generate_strained_configs(reference, "triclinic", n_steps, delta):
        strain = strained.info["strain"]
        if relax_ions:
            strained = relax_structure(strained, calculator, fmax=fmax, cell=False)
            short += stopped_short(strained)
        strained.info["strain"] = strain
        strained.calc = calculator
        measured.append(strained)
    strain_v = np.array([full_3x3_to_Voigt_6_strain(a.info["strain"]) for a in measured])
    stress_v = np.array([a.get_stress(voigt=True) for a in measured])  # [n_cfg, 6] eV/Å^3
    C, C_err = fit_elastic_constants(
        measured, symmetry="triclinic", N_steps=n_steps, delta=delta, verbose=False
    )
    misfit = stress_v - strain_v @ C.T  # sigma - C eps = sigma0 + residual
    misfit -= misfit.mean(axis=0)
    residual = float(np.sqrt(np.mean(misfit**2)) / GPa)
    return C / GPa, C_err / GPa, residual, short


@dataclasses.dataclass(frozen=True)
class HarmonicStiffness(Result):
    """Stiffness of one structure by the harmonic (Lutsko) route, :func:`stiffness_harmonic`.

    Attributes:
        C: relaxed-ion stiffness, GPa, shape [6, 6], Voigt order (xx yy zz yz xz xy).
        C_affine: clamped-ion (affine, Born + stress) stiffness d sigma/d eps, GPa, [6, 6].
        residual: RMS asymmetry (C_ij - C_ji)/2 over the 15 pairs i < j, GPa.
        n_negative_modes: Hessian eigenvalues below -eigenvalue_tol * max|eigenvalue|
            (0 at a minimum); left out of the correction.
        n_zero_modes: eigenvalues within +-eigenvalue_tol * max|eigenvalue| besides the 3
            rigid translations (rattlers, floppy modes); left out of the correction.
        lowest_eigenvalue: lowest Hessian eigenvalue besides the translations, eV/Å^2.
        max_force: largest residual atomic force of the structure, eV/Å.
        hessian_asymmetry: max|H - H^T| / max|H| of the unsymmetrized finite-difference
            Hessian: finite-difference error; large where the energy surface is not
            smooth on the scale of the displacement (then C is unreliable).
    """

    C: np.ndarray
    C_affine: np.ndarray
    residual: float
    n_negative_modes: int
    n_zero_modes: int
    lowest_eigenvalue: float
    max_force: float
    hessian_asymmetry: float


def voigt_strain_matrix(component: int, value: float) -> np.ndarray:
    """Symmetric 3x3 strain tensor of one Voigt strain component.

    Shear components are engineering strains: Voigt value gamma = 2 eps_ij, so the
    tensor has eps_ij = eps_ji = value / 2.

    Args:
        component: Voigt index 0-5 (xx yy zz yz xz xy).
        value: strain (dimensionless).

    Returns:
        strain tensor eps, shape [3, 3].
    """
    i, j = VOIGT_PAIRS[component]
    eps = np.zeros((3, 3))
    if i == j:
        eps[i, i] = value
    else:
        eps[i, j] = eps[j, i] = value / 2.0
    return eps


def force_constants(
    atoms: Atoms, calculator: Calculator, *, displacement: float = 1e-3, symmetrize: bool = True
) -> np.ndarray:
    """Hessian d^2E/du du of a periodic structure by central differences of the forces.

    Each atom is displaced by +-`displacement` along x, y and z (6N force calls); row
    3i + a is -(F(+h) - F(-h)) / 2h for displacement a of atom i.

    Args:
        atoms: structure (not modified).
        calculator: ASE calculator giving forces.
        displacement: finite-difference step h, Å.
        symmetrize: return (H + H^T)/2.

    Returns:
        H, eV/Å^2, shape [3N, 3N], index 3 * atom + Cartesian direction.
    """
    if not displacement > 0:
        raise ValueError(f"displacement must be positive, got {displacement}")
    work = _bare_copy(atoms, calculator)
    positions = atoms.get_positions()  # [N, 3] Å
    n_dof = positions.size
    H = np.empty((n_dof, n_dof))
    for dof in range(n_dof):
        forces = []
        for sign in (1.0, -1.0):
            displaced = positions.copy()
            displaced.flat[dof] += sign * displacement
            work.set_positions(displaced)
            forces.append(work.get_forces().ravel())  # [3N] eV/Å
        H[dof] = (forces[1] - forces[0]) / (2.0 * displacement)
    if symmetrize:
        H = 0.5 * (H + H.T)
    return H


def strain_derivatives(
    atoms: Atoms, calculator: Calculator, *, strain: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Clamped-ion stiffness and force-strain couplings by central strain differences.

    Each Voigt strain e_k = +-`strain` (engineering shears, :func:`voigt_strain_matrix`)
    deforms cell and positions affinely, r -> (1 + eps) r (12 calls). With ASE's stress
    sigma = (1/V) dE/de (Voigt; positive = tensile) and forces F = -dE/du:

    - C_affine[:, k] = d sigma / d e_k at fixed fractional positions (Born term plus
      the stress terms of the Cauchy stress: the clamped-ion constants, GPa);
    - Xi[:, k] = d F / d e_k (eV/Å), the mixed derivative -d^2E/du de_k.

    Args:
        atoms: structure (not modified; 3D-periodic).
        calculator: ASE calculator giving forces and stress.
        strain: strain step (dimensionless).

    Returns:
        (C_affine, Xi): C_affine [6, 6] GPa (column k = response to e_k) and
        Xi [3N, 6] eV/Å.
    """
    if not strain > 0:
        raise ValueError(f"strain must be positive, got {strain}")
    C_affine = np.empty((6, 6))
    xi = np.empty((3 * len(atoms), 6))
    for k in range(6):
        stresses, forces = [], []
        for sign in (1.0, -1.0):
            deformation = np.eye(3) + voigt_strain_matrix(k, sign * strain)
            strained = _bare_copy(atoms, calculator)
            strained.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
            stresses.append(strained.get_stress(voigt=True))  # [6] eV/Å^3
            forces.append(strained.get_forces().ravel())  # [3N] eV/Å
        C_affine[:, k] = (stresses[0] - stresses[1]) / (2.0 * strain) / GPa
        xi[:, k] = (forces[0] - forces[1]) / (2.0 * strain)
    return C_affine, xi


def relaxed_ion_stiffness(
    C_affine: np.ndarray,
    xi: np.ndarray,
    hessian: np.ndarray,
    volume: float,
    *,
    eigenvalue_tol: float = 1e-8,
) -> tuple[np.ndarray, int, int, float]:
    """Relaxed-ion stiffness C = C_affine - (1/V) Xi^T H^+ Xi from harmonic derivatives.

    Derivation: at strain e the ions move by u (on top of the affine deformation) until
    F(e, u) = Xi e - H u = 0, so u = H^+ Xi e; the stress sigma(e, u) changes by
    d sigma/du = (1/V) d^2E/de du = -(1/V) Xi^T, hence
    d sigma/de = C_affine - (1/V) Xi^T H^+ Xi. The sign of Xi drops out.

    H is projected onto the space orthogonal to the 3 rigid translations (so are the
    columns of Xi); the pseudo-inverse H^+ keeps only eigenvalues above
    `eigenvalue_tol` * max|eigenvalue|. Negative eigenvalues below -tol (a saddle, not a
    minimum) and near-zero ones (rattlers, floppy modes) are left out and counted.

    Args:
        C_affine: clamped-ion stiffness, GPa, shape [6, 6].
        xi: force-strain couplings dF/de, eV/Å, shape [3N, 6].
        hessian: H = d^2E/du du, eV/Å^2, shape [3N, 3N] (symmetrized here).
        volume: cell volume V, Å^3.
        eigenvalue_tol: relative threshold of zero eigenvalues.

    Returns:
        (C, n_negative_modes, n_zero_modes, lowest_eigenvalue): C [6, 6] GPa; counts of
        negative and extra zero modes (besides the translations); lowest eigenvalue
        besides the translations (eV/Å^2).

    References:
        J. F. Lutsko, J. Appl. Phys. 65, 2991 (1989) (relaxation term of the
        fluctuation/harmonic elastic constants).
    """
    C_affine = np.asarray(C_affine, dtype=float)
    xi = np.asarray(xi, dtype=float)
    hessian = np.asarray(hessian, dtype=float)
    n_dof = hessian.shape[0]
    if hessian.shape != (n_dof, n_dof) or n_dof % 3 or n_dof == 0:
        raise ValueError(f"hessian must have shape (3N, 3N), got {hessian.shape}")
    if xi.shape != (n_dof, 6):
        raise ValueError(f"xi must have shape ({n_dof}, 6), got {xi.shape}")
    if C_affine.shape != (6, 6):
        raise ValueError(f"C_affine must have shape (6, 6), got {C_affine.shape}")
    if not volume > 0:
        raise ValueError(f"volume must be positive, got {volume}")
    translations = np.zeros((n_dof, 3))  # [3N, 3] orthonormal rigid translations
    for a in range(3):
        translations[a::3, a] = 1.0 / np.sqrt(n_dof // 3)
    symmetric = 0.5 * (hessian + hessian.T)
    h_t = symmetric @ translations  # [3N, 3]
    projected = (  # P H P with P = 1 - T T^T, without forming P
        symmetric
        - translations @ h_t.T
        - h_t @ translations.T
        + translations @ (translations.T @ h_t) @ translations.T
    )
    eigenvalues, modes = np.linalg.eigh(projected)
    # drop the 3 translations: the modes with the largest overlap with them
    overlap = np.sum((translations.T @ modes) ** 2, axis=0)
    internal = np.ones(n_dof, dtype=bool)
    internal[np.argsort(overlap)[-3:]] = False
    eigenvalues, modes = eigenvalues[internal], modes[:, internal]
    tol = eigenvalue_tol * np.max(np.abs(eigenvalues), initial=0.0)
    stable = eigenvalues > tol
    n_negative = int(np.sum(eigenvalues < -tol))
    n_zero = int(eigenvalues.size - stable.sum() - n_negative)
    xi = xi - translations @ (translations.T @ xi)  # no net force change under strain
    coupling = modes[:, stable].T @ xi  # [n_stable, 6] eV/Å
    correction = coupling.T @ (coupling / eigenvalues[stable, None]) / volume / GPa
    lowest = float(eigenvalues.min()) if eigenvalues.size else 0.0
    return C_affine - correction, n_negative, n_zero, lowest


def stiffness_harmonic(
    atoms: Atoms,
    calculator: Calculator,
    *,
    displacement: float = 1e-3,
    strain: float = 1e-4,
    eigenvalue_tol: float = 1e-8,
) -> HarmonicStiffness:
    """Relaxed-ion stiffness of one relaxed structure by the harmonic (Lutsko) route.

    C = C_affine - (1/V) Xi^T H^+ Xi with C_affine and Xi = dF/de from
    :func:`strain_derivatives` (12 calls) and the Hessian H from
    :func:`force_constants` (6N calls), combined by :func:`relaxed_ion_stiffness`
    (which symmetrizes H). No relaxation under strain: only the starting structure
    must be a minimum. Cost: 6N + 12 force calls and one 3N x 3N eigendecomposition.

    Warns (RuntimeWarning) when the structure is not at a minimum (a negative Hessian
    mode, or a residual force above `MINIMUM_FORCE_TOL`) and when the unsymmetrized
    Hessian is asymmetric beyond `HESSIAN_ASYMMETRY_TOL` (an energy surface that is not
    smooth on the scale of `displacement`, e.g. atoms resting on a cutoff: the
    harmonic expansion does not hold and C depends on `displacement`).

    Args:
        atoms: relaxed periodic structure (no constraints).
        calculator: ASE calculator giving forces and stress.
        displacement: atomic finite-difference step of the Hessian, Å.
        strain: strain step of C_affine and Xi (dimensionless).
        eigenvalue_tol: relative threshold of zero Hessian eigenvalues.

    Returns:
        HarmonicStiffness (C and C_affine in GPa, residual, mode counts, diagnostics).

    References:
        J. F. Lutsko, J. Appl. Phys. 65, 2991 (1989).
    """
    C_affine, xi = strain_derivatives(atoms, calculator, strain=strain)
    hessian = force_constants(atoms, calculator, displacement=displacement, symmetrize=False)
    asymmetry = float(np.max(np.abs(hessian - hessian.T)) / max(np.max(np.abs(hessian)), 1e-300))
    C, n_negative, n_zero, lowest = relaxed_ion_stiffness(
        C_affine, xi, hessian, atoms.get_volume(), eigenvalue_tol=eigenvalue_tol
    )
    max_force = float(np.max(np.linalg.norm(_bare_copy(atoms, calculator).get_forces(), axis=1)))
    if n_negative:
        warnings.warn(
            f"stiffness_harmonic: {n_negative} negative Hessian mode(s) (lowest "
            f"{lowest:.3g} eV/Å^2): the structure is not at a minimum (relax it first); "
            "these modes are left out of the relaxed-ion correction",
            RuntimeWarning,
            stacklevel=2,
        )
    if max_force > MINIMUM_FORCE_TOL:
        warnings.warn(
            f"stiffness_harmonic: residual force {max_force:.3g} eV/Å > "
            f"{MINIMUM_FORCE_TOL} eV/Å: the structure is not at a minimum (relax it first)",
            RuntimeWarning,
            stacklevel=2,
        )
    if asymmetry > HESSIAN_ASYMMETRY_TOL:
        warnings.warn(
            f"stiffness_harmonic: finite-difference Hessian asymmetric by {asymmetry:.2g} "
            f"(relative; > {HESSIAN_ASYMMETRY_TOL}): the energy surface is not smooth on the "
            f"scale of displacement={displacement} Å and the harmonic C is unreliable "
            "(use method='strain')",
            RuntimeWarning,
            stacklevel=2,
        )
    return HarmonicStiffness(
        C=C,
        C_affine=C_affine,
        residual=_asymmetry(C),
        n_negative_modes=n_negative,
        n_zero_modes=n_zero,
        lowest_eigenvalue=lowest,
        max_force=max_force,
        hessian_asymmetry=asymmetry,
    )


ELASTIC_DEFAULTS = {"fmax": 1e-4, "n_steps": 5}
"""Default force criterion (eV/Å) and strains per pattern of `elastic`; `Analyzer.elastic`
uses them for potentials without label settings of their own."""


def elastic_settings(potential: str | None) -> dict[str, Any]:
    """``fmax`` and ``n_steps`` of `elastic` for a named potential: its label settings
    (`PotentialSpec.elastic_options`), else `ELASTIC_DEFAULTS` (also for None)."""
    options = dict(ELASTIC_DEFAULTS)
    if potential is not None:
        from amtoolkit.potentials import get_spec

        options.update(get_spec(potential).elastic_options)
    return options


def elastic(
    structures: Atoms | Iterable[Atoms],
    calculator: Calculator,
    relax: bool = True,
    delta: float | None = None,
    fmax: float = ELASTIC_DEFAULTS["fmax"],
    n_steps: int = ELASTIC_DEFAULTS["n_steps"],
    relax_ions: bool = True,
    method: str = "strain",
    displacement: float = 1e-3,
) -> ElasticResult:
    """Relaxed-ion elastic constants and isotropic moduli of a structure or set.

    Ghost atoms are dropped. With `relax`, positions and cell are relaxed at zero
    pressure first. Then, per structure:

    - ``method="strain"``: :func:`stiffness` fits C from 6 * `n_steps` strained cells,
      each with relaxed ions (6 * `n_steps` relaxations);
    - ``method="hessian"``: :func:`stiffness_harmonic`, C = C_affine - (1/V) Xi^T H^+ Xi
      from finite differences at the relaxed structure (6N + 12 force calls, no
      relaxation under strain; needs a true minimum, warns otherwise).

    Isotropic moduli follow :func:`isotropic_moduli`.

    Args:
        structures: one periodic Atoms or a sequence of them.
        calculator: ASE calculator (forces and stress).
        relax: relax positions and cell (zero pressure) before straining.
        delta: strain increment; None: 0.005 for "strain" (strains span
            +-delta * (n_steps - 1)/2), 1e-4 for "hessian" (central differences).
        fmax: force criterion of all relaxations, eV/Å.
        n_steps: strains per strain pattern ("strain" only).
        relax_ions: relaxed-ion constants (False gives clamped-ion constants).
        method: "strain" or "hessian".
        displacement: atomic finite-difference step of the Hessian, Å ("hessian" only).

    Returns:
        ElasticResult with the mean C (GPa), per-structure C, moduli and residuals.

    References:
        Stress-strain method as in matscipy.elasticity; harmonic route: J. F. Lutsko,
        J. Appl. Phys. 65, 2991 (1989); isotropic averages in docs/analysis.md, *Elastic
        constants*.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    delta = DEFAULT_DELTA[method] if delta is None else delta
    _check_strain_args(delta, n_steps)
    if method == "hessian" and not displacement > 0:
        raise ValueError(f"displacement must be positive, got {displacement}")
    frames = prepare(structures)
    stiffnesses, errors, residuals, moduli, negative_modes, unconverged = [], [], [], [], [], []
    for atoms in frames:
        short = 0
        if relax:
            atoms = relax_structure(atoms, calculator, fmax=fmax, cell=True)
            short = stopped_short(atoms)
        if method == "strain":
            C, C_err, residual, strained_short = _stress_strain_fit(
                atoms, calculator, delta, n_steps, relax_ions, fmax
            )
            short += strained_short
        elif relax_ions:
            harmonic = stiffness_harmonic(
                atoms, calculator, displacement=displacement, strain=delta
            )
            C, residual = harmonic.C, harmonic.residual
            negative_modes.append(harmonic.n_negative_modes)
        else:
            C = strain_derivatives(atoms, calculator, strain=delta)[0]
            residual = _asymmetry(C)
        if method == "hessian":
            C_err = 0.5 * np.abs(C - C.T)
        stiffnesses.append(C)
        errors.append(C_err)
        residuals.append(residual)
        unconverged.append(short)
        moduli.append(isotropic_moduli(C))
    C_all = np.array(stiffnesses)
    harmonic_ions = method == "hessian" and relax_ions
    _warn_unstable(C_all, delta)
    return ElasticResult(
        C=C_all.mean(axis=0),
        C_per_structure=C_all,
        C_error=np.array(errors),
        bulk_modulus=np.array([m["bulk_modulus"] for m in moduli]),
        shear_modulus=np.array([m["shear_modulus"] for m in moduli]),
        youngs_modulus=np.array([m["youngs_modulus"] for m in moduli]),
        poisson_ratio=np.array([m["poisson_ratio"] for m in moduli]),
        residual=np.array(residuals),
        relaxed=bool(relax),
        relaxed_ions=bool(relax_ions),
        delta=float(delta),
        n_steps=int(n_steps) if method == "strain" else 2,
        method=method,
        n_negative_modes=np.array(negative_modes, dtype=int) if harmonic_ions else None,
        displacement=float(displacement) if harmonic_ions else None,
        unconverged=np.array(unconverged, dtype=int),
        fmax=float(fmax) if relax or (method == "strain" and relax_ions) else None,
    )


def _warn_unstable(stiffnesses: np.ndarray, delta: float) -> None:
    """Warn, naming them, about structures whose stiffness matrix is not positive
    definite: their moduli describe no stable solid (a small glass cell that yields at
    the fit's strains gave G = 401 GPa with nu = -0.17, and a residual of 0.1 GPa)."""
    sym = 0.5 * (stiffnesses + np.swapaxes(stiffnesses, 1, 2))
    lowest = np.linalg.eigvalsh(sym)[:, 0]
    for k in np.flatnonzero(lowest <= 0.0):
        warnings.warn(
            f"structure {k}: the stiffness matrix has a negative eigenvalue "
            f"({lowest[k]:.3g} GPa): not a stable solid as measured; the cell may yield "
            f"under the fit's strains (delta {delta:g}: try a smaller delta or a larger "
            "cell) or its relaxation stalled",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_stiffness(C: np.ndarray) -> np.ndarray:
    C = np.asarray(C, dtype=float)
    if C.shape != (6, 6):
        raise ValueError(f"stiffness matrix must have shape (6, 6), got {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError("stiffness matrix contains NaN or inf")
    return C


def _check_strain_args(delta: float, n_steps: int) -> None:
    if int(n_steps) != n_steps or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2 for a linear fit, got {n_steps}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")


def _bare_copy(atoms: Atoms, calculator: Calculator) -> Atoms:
    """A copy without constraints, with `calculator` attached."""
    out = atoms.copy()
    out.set_constraint()
    out.calc = calculator
    return out


def _asymmetry(C: np.ndarray) -> float:
    """RMS of (C_ij - C_ji)/2 over the 15 pairs i < j of a 6x6 matrix."""
    upper = np.triu_indices(6, 1)
    return float(np.sqrt(np.mean(((C - C.T)[upper] / 2.0) ** 2)))
