"""Samplers with exact scores of known distributions (docs/diffusion.md, *Samplers*)."""

from __future__ import annotations

import math

import pytest
import torch

from amtoolkit.diffusion import (
    CALLBACK_KEYS,
    SAMPLERS,
    MaterialSDE,
    get_timesteps,
    sample_ode,
    sample_sde,
)
from amtoolkit.diffusion._batch_ops import remove_system_mean, system_mean
from tests.diffusion.toy_models import DeltaModel, GaussianModel, make_state, zero_model

SDE = MaterialSDE(sigma_max_x=1.7, sigma_max_e=1.2)
STEPS = 200

ODE_DELTA_TOL_X = 1e-10
"""Euler on the VE probability-flow ODE is exact for a delta distribution (X_t - X0 ∝ t)."""

ODE_DELTA_TOL_E = 1e-3
"""Euler error of the VP-cosine flow for a delta distribution (measured ~1.3e-4 at 200 steps)."""

SDE_DELTA_RMS_X = 0.05
"""RMS landing error of the positions, Å, per component. Euler-Maruyama's last step
(t_min -> 0) leaves N(0, sigma_X(t_min)^2 + g_X^2 t_min^2) ~ (0.03 Å)^2 for sigma_max 1.7."""

SDE_DELTA_RMS_E = 0.07
"""RMS landing error of the element embeddings (expected ~0.035 for sigma_max_E 1.2)."""


def _delta_problem(generator, n_systems=6, n_atoms=5, n_classes=3):
    state = make_state(n_systems, n_atoms, n_classes, generator, sde=SDE)
    # X0 partly outside the cell: the sampler must not wrap
    x0 = -3.0 + 12.0 * torch.rand((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    classes = torch.randint(n_classes, (state.n_atoms,), generator=generator)
    e0 = torch.nn.functional.one_hot(classes, n_classes).double()
    return state, DeltaModel(x0, e0, SDE), classes


def test_ode_lands_on_a_delta_distribution(generator):
    state, model, classes = _delta_problem(generator)
    out = sample_ode(model, state, get_timesteps(STEPS, SDE), sde=SDE)
    torch.testing.assert_close(out.positions, model.positions, atol=ODE_DELTA_TOL_X, rtol=0)
    torch.testing.assert_close(out.elements, model.elements, atol=ODE_DELTA_TOL_E, rtol=0)
    assert torch.equal(out.elements.argmax(-1), classes)


def test_sde_lands_on_a_delta_distribution(generator):
    state, model, classes = _delta_problem(generator, n_systems=20)
    out = sample_sde(model, state, get_timesteps(STEPS, SDE), sde=SDE, generator=generator)
    rms_x = float((out.positions - model.positions).pow(2).mean().sqrt())
    rms_e = float((out.elements - model.elements).pow(2).mean().sqrt())
    assert rms_x < SDE_DELTA_RMS_X
    assert rms_e < SDE_DELTA_RMS_E
    assert torch.equal(out.elements.argmax(-1), classes)


@pytest.mark.parametrize("name", ["sde", "ode"])
def test_samplers_reproduce_a_gaussian(name, generator):
    """Start from the exact marginal at t_max; the samples must follow the data law.

    A wrong g^2, a missing 1/2 in the ODE or a wrong VP drift changes the variances
    by far more than the tolerances.
    """
    n_systems, n_atoms, n_classes = 2000, 4, 3
    s_x, s_e = 0.4, 0.6
    state = make_state(n_systems, n_atoms, n_classes, generator, sde=SDE)
    mu_x = 2.0 * torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    mu_e = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64).expand(state.n_atoms, 3)
    model = GaussianModel(mu_x, s_x, mu_e, s_e, SDE)
    t0 = SDE.t_max
    z = torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    z = remove_system_mean(z, state.system_idx, n_systems)
    positions = mu_x + math.sqrt(s_x**2 + float(SDE.sigma_x(t0)) ** 2) * z
    alpha, sigma = float(SDE.alpha_e(t0)), float(SDE.sigma_e(t0))
    elements = alpha * mu_e + math.sqrt(alpha**2 * s_e**2 + sigma**2) * torch.randn(
        (state.n_atoms, n_classes), generator=generator, dtype=torch.float64
    )
    state = state.replace(positions=positions, elements=elements)

    out = SAMPLERS[name](model, state, get_timesteps(STEPS, SDE), sde=SDE, generator=generator)

    dx = out.positions - mu_x
    # the centre of mass is not noised: its offset stays (zero here)
    com = system_mean(dx, state.system_idx, n_systems)
    assert float(com.abs().max()) < 1e-9
    n_dof = dx.numel() * (1 - 1 / n_atoms)
    var_x = float(dx.pow(2).sum()) / n_dof
    # statistical error sqrt(2/n_dof) ~ 1%; Euler bias ~1-2% at 200 steps
    assert var_x == pytest.approx(s_x**2, rel=0.06)
    de = out.elements - mu_e
    mean_tol = 5 * s_e / math.sqrt(de.shape[0])
    torch.testing.assert_close(
        de.mean(0), torch.zeros(n_classes, dtype=torch.float64), atol=mean_tol, rtol=0
    )
    assert float(de.var()) == pytest.approx(s_e**2, rel=0.06)


@pytest.mark.parametrize("name", ["sde", "ode"])
def test_determinism_with_a_generator(name):
    def run(seed: int):
        g = torch.Generator().manual_seed(seed)
        state = make_state(3, 4, 3, g, sde=SDE)
        model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
        return SAMPLERS[name](model, state, get_timesteps(10, SDE), sde=SDE, generator=g)

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.positions, b.positions) and torch.equal(a.elements, b.elements)
    assert not torch.equal(a.positions, c.positions)


def test_sde_noise_is_translation_free(generator):
    """With eps_hat = 0 only noise moves the atoms: each system's centre stays put."""
    state = make_state(4, 6, 3, generator, sde=SDE)
    out = sample_sde(zero_model, state, get_timesteps(20, SDE), sde=SDE, generator=generator)
    before = system_mean(state.positions, state.system_idx, 4)
    after = system_mean(out.positions, state.system_idx, 4)
    torch.testing.assert_close(after, before, atol=1e-12, rtol=0)
    assert float((out.positions - state.positions).abs().max()) > 0.1


def test_dtype_follows_state(generator):
    state = make_state(2, 3, 3, generator, sde=SDE).to(dtype=torch.float32)
    model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
    for sampler in SAMPLERS.values():
        out = sampler(model, state, get_timesteps(5, SDE), sde=SDE, generator=generator)
        assert out.positions.dtype == torch.float32 and out.elements.dtype == torch.float32
        assert bool(torch.isfinite(out.positions).all())


@pytest.mark.parametrize("name", ["sde", "ode"])
def test_callback_keys_and_times(name, generator):
    state, model, _ = _delta_problem(generator, n_systems=2)
    ts = get_timesteps(7, SDE)
    records = []
    out = SAMPLERS[name](model, state, ts, sde=SDE, generator=generator, callback=records.append)
    assert len(records) == 7
    assert all(set(r) == set(CALLBACK_KEYS) for r in records)
    assert [r["i"] for r in records] == list(range(7))
    assert [r["t"] for r in records] == pytest.approx(ts[:-1].tolist())
    assert records[0]["state"] is state
    assert records[-1]["eps_x"].shape == state.positions.shape
    assert records[-1]["eps_e"].shape == state.elements.shape
    assert out is not records[-1]["state"]


def test_model_sees_per_system_times(generator):
    state = make_state(3, 2, 3, generator, sde=SDE)
    seen = []

    def model(batch, t):
        seen.append(t)
        return zero_model(batch, t)

    ts = get_timesteps(4, SDE)
    sample_ode(model, state, ts, sde=SDE)
    assert all(t.shape == (3,) and t.dtype == state.positions.dtype for t in seen)
    assert [float(t[0]) for t in seen] == pytest.approx(ts[:-1].tolist())


@pytest.mark.parametrize(
    "ts, message",
    [
        (torch.tensor([0.5]), "at least 2"),
        (torch.tensor([0.1, 0.5, 0.0]), "decreasing"),
        (torch.tensor([1.0, 0.5, 0.0]), r"\[0, 1\)"),
        (torch.tensor([0.5, 0.0, -0.1]), r"\[0, 1\)"),
    ],
)
def test_bad_grids_raise(ts, message, generator):
    state = make_state(1, 2, 3, generator)
    with pytest.raises(ValueError, match=message):
        sample_sde(zero_model, state, ts)


def test_wrong_model_output_raises(generator):
    state = make_state(1, 2, 3, generator)

    def bad(batch, t):
        return batch.positions[:, :2], batch.elements

    with pytest.raises(ValueError, match="eps_x"):
        sample_ode(bad, state, get_timesteps(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_state_on_cuda():
    from amtoolkit.diffusion import add_noise, charge_balance, guided, sample_with_restarts

    device = torch.device("cuda")

    def run(name: str):
        g = torch.Generator(device=device).manual_seed(0)
        state = make_state(3, 4, 3, torch.Generator().manual_seed(0), sde=SDE).to(device)
        model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
        return SAMPLERS[name](
            guided(model, 0.0), state, get_timesteps(6, SDE), sde=SDE, generator=g
        )

    for name in SAMPLERS:
        a, b = run(name), run(name)
        assert a.positions.device.type == "cuda" and a.elements.device.type == "cuda"
        assert torch.equal(a.positions, b.positions) and torch.equal(a.elements, b.elements)
    g = torch.Generator(device=device).manual_seed(0)
    state = make_state(2, 3, 3, torch.Generator().manual_seed(0), sde=SDE).to(device)
    noisy, eps_x, _ = add_noise(
        state, torch.full((2,), 0.5, device=device, dtype=torch.float64), SDE, g
    )
    assert eps_x.device.type == "cuda"
    out, restarts = sample_with_restarts(
        sample_sde,
        zero_model,
        state,
        get_timesteps(6, SDE),
        accept=charge_balance([0, 8, 14]),
        max_restarts=1,
        generator=g,
        sde=SDE,
    )
    assert out.positions.device.type == "cuda" and restarts.device.type == "cuda"


def test_noise_scale_of_one_is_the_reverse_sde(generator):
    state = make_state(3, 4, 3, generator, sde=SDE)
    model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
    ts = get_timesteps(10, SDE)
    a = sample_sde(model, state, ts, sde=SDE, generator=torch.Generator().manual_seed(1))
    b = sample_sde(
        model, state, ts, sde=SDE, generator=torch.Generator().manual_seed(1), noise_scale=1.0
    )
    assert torch.equal(a.positions, b.positions) and torch.equal(a.elements, b.elements)


def test_noise_scale_zero_follows_the_drift_alone(generator):
    state = make_state(3, 4, 3, generator, sde=SDE)
    model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
    ts = get_timesteps(10, SDE)
    runs = [
        sample_sde(
            model, state, ts, sde=SDE, generator=torch.Generator().manual_seed(s), noise_scale=0.0
        )
        for s in (1, 2)
    ]
    assert torch.equal(runs[0].positions, runs[1].positions)
    with pytest.raises(ValueError, match="noise_scale must be a number in \\[0, 10\\]"):
        sample_sde(model, state, ts, sde=SDE, noise_scale=-0.5)


def test_noise_scale_contracts_a_gaussian_as_derived(generator):
    """Gaussian data N(mu, s^2) from the exact marginal at t_max, noise scaled by lambda:
    with S(t) = s^2 + sigma_X(t)^2 the variance obeys dv/dS = 2 v / S - lambda^2, so
    v(0) = lambda^2 s^2 + (1 - lambda^2) s^4 / S(t_max) (lambda = 1: the data law)."""
    n_systems, n_atoms, lam, s_x = 2000, 4, 0.5, 0.4
    state = make_state(n_systems, n_atoms, 3, generator, sde=SDE)
    mu_x = 2.0 * torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    model = GaussianModel(mu_x, s_x, state.elements.clone(), 0.5, SDE)
    s_top = s_x**2 + float(SDE.sigma_x(SDE.t_max)) ** 2
    z = remove_system_mean(
        torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64),
        state.system_idx,
        n_systems,
    )
    state = state.replace(positions=mu_x + math.sqrt(s_top) * z)
    out = sample_sde(
        model, state, get_timesteps(STEPS, SDE), sde=SDE, generator=generator, noise_scale=lam
    )
    dx = out.positions - mu_x
    var_x = float(dx.pow(2).sum()) / (dx.numel() * (1 - 1 / n_atoms))
    expected = lam**2 * s_x**2 + (1 - lam**2) * s_x**4 / s_top
    assert var_x == pytest.approx(expected, rel=0.06)
    assert expected < 0.5 * s_x**2  # far from the unscaled answer


def test_score_gain_contracts_a_gaussian_as_derived(generator):
    """Gaussian data N(mu, s^2), exact score, probability flow with the score times
    kappa(t) = 1 + gamma t: every deviation from mu shrinks by the same factor,
    (X_0 - mu) / (X_T - mu) = exp(-int_0^T kappa(t) sigma_max^2 t / S(t) dt) with
    S = s^2 + sigma_max^2 t^2, i.e. s / sqrt(S_T) times
    exp(-gamma [T - (s / sigma_max) atan(sigma_max T / s)])."""
    gain, s_x = 2.5, 0.4
    state = make_state(2, 4, 3, generator, sde=SDE)
    mu_x = 2.0 * torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64)
    model = GaussianModel(mu_x, s_x, state.elements.clone(), 0.5, SDE)
    start = remove_system_mean(
        torch.randn((state.n_atoms, 3), generator=generator, dtype=torch.float64),
        state.system_idx,
        state.n_systems,
    )
    state = state.replace(positions=mu_x + start)
    ts = get_timesteps(2000, SDE)
    plain = sample_ode(model, state, ts, sde=SDE)
    gained = sample_ode(model, state, ts, sde=SDE, score_gain=gain)
    t_top, sigma_max = float(ts[0]), SDE.sigma_max_x
    s_top = s_x**2 + (sigma_max * t_top) ** 2
    ratio_plain = s_x / math.sqrt(s_top)
    ratio = ratio_plain * math.exp(
        -gain * (t_top - s_x / sigma_max * math.atan(sigma_max * t_top / s_x))
    )
    assert torch.allclose(plain.positions - mu_x, ratio_plain * start, rtol=5e-3, atol=1e-6)
    assert torch.allclose(gained.positions - mu_x, ratio * start, rtol=5e-3, atol=1e-6)
    assert ratio < 0.5 * ratio_plain  # far from the plain flow
    assert torch.equal(gained.elements, plain.elements)  # the gain acts on positions only


def test_score_gain_scales_one_step_and_zero_is_the_plain_flow(generator):
    state = make_state(3, 4, 3, generator, sde=SDE)
    model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
    ts = torch.tensor([0.6, 0.3], dtype=torch.float64)
    plain = sample_ode(model, state, ts, sde=SDE)
    gained = sample_ode(model, state, ts, sde=SDE, score_gain=2.0)
    step_plain = plain.positions - state.positions
    factor = 1 + 2.0 * (0.6 - 0.3 / 2)  # the gain averaged over the step from 0.6 to 0.3
    assert torch.allclose(gained.positions - state.positions, factor * step_plain)
    zero = sample_ode(model, state, get_timesteps(5, SDE), sde=SDE, score_gain=0.0)
    default = sample_ode(model, state, get_timesteps(5, SDE), sde=SDE)
    assert torch.equal(zero.positions, default.positions)
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="score_gain must be a number in \\[0, 100\\]"):
            sample_ode(model, state, ts, sde=SDE, score_gain=bad)


def test_score_gain_scales_the_sde_drift(generator):
    """Without noise one reverse-SDE step from t to t - dt moves the atoms
    1 + gamma (t - dt / 2) times as far (the gain averaged over the step); with
    noise the same draws are added whatever the gain; zero gain is the plain sampler."""
    state = make_state(3, 4, 3, generator, sde=SDE)
    model = GaussianModel(state.positions.clone(), 0.3, state.elements.clone(), 0.5, SDE)
    ts = torch.tensor([0.6, 0.3], dtype=torch.float64)

    def run(gain: float, noise: float) -> torch.Tensor:
        draws = torch.Generator().manual_seed(5)
        out = sample_sde(
            model, state, ts, sde=SDE, generator=draws, noise_scale=noise, score_gain=gain
        )
        return out.positions - state.positions

    excess = 2.0 * (0.6 - 0.3 / 2)
    assert torch.allclose(run(2.0, 0.0), (1 + excess) * run(0.0, 0.0))
    assert torch.allclose(run(2.0, 1.0) - run(0.0, 1.0), excess * run(0.0, 0.0))
    default = sample_sde(model, state, ts, sde=SDE, generator=torch.Generator().manual_seed(5))
    assert torch.equal(default.positions - state.positions, run(0.0, 1.0))
    with pytest.raises(ValueError, match="score_gain must be a number in \\[0, 100\\]"):
        sample_sde(model, state, ts, sde=SDE, score_gain=-1.0)
