"""Schedules and SDE coefficients of the material diffusion (docs/diffusion.md)."""

from __future__ import annotations

import math

import pytest
import torch

from amtoolkit.diffusion import MaterialSDE, get_timesteps

EXACT = 1e-12
"""Tolerance for closed-form values in float64."""

FD_STEP = 1e-6
"""Step of the central finite differences in t."""

FD_TOL = 1e-7
"""Relative tolerance of the finite-difference identities (central differences, h^2 ~ 1e-12)."""

N_PATHS = 20_000
"""Forward-SDE sample paths; the relative standard error of a variance is sqrt(2/N) ~ 1%."""

STAT_TOL = 0.05
"""Relative tolerance of the simulated marginal variances (~5 standard errors)."""

# non-default constants so that a mix-up of sigma_max_x and sigma_max_e shows
SDE = MaterialSDE(sigma_max_x=1.7, sigma_max_e=1.2)
TIMES = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)


def test_defaults_are_design_constants():
    sde = MaterialSDE()
    assert (sde.sigma_max_x, sde.sigma_max_e, sde.t_min, sde.t_max) == (1.5, 1.5, 0.01, 0.99)


def test_schedule_values():
    t = torch.tensor([0.0, 0.5, 1.0 / 3.0, 0.99], dtype=torch.float64)
    torch.testing.assert_close(SDE.sigma_x(t), 1.7 * t, atol=EXACT, rtol=0)
    f64 = torch.float64
    expected_alpha = torch.tensor(
        [1.0, math.sqrt(0.5), math.sqrt(3) / 2, math.cos(0.495 * math.pi)], dtype=f64
    )
    torch.testing.assert_close(SDE.alpha_e(t), expected_alpha, atol=EXACT, rtol=0)
    expected_sigma = 1.2 * torch.tensor(
        [0.0, math.sqrt(0.5), 0.5, math.sin(0.495 * math.pi)], dtype=f64
    )
    torch.testing.assert_close(SDE.sigma_e(t), expected_sigma, atol=EXACT, rtol=0)
    assert float(SDE.g2_x(0.5)) == pytest.approx(2 * 1.7**2 * 0.5, abs=EXACT)
    assert float(SDE.drift_e(0.5)) == pytest.approx(-math.pi / 2, abs=EXACT)


def test_float_argument_gives_float64_tensor():
    assert SDE.sigma_x(0.3).dtype == torch.float64
    t32 = torch.tensor([0.3], dtype=torch.float32)
    assert SDE.g2_e(t32).dtype == torch.float32


def _derivative(fn, t: torch.Tensor) -> torch.Tensor:
    return (fn(t + FD_STEP) - fn(t - FD_STEP)) / (2 * FD_STEP)


def test_ve_diffusion_is_derivative_of_variance():
    numeric = _derivative(lambda t: SDE.sigma_x(t) ** 2, TIMES)
    torch.testing.assert_close(SDE.g2_x(TIMES), numeric, rtol=FD_TOL, atol=0)


def test_vp_drift_is_derivative_of_log_alpha():
    numeric = _derivative(lambda t: torch.log(SDE.alpha_e(t)), TIMES)
    torch.testing.assert_close(SDE.drift_e(TIMES), numeric, rtol=FD_TOL, atol=0)


def test_vp_diffusion_identity():
    """g^2 = d sigma^2/dt - 2 (d log alpha/dt) sigma^2 for E_t = alpha E0 + sigma eps."""
    numeric = (
        _derivative(lambda t: SDE.sigma_e(t) ** 2, TIMES)
        - 2 * _derivative(lambda t: torch.log(SDE.alpha_e(t)), TIMES) * SDE.sigma_e(TIMES) ** 2
    )
    torch.testing.assert_close(SDE.g2_e(TIMES), numeric, rtol=FD_TOL, atol=0)
    # the documented form (docs/diffusion.md) simplifies to pi sigma_max_E^2 tan(pi t / 2)
    closed = math.pi * 1.2**2 * torch.tan(0.5 * math.pi * TIMES)
    torch.testing.assert_close(SDE.g2_e(TIMES), closed, rtol=EXACT, atol=0)


def test_forward_sde_reproduces_marginals():
    """Simulating dx = f x dt + g dW from a fixed x0 gives mean alpha x0, variance sigma^2."""
    generator = torch.Generator().manual_seed(0)
    t_end, n_steps, x0 = 0.9, 2000, 1.0
    dt = t_end / n_steps
    x = torch.full((N_PATHS,), x0, dtype=torch.float64)
    e = torch.full((N_PATHS,), x0, dtype=torch.float64)
    for k in range(n_steps):
        t = (k + 0.5) * dt  # midpoint coefficients: second-order in dt for the variance
        z = torch.randn(2, N_PATHS, generator=generator, dtype=torch.float64)
        x = x + math.sqrt(float(SDE.g2_x(t)) * dt) * z[0]
        e = e + float(SDE.drift_e(t)) * e * dt + math.sqrt(float(SDE.g2_e(t)) * dt) * z[1]
    sigma_x, alpha, sigma_e = (float(f(t_end)) for f in (SDE.sigma_x, SDE.alpha_e, SDE.sigma_e))
    assert float(x.var()) == pytest.approx(sigma_x**2, rel=STAT_TOL)
    assert float(x.mean()) == pytest.approx(x0, abs=4 * sigma_x / math.sqrt(N_PATHS))
    assert float(e.var()) == pytest.approx(sigma_e**2, rel=STAT_TOL)
    assert float(e.mean()) == pytest.approx(alpha * x0, abs=4 * sigma_e / math.sqrt(N_PATHS))


def test_timesteps_grid():
    sde = MaterialSDE()
    ts = get_timesteps(200, sde)
    assert ts.shape == (201,)
    assert ts.dtype == torch.float64
    assert float(ts[0]) == pytest.approx(0.99, abs=EXACT)
    assert float(ts[-2]) == pytest.approx(0.01, abs=EXACT)
    assert float(ts[-1]) == 0.0
    steps = ts[:-2] - ts[1:-1]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.98 / 199), atol=EXACT, rtol=0)
    # the sampling grid (docs/diffusion.md): 200 even steps then a final step to 0
    design = get_timesteps(201, sde)
    torch.testing.assert_close(
        design[:-2] - design[1:-1],
        torch.full((200,), 0.98 / 200, dtype=torch.float64),
        atol=EXACT,
        rtol=0,
    )
    one = get_timesteps(1, sde)
    assert one.tolist() == pytest.approx([0.99, 0.0])
    assert get_timesteps(4, sde, dtype=torch.float32).dtype == torch.float32


def test_timesteps_from_a_start_time():
    """Partial diffusion: `steps` reverse steps from t_start, even down to t_min, then 0."""
    sde = MaterialSDE()
    ts = get_timesteps(10, sde, t_start=0.1)
    assert ts.shape == (11,)
    assert float(ts[0]) == pytest.approx(0.1, abs=EXACT)
    assert float(ts[-2]) == pytest.approx(0.01, abs=EXACT)
    steps = ts[:-2] - ts[1:-1]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.09 / 9), atol=EXACT, rtol=0)
    assert get_timesteps(1, sde, t_start=0.005).tolist() == pytest.approx([0.005, 0.0])
    assert torch.equal(get_timesteps(7, sde, t_start=0.99), get_timesteps(7, sde))
    for bad, steps in ((0.01, 2), (0.995, 5), (0.0, 1), (-0.2, 1)):
        with pytest.raises(ValueError, match="t_start must lie in"):
            get_timesteps(steps, sde, t_start=bad)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_timesteps_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        get_timesteps(steps)


def test_dict_round_trip_and_validation():
    sde = MaterialSDE(sigma_max_x=1.7, t_min=0.02)
    assert MaterialSDE.from_dict(sde.to_dict()) == sde
    with pytest.raises(ValueError, match="unknown"):
        MaterialSDE.from_dict({"sigma_max": 1.0})
    with pytest.raises(ValueError, match="t_min < t_max < 1"):
        MaterialSDE(t_max=1.0)
    with pytest.raises(ValueError, match="sigma_max_e"):
        MaterialSDE(sigma_max_e=0.0)
