"""Relaxed-ion elastic constants by finite-difference stress-strain fits, and isotropic moduli."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import GPa

from amtoolkit.analysis._result import Result
from amtoolkit.analysis._structures import prepare
from amtoolkit.analysis.energy import relax_structure

#: Voigt indices of the normal (xx, yy, zz) and shear (yz, xz, xy) components
NORMAL = (0, 1, 2)
SHEAR = (3, 4, 5)


@dataclasses.dataclass(frozen=True)
class ElasticResult(Result):
    """Elastic constants of a set of structures and their isotropic averages.

    Attributes:
        C: mean 6x6 stiffness matrix over the set, Voigt order (xx yy zz yz xz xy), GPa.
        C_per_structure: stiffness per structure, GPa, shape [n_structures, 6, 6].
        C_error: standard error of each fitted C_ij (linear regression), GPa,
            shape [n_structures, 6, 6].
        bulk_modulus: K = (C11 + 2 C12)/3 per structure, GPa, shape [n_structures].
        shear_modulus: G = C44 per structure, GPa, shape [n_structures].
        youngs_modulus: E = (C11 - C12)(C11 + 2 C12)/(C11 + C12) per structure, GPa.
        poisson_ratio: nu = E/(2G) - 1 per structure (dimensionless).
        residual: root-mean-square deviation of the measured stresses from the
            fitted linear law sigma = sigma0 + C eps, GPa, shape [n_structures].
        relaxed: positions and cell were relaxed to zero pressure before straining.
        relaxed_ions: ions were relaxed at every strain (relaxed-ion constants).
        delta: strain increment of the finite-difference fit.
        n_steps: number of strains per strain pattern (6 patterns).
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

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("bulk_modulus", "shear_modulus", "youngs_modulus", "poisson_ratio"):
            out[f"mean_{name}"] = getattr(self, f"mean_{name}")
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
        dict with bulk_modulus, shear_modulus, youngs_modulus (GPa) and poisson_ratio.

    References:
        J. F. Nye, Physical Properties of Crystals (1985), ch. VIII (isotropic stiffness).
    """
    c11, c12, c44 = cubic_averages(C)
    bulk = (c11 + 2.0 * c12) / 3.0
    shear = c44
    youngs = (c11 - c12) * (c11 + 2.0 * c12) / (c11 + c12)
    return {
        "bulk_modulus": bulk,
        "shear_modulus": shear,
        "youngs_modulus": youngs,
        "poisson_ratio": youngs / (2.0 * shear) - 1.0,
    }


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
    from matscipy.elasticity import (
        fit_elastic_constants,
        full_3x3_to_Voigt_6_strain,
        generate_strained_configs,
    )

    _check_strain_args(delta, n_steps)
    reference = atoms.copy()
    reference.calc = calculator
    measured = []
    for strained in generate_strained_configs(reference, "triclinic", n_steps, delta):
        strain = strained.info["strain"]
        if relax_ions:
            strained = relax_structure(strained, calculator, fmax=fmax, cell=False)
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
    return C / GPa, C_err / GPa, residual


def elastic(
    structures: Atoms | Iterable[Atoms],
    calculator: Calculator,
    relax: bool = True,
    delta: float = 0.005,
    fmax: float = 1e-4,
    n_steps: int = 5,
    relax_ions: bool = True,
) -> ElasticResult:
    """Relaxed-ion elastic constants and isotropic moduli of a structure or set.

    Ghost atoms are dropped. With `relax`, positions and cell are relaxed at zero
    pressure first; then :func:`stiffness` fits C from 6 * `n_steps` strained cells,
    each with relaxed ions. Isotropic moduli follow :func:`isotropic_moduli`.

    Args:
        structures: one periodic Atoms or a sequence of them.
        calculator: ASE calculator (forces and stress).
        relax: relax positions and cell (zero pressure) before straining.
        delta: strain increment; strains span +-delta * (n_steps - 1)/2.
        fmax: force criterion of all relaxations, eV/Å.
        n_steps: strains per strain pattern.
        relax_ions: relax ions at every strain (False gives clamped-ion constants).

    Returns:
        ElasticResult with the mean C (GPa), per-structure C, moduli and residuals.

    References:
        Stress-strain method as in matscipy.elasticity; isotropic averages in
        amtoolkit DESIGN section 6.
    """
    _check_strain_args(delta, n_steps)
    frames = prepare(structures)
    stiffnesses, errors, residuals, moduli = [], [], [], []
    for atoms in frames:
        if relax:
            atoms = relax_structure(atoms, calculator, fmax=fmax, cell=True)
        C, C_err, residual = stiffness(
            atoms, calculator, delta=delta, n_steps=n_steps, relax_ions=relax_ions, fmax=fmax
        )
        stiffnesses.append(C)
        errors.append(C_err)
        residuals.append(residual)
        moduli.append(isotropic_moduli(C))
    C_all = np.array(stiffnesses)
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
        n_steps=int(n_steps),
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
