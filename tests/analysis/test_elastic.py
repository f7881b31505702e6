"""Tests for amtoolkit.analysis.elastic: stress-strain elastic constants and isotropic moduli."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from matscipy.calculators.manybody import Manybody
from matscipy.calculators.manybody.explicit_forms import StillingerWeber
from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
    Stillinger_Weber_PRB_31_5262_Si,
)

from amtoolkit.analysis.elastic import (
    ElasticResult,
    cubic_averages,
    elastic,
    isotropic_moduli,
)
from amtoolkit.potentials import get_calculator

# SW diamond Si, relaxed-ion (Stillinger & Weber 1985; matscipy reproduces these)
SW_C11, SW_C12, SW_C44 = 151.4, 76.4, 56.4  # GPa
KNOWN_ANSWER_RTOL = 0.005
CUBIC_ZERO_TOL = 0.05  # GPa, components that vanish by cubic symmetry
RESIDUAL_TOL = 0.05  # GPa, RMS misfit of the linear stress-strain law
MODULI_RTOL = 1e-12


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
    # cubic crystal: the DESIGN averages are exactly the cubic constants
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


@pytest.mark.parametrize(("bulk_modulus", "shear_modulus"), [(36.0, 31.0), (160.0, 80.0)])
def test_isotropic_moduli_round_trip(bulk_modulus, shear_modulus):
    moduli = isotropic_moduli(isotropic_stiffness(bulk_modulus, shear_modulus))
    youngs = 9 * bulk_modulus * shear_modulus / (3 * bulk_modulus + shear_modulus)
    poisson = (3 * bulk_modulus - 2 * shear_modulus) / (2 * (3 * bulk_modulus + shear_modulus))
    assert moduli["bulk_modulus"] == pytest.approx(bulk_modulus, rel=MODULI_RTOL)
    assert moduli["shear_modulus"] == pytest.approx(shear_modulus, rel=MODULI_RTOL)
    assert moduli["youngs_modulus"] == pytest.approx(youngs, rel=MODULI_RTOL)
    assert moduli["poisson_ratio"] == pytest.approx(poisson, rel=MODULI_RTOL)


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
