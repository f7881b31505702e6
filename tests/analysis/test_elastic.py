"""Tests for amtoolkit.analysis.elastic: stress-strain and harmonic elastic constants."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.units import GPa
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)
from matscipy.elasticity import full_3x3x3x3_to_Voigt_6x6, nonaffine_elastic_contribution

from amtoolkit import examples
from amtoolkit.analysis.elastic import (
    MODULI,
    ElasticResult,
    HarmonicStiffness,
    cubic_averages,
    elastic,
    force_constants,
    hill_moduli,
    isotropic_moduli,
    relaxed_ion_stiffness,
    stiffness_harmonic,
    strain_derivatives,
    voigt_strain_matrix,
)
from amtoolkit.analysis.energy import relax_structure
from amtoolkit.potentials import get_calculator

# SW diamond Si, relaxed-ion (Stillinger & Weber 1985; matscipy reproduces these)
SW_C11, SW_C12, SW_C44 = 151.4, 76.4, 56.4  # GPa
KNOWN_ANSWER_RTOL = 0.005
CUBIC_ZERO_TOL = 0.05  # GPa, components that vanish by cubic symmetry
RESIDUAL_TOL = 0.05  # GPa, RMS misfit of the linear stress-strain law
MODULI_RTOL = 1e-12
SW_C44_CLAMPED = 109.8  # GPa, clamped-ion C44 of SW diamond Si (no sublattice relaxation)
CLAMPED_RTOL = 1e-3  # harmonic C_affine vs the clamped-ion stress-strain fit
HESSIAN_ATOL = 1e-4  # eV/Å^2, finite-difference vs matscipy's analytic SW Hessian
NONAFFINE_ATOL = 0.01  # GPa, finite-difference vs matscipy's analytic non-affine term
MAXWELL_ATOL = 1e-4  # eV/Å, dF/de (strains) vs -V dsigma/du (displacements); FD error
AGREEMENT_ATOL = 0.3  # GPa, harmonic vs small-strain relaxed-ion fit on 216-atom a-Si
TRANSLATION_TOL = 1e-9  # GPa, C change from translation components in H and Xi


def sw_calculator(engine: str):
    if engine == "lammps":
        return get_calculator("sw-si")
    return Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))


@pytest.fixture(params=["lammps", "matscipy"])
def sw(request):
    """SW Si on LAMMPS (the production path) and matscipy's independent Python version."""
    return sw_calculator(request.param)


@pytest.fixture(scope="module")
def diamond_result():
    """Relaxed-ion constants of 8-atom diamond Si with LAMMPS SW (one fit per module)."""
    return elastic(bulk("Si", "diamond", a=5.431, cubic=True), get_calculator("sw-si"))


def isotropic_stiffness(bulk_modulus: float, shear_modulus: float) -> np.ndarray:
    lame = bulk_modulus - 2.0 * shear_modulus / 3.0
    C = np.zeros((6, 6))
    C[:3, :3] = lame
    C[np.diag_indices(3)] = lame + 2.0 * shear_modulus
    C[3:, 3:] = np.eye(3) * shear_modulus
    return C


def test_sw_diamond_known_answer(diamond_si, sw):
    r = elastic(diamond_si, sw)
    assert isinstance(r, ElasticResult)
    assert r.relaxed and r.relaxed_ions
    C = r.C
    assert C.shape == (6, 6)
    np.testing.assert_allclose(np.diag(C)[:3], SW_C11, rtol=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(C[[0, 0, 1], [1, 2, 2]], SW_C12, rtol=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(np.diag(C)[3:], SW_C44, rtol=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(C, C.T, atol=CUBIC_ZERO_TOL)
    assert np.all(np.abs(C[:3, 3:]) < CUBIC_ZERO_TOL)
    assert np.all(np.abs(C[3:, 3:] - np.diag(np.diag(C)[3:])) < CUBIC_ZERO_TOL)
    assert r.residual.shape == (1,) and r.residual[0] < RESIDUAL_TOL
    assert r.C_error.shape == (1, 6, 6)
    # cubic crystal: the cubic averages of the labels are exactly the cubic constants
    assert r.bulk_modulus[0] == pytest.approx((SW_C11 + 2 * SW_C12) / 3, rel=KNOWN_ANSWER_RTOL)
    assert r.shear_modulus[0] == pytest.approx(SW_C44, rel=KNOWN_ANSWER_RTOL)


def test_clamped_ions_stiffer_in_shear_only(diamond_si, sw, diamond_result):
    clamped = elastic(diamond_si, sw, relax_ions=False)
    assert not clamped.relaxed_ions
    # diamond: normal strains leave atoms at centrosymmetric-equivalent sites (no
    # internal relaxation), shear strains relax the two sublattices (Kleinman)
    np.testing.assert_allclose(clamped.C[:3, :3], diamond_result.C[:3, :3], rtol=1e-3)
    assert clamped.C[3, 3] > 1.5 * diamond_result.C[3, 3]


def test_unrelaxed_start_is_relaxed_first(diamond_si, sw, diamond_result):
    strained = diamond_si.copy()
    strained.set_cell(diamond_si.cell * 1.01, scale_atoms=True)
    strained.rattle(0.02, seed=2)
    r = elastic(strained, sw, relax=True)
    np.testing.assert_allclose(r.C, diamond_result.C, atol=0.3)


def test_set_shapes_and_json(diamond_si, sw):
    r = elastic([diamond_si, diamond_si.copy()], sw, n_steps=3, delta=0.01)
    assert r.C_per_structure.shape == (2, 6, 6)
    for name in ("bulk_modulus", "shear_modulus", "youngs_modulus", "poisson_ratio", "residual"):
        assert getattr(r, name).shape == (2,)
    np.testing.assert_allclose(r.C, r.C_per_structure.mean(axis=0))
    data = json.loads(json.dumps(r.to_dict()))
    assert data["mean_shear_modulus"] == pytest.approx(r.mean_shear_modulus)
    assert data["relaxed_ions"] is True and data["n_steps"] == 3
    assert np.array(data["C"]).shape == (6, 6)


def test_relaxations_short_of_fmax_are_counted_per_structure(monkeypatch, diamond_si):
    from amtoolkit.analysis import elastic as elastic_module

    real = elastic_module.relax_structure

    def strained_fall_short(atoms, calculator, *, fmax, cell):
        relaxed = real(atoms, calculator, fmax=fmax, cell=cell)
        relaxed.info["relax_converged"] = cell  # the strained (fixed-cell) ones stop short
        return relaxed

    monkeypatch.setattr(elastic_module, "relax_structure", strained_fall_short)
    calc = get_calculator("sw-si")
    r = elastic([diamond_si, diamond_si], calc, n_steps=2, delta=0.01)
    assert r.unconverged.tolist() == [12, 12]  # 6 strain patterns x 2 strains each
    clamped = elastic(diamond_si, calc, n_steps=2, delta=0.01, relax_ions=False)
    assert clamped.unconverged.tolist() == [0]  # no strained relaxation at all


@pytest.mark.parametrize(("bulk_modulus", "shear_modulus"), [(36.0, 31.0), (160.0, 80.0)])
def test_isotropic_moduli_round_trip(bulk_modulus, shear_modulus):
    moduli = isotropic_moduli(isotropic_stiffness(bulk_modulus, shear_modulus))
    youngs = 9 * bulk_modulus * shear_modulus / (3 * bulk_modulus + shear_modulus)
    poisson = (3 * bulk_modulus - 2 * shear_modulus) / (2 * (3 * bulk_modulus + shear_modulus))
    assert moduli["bulk_modulus"] == pytest.approx(bulk_modulus, rel=MODULI_RTOL)
    assert moduli["shear_modulus"] == pytest.approx(shear_modulus, rel=MODULI_RTOL)
    assert moduli["youngs_modulus"] == pytest.approx(youngs, rel=MODULI_RTOL)
    assert moduli["poisson_ratio"] == pytest.approx(poisson, rel=MODULI_RTOL)


@pytest.mark.parametrize(("bulk_modulus", "shear_modulus"), [(36.0, 31.0), (160.0, 80.0)])
def test_hill_moduli_of_an_isotropic_stiffness_are_exact(bulk_modulus, shear_modulus):
    hill = hill_moduli(isotropic_stiffness(bulk_modulus, shear_modulus))
    plain = isotropic_moduli(isotropic_stiffness(bulk_modulus, shear_modulus))
    for name in MODULI:
        assert hill[name] == pytest.approx(plain[name], rel=MODULI_RTOL)


def test_hill_moduli_of_sw_diamond_known_answer():
    # cubic C11, C12, C44 = 151.42, 76.45, 56.45 GPa: G_V = (C11 - C12 + 3 C44)/5,
    # G_R = 5 (C11 - C12) C44 / (4 C44 + 3 (C11 - C12)), K_V = K_R = (C11 + 2 C12)/3
    c11, c12, c44 = 151.42, 76.45, 56.45
    C = np.zeros((6, 6))
    C[:3, :3] = c12
    C[np.diag_indices(3)] = c11
    C[3:, 3:] = np.eye(3) * c44
    voigt = (c11 - c12 + 3 * c44) / 5
    reuss = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    hill = hill_moduli(C)
    assert hill["bulk_modulus"] == pytest.approx((c11 + 2 * c12) / 3, rel=MODULI_RTOL)
    assert hill["shear_modulus"] == pytest.approx((voigt + reuss) / 2, rel=MODULI_RTOL)
    assert 0 < hill["poisson_ratio"] < 0.5  # while G = C44 alone gives nu < 0 here
    assert isotropic_moduli(C)["poisson_ratio"] < 0
    assert all(np.isnan(v) for v in hill_moduli(np.zeros((6, 6))).values())
    with pytest.raises(ValueError, match="NaN"):
        hill_moduli(np.full((6, 6), np.nan))


def test_result_carries_hill_moduli(diamond_result):
    hill = diamond_result.hill
    assert hill["shear_modulus"].shape == (1,)
    assert hill["shear_modulus"][0] == pytest.approx(47.9, abs=0.2)
    assert diamond_result.to_dict()["hill"]["bulk_modulus"] == pytest.approx([101.4], abs=0.2)


def test_cubic_averages_pick_the_right_components():
    C = np.zeros((6, 6))
    C[np.diag_indices(3)] = [1.0, 2.0, 6.0]
    C[0, 1], C[1, 0], C[0, 2], C[2, 0], C[1, 2], C[2, 1] = 1, 2, 3, 4, 5, 9
    C[3, 3], C[4, 4], C[5, 5] = 7.0, 8.0, 12.0
    C[0, 3] = C[3, 0] = 100.0  # normal-shear coupling is not part of any average
    assert cubic_averages(C) == pytest.approx((3.0, 4.0, 9.0))


def test_isotropic_moduli_rejects_bad_matrix():
    with pytest.raises(ValueError, match=r"shape \(6, 6\)"):
        isotropic_moduli(np.eye(3))
    bad = np.eye(6)
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        isotropic_moduli(bad)


def test_bad_strain_arguments(diamond_si, sw):
    with pytest.raises(ValueError, match="n_steps"):
        elastic(diamond_si, sw, n_steps=1)
    with pytest.raises(ValueError, match="delta"):
        elastic(diamond_si, sw, delta=0.0)


# ---------------------------------------------------------------- harmonic (Lutsko) route


@pytest.fixture(scope="module")
def rattled_si64():
    """64-atom diamond Si rattled by 0.4 Å and relaxed tightly (SW): a distorted minimum
    with internal relaxation under every strain."""
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.rattle(0.4, seed=1)
    return relax_structure(atoms, get_calculator("sw-si"), fmax=1e-6)


def test_hessian_sw_diamond_known_answer(diamond_si, sw):
    r = elastic(diamond_si, sw, method="hessian")
    assert r.method == "hessian" and r.relaxed_ions
    assert r.n_negative_modes.tolist() == [0] and r.n_steps == 2 and r.delta == 1e-4
    C = r.C
    np.testing.assert_allclose(np.diag(C)[:3], SW_C11, rtol=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(C[[0, 0, 1], [1, 2, 2]], SW_C12, rtol=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(np.diag(C)[3:], SW_C44, rtol=KNOWN_ANSWER_RTOL)
    assert np.all(np.abs(C[:3, 3:]) < CUBIC_ZERO_TOL)
    assert np.all(np.abs(C[3:, 3:] - np.diag(np.diag(C)[3:])) < CUBIC_ZERO_TOL)
    assert r.residual[0] < RESIDUAL_TOL and r.C_error.shape == (1, 6, 6)


def test_hessian_clamped_part_is_the_clamped_fit(diamond_si):
    calc = get_calculator("sw-si")
    harmonic = stiffness_harmonic(diamond_si, calc)
    assert isinstance(harmonic, HarmonicStiffness)
    fit = elastic(diamond_si, calc, relax=False, relax_ions=False)  # clamped-ion fit
    np.testing.assert_allclose(harmonic.C_affine, fit.C, rtol=CLAMPED_RTOL, atol=CUBIC_ZERO_TOL)
    assert harmonic.C_affine[3, 3] == pytest.approx(SW_C44_CLAMPED, rel=KNOWN_ANSWER_RTOL)
    # the non-affine (Kleinman) term halves C44 and leaves the normal constants alone
    assert harmonic.C[3, 3] == pytest.approx(SW_C44, rel=KNOWN_ANSWER_RTOL)
    np.testing.assert_allclose(harmonic.C[:3, :3], harmonic.C_affine[:3, :3], rtol=CLAMPED_RTOL)
    clamped = elastic(diamond_si, calc, relax=False, method="hessian", relax_ions=False)
    np.testing.assert_allclose(clamped.C, harmonic.C_affine)
    assert clamped.n_negative_modes is None and clamped.displacement is None


def test_force_constants_match_analytic_hessian():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    atoms.rattle(0.05, seed=3)
    analytic_calc = sw_calculator("matscipy")
    analytic = analytic_calc.get_property("hessian", atoms).toarray()  # [3N, 3N] eV/Å^2
    H = force_constants(atoms, get_calculator("sw-si"), symmetrize=False)
    assert H.shape == (24, 24)
    np.testing.assert_allclose(H, analytic, atol=HESSIAN_ATOL)


def test_nonaffine_term_matches_matscipy(rattled_si64):
    calc = get_calculator("sw-si")
    harmonic = stiffness_harmonic(rattled_si64, calc)
    assert harmonic.n_negative_modes == 0 and harmonic.n_zero_modes == 0
    atoms = rattled_si64.copy()
    atoms.calc = sw_calculator("matscipy")  # analytic Hessian and non-affine forces, CG solve
    for name in ("hessian", "nonaffine_forces"):  # matscipy 1.3.1 asks for them without atoms
        atoms.calc.get_property(name, atoms)
    nonaffine = full_3x3x3x3_to_Voigt_6x6(np.asarray(nonaffine_elastic_contribution(atoms)))
    np.testing.assert_allclose(harmonic.C - harmonic.C_affine, nonaffine / GPa, atol=NONAFFINE_ATOL)
    # a distorted cell: internal relaxation softens normal strains too
    assert np.all(np.diag(harmonic.C - harmonic.C_affine) < -1.0)


def test_strain_derivative_obeys_maxwell_relation(rattled_si64):
    """At a minimum dF/de (strained forces) = -V dsigma/du (stresses of displaced atoms):
    signs and the engineering shear convention of Xi and the stress agree. (Away from a
    minimum the two differ by residual-force terms.)"""
    calc = get_calculator("sw-si")
    atoms = rattled_si64
    _, xi = strain_derivatives(atoms, calc)
    h = 1e-4
    work = atoms.copy()
    work.calc = calc
    for dof in (0, 4, 17, 101):
        stresses = []
        for sign in (1.0, -1.0):
            positions = atoms.get_positions()
            positions.flat[dof] += sign * h
            work.set_positions(positions)
            stresses.append(work.get_stress(voigt=True))
        dstress_du = (stresses[0] - stresses[1]) / (2 * h)
        np.testing.assert_allclose(xi[dof], -atoms.get_volume() * dstress_du, atol=MAXWELL_ATOL)


def test_voigt_strain_matrix_uses_engineering_shear():
    eps = voigt_strain_matrix(3, 0.02)  # gamma_yz = 0.02
    assert eps[1, 2] == eps[2, 1] == pytest.approx(0.01) and np.count_nonzero(eps) == 2
    assert voigt_strain_matrix(0, 0.02)[0, 0] == 0.02


def test_hessian_matches_small_strain_relaxed_fit_on_a_si():
    calc = get_calculator("sw-si")
    atoms = relax_structure(examples.load("a-si")[0], calc, fmax=1e-6)
    harmonic = elastic(atoms, calc, relax=False, method="hessian")
    fit = elastic(atoms, calc, relax=False, delta=5e-4, n_steps=3, fmax=1e-6)
    assert harmonic.n_negative_modes.tolist() == [0]
    np.testing.assert_allclose(harmonic.C, fit.C, atol=AGREEMENT_ATOL)
    assert harmonic.shear_modulus[0] == pytest.approx(fit.shear_modulus[0], abs=AGREEMENT_ATOL)
    # the relaxed-ion shear modulus of a-Si is far below its clamped-ion value
    assert (
        harmonic.shear_modulus[0]
        < 0.5
        * elastic(atoms, calc, relax=False, method="hessian", relax_ions=False).shear_modulus[0]
    )


def test_pseudo_inverse_ignores_translations(diamond_si):
    calc = get_calculator("sw-si")
    C_affine, xi = strain_derivatives(diamond_si, calc)
    H = force_constants(diamond_si, calc)
    volume = diamond_si.get_volume()
    C, n_negative, n_zero, _ = relaxed_ion_stiffness(C_affine, xi, H, volume)
    # a rigid-translation component in Xi and tiny, noisy translation eigenvalues in H
    # (finite-difference round-off) would blow up a plain inverse
    translation = np.tile(np.eye(3), (8, 1)) / np.sqrt(8)  # [24, 3] orthonormal
    rng = np.random.default_rng(0)
    xi_t = xi + translation @ rng.normal(size=(3, 6))
    H_t = H + translation @ np.diag([1e-13, -1e-13, 3e-14]) @ translation.T
    C_t, n_negative_t, n_zero_t, _ = relaxed_ion_stiffness(C_affine, xi_t, H_t, volume)
    assert (n_negative, n_zero, n_negative_t, n_zero_t) == (0, 0, 0, 0)
    np.testing.assert_allclose(C_t, C, atol=TRANSLATION_TOL)
    naive = C_affine - xi_t.T @ np.linalg.pinv(H_t, rcond=1e-16) @ xi_t / volume / GPa
    assert np.abs(naive - C).max() > 1e3  # what the projection prevents


def test_relaxed_ion_stiffness_rejects_bad_shapes():
    with pytest.raises(ValueError, match="hessian"):
        relaxed_ion_stiffness(np.eye(6), np.zeros((6, 6)), np.eye(5), 10.0)
    with pytest.raises(ValueError, match="xi"):
        relaxed_ion_stiffness(np.eye(6), np.zeros((3, 6)), np.eye(6), 10.0)
    with pytest.raises(ValueError, match="volume"):
        relaxed_ion_stiffness(np.eye(6), np.zeros((6, 6)), np.eye(6), 0.0)


def test_saddle_point_warns_and_counts_negative_modes():
    # simple cubic Si: forces vanish by symmetry, but SW makes it unstable
    simple_cubic = Atoms("Si", cell=np.eye(3) * 2.5, pbc=True).repeat(2)
    calc = get_calculator("sw-si")
    with pytest.warns(RuntimeWarning, match="negative Hessian mode"):
        harmonic = stiffness_harmonic(simple_cubic, calc)
    assert harmonic.n_negative_modes > 0 and harmonic.lowest_eigenvalue < 0
    assert harmonic.max_force < 1e-10
    with pytest.warns(RuntimeWarning, match="negative Hessian mode"):
        with pytest.warns(RuntimeWarning, match="structure 0: the stiffness matrix has a neg"):
            r = elastic(simple_cubic, calc, relax=False, method="hessian")
    assert r.n_negative_modes[0] == harmonic.n_negative_modes
    assert r.unstable[0]  # a saddle point is no stable solid


def test_unrelaxed_structure_warns_and_minimum_does_not(diamond_si):
    calc = get_calculator("sw-si")
    rattled = diamond_si.copy()
    rattled.rattle(0.05, seed=5)
    with pytest.warns(RuntimeWarning, match="residual force"):
        harmonic = stiffness_harmonic(rattled, calc)
    assert harmonic.max_force > 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minimum = stiffness_harmonic(diamond_si, calc)
    assert minimum.hessian_asymmetry < 1e-6 and minimum.max_force < 1e-10


def test_hessian_set_shapes_and_json(diamond_si):
    calc = get_calculator("sw-si")
    r = elastic([diamond_si, diamond_si.copy()], calc, method="hessian", relax=False)
    assert r.C_per_structure.shape == (2, 6, 6) and r.n_negative_modes.shape == (2,)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["method"] == "hessian" and data["displacement"] == 1e-3
    assert data["n_negative_modes"] == [0, 0]
    strain = elastic(diamond_si, calc, n_steps=3, delta=0.01)
    assert strain.method == "strain" and strain.n_negative_modes is None


def test_bad_method_arguments(diamond_si):
    calc = get_calculator("sw-si")
    with pytest.raises(ValueError, match="method"):
        elastic(diamond_si, calc, method="fluctuation")
    with pytest.raises(ValueError, match="displacement"):
        elastic(diamond_si, calc, method="hessian", displacement=0.0)
    with pytest.raises(ValueError, match="strain"):
        strain_derivatives(diamond_si, calc, strain=-1e-4)


def test_analyzer_passes_the_method_through(diamond_si):
    from amtoolkit.analyzer import Analyzer

    r = Analyzer("sw-si").elastic(diamond_si, method="hessian", displacement=2e-3)
    assert r.method == "hessian" and r.displacement == 2e-3 and r.delta == 1e-4
    assert r.C[3, 3] == pytest.approx(SW_C44, rel=KNOWN_ANSWER_RTOL)


def test_isotropic_moduli_of_a_zero_stiffness_are_nan_not_an_error():
    moduli = isotropic_moduli(np.zeros((6, 6)))
    assert moduli["bulk_modulus"] == 0.0 and moduli["shear_modulus"] == 0.0
    assert np.isnan(moduli["youngs_modulus"]) and np.isnan(moduli["poisson_ratio"])


def test_a_stiffness_matrix_with_a_negative_eigenvalue_is_flagged():
    from amtoolkit.analysis.elastic import _warn_unstable
    from amtoolkit.analysis.report import _elastic_rows

    stable = np.diag([150.0, 150.0, 150.0, 50.0, 50.0, 50.0])
    unstable = stable.copy()
    unstable[:3, :3] = [[100.0, 120.0, 0.0], [120.0, 100.0, 0.0], [0.0, 0.0, 150.0]]  # C11 < C12
    with pytest.warns(RuntimeWarning, match=r"structure 1: the stiffness matrix has a negative"):
        _warn_unstable(np.array([stable, unstable]), 0.005)
    result = ElasticResult(
        C=stable, C_per_structure=np.array([stable, unstable]), C_error=np.zeros((2, 6, 6)),
        bulk_modulus=np.ones(2), shear_modulus=np.ones(2), youngs_modulus=np.ones(2),
        poisson_ratio=np.zeros(2), residual=np.zeros(2), relaxed=True, relaxed_ions=True,
        delta=0.005, n_steps=3,
    )  # fmt: skip
    np.testing.assert_array_equal(result.unstable, [False, True])
    assert result.min_eigenvalue[1] == pytest.approx(-20.0)
    notes = [text for name, text in _elastic_rows(result) if name == "note"]
    assert any(text.startswith("1 of 2 structures (1) have a stiffness matrix") for text in notes)
