"""Batched HMC: stationary distribution of a harmonic energy, small-step acceptance,
leapfrog energy conservation, non-finite energies, reproducibility, and the HMC
denoising sampler on a tiny energy denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from amtoolkit.diffusion import (
    HMC_STATS_KEYS,
    MaterialSDE,
    draw_momenta,
    get_timesteps,
    hmc_step,
    sample_hmc,
    sample_sde,
)
from amtoolkit.nn import EnergyDenoiser
from tests.diffusion.toy_models import make_state, zero_model
from tests.nn.helpers import N_CLASSES, PROPERTY_NAMES, tiny_config

SIZES = (6, 6, 6, 6)
WIDTH = 0.5  # s of the harmonic energy, Å
VARIANCE_RTOL = 0.05  # statistical error of the chain averages is ~1-2%


def harmonic_state(seed: int = 0):
    """Systems of SIZES atoms with random centres X0 (the chain starts at X0)."""
    generator = torch.Generator().manual_seed(seed)
    state = make_state(len(SIZES), SIZES[0], N_CLASSES, generator)
    return state, state.positions.clone()


def harmonic(centres: torch.Tensor, system_idx: torch.Tensor, n_systems: int, width=WIDTH):
    """E = |X - X0|^2 / (2 s^2) per system, with its gradient."""

    def energy_fn(positions):
        d = positions - centres
        per_atom = (d * d).sum(-1) / (2 * width**2)
        energy = per_atom.new_zeros(n_systems).index_add_(0, system_idx, per_atom)
        return energy, d / width**2

    return energy_fn


def test_draw_momenta_is_mean_free_and_system_by_system():
    p, u = draw_momenta([5, 3], torch.Generator().manual_seed(3))
    assert p.shape == (8, 3) and u.shape == (2,)
    torch.testing.assert_close(p[:5].mean(0), torch.zeros(3, dtype=torch.double))
    torch.testing.assert_close(p[5:].mean(0), torch.zeros(3, dtype=torch.double))
    assert bool(((u >= 0) & (u < 1)).all())
    # the first system of a batch gets what a lone system gets from the same generator
    p1, u1 = draw_momenta([5], torch.Generator().manual_seed(3))
    assert torch.equal(p1, p[:5]) and torch.equal(u1, u[:1])


@pytest.mark.parametrize(
    ("dt", "n_leapfrog", "acceptance_range"),
    [(0.05, 15, (0.9, 1.0)), (0.6, 4, (0.2, 0.8))],
    ids=["accurate-steps", "coarse-steps"],
)
def test_harmonic_energy_is_sampled_with_the_right_variance(dt, n_leapfrog, acceptance_range):
    """exp(-E) on the plane of fixed centre of mass: <|X - X0|^2> = 3 (n - 1) s^2.

    With the coarse steps (omega dt = 1.2) leapfrog alone would sample a variance ~1.5x
    too large; the Metropolis test removes that bias."""
    state, centres = harmonic_state()
    energy_fn = harmonic(centres, state.system_idx, state.n_systems)
    generator = torch.Generator().manual_seed(11)
    com0 = torch.zeros(4, 3, dtype=torch.double).index_add_(0, state.system_idx, state.positions)
    squares, acceptance = [], []
    for iteration in range(1200):
        state, _, stats = hmc_step(energy_fn, state, dt, n_leapfrog, generator)
        acceptance.append(stats["acceptance"])
        if iteration >= 50:
            d = state.positions - centres
            squares.append(float((d * d).sum()) / len(SIZES))
    expected = 3 * (SIZES[0] - 1) * WIDTH**2
    assert abs(sum(squares) / len(squares) / expected - 1.0) < VARIANCE_RTOL
    low, high = acceptance_range
    assert low < sum(acceptance) / len(acceptance) < high
    com = torch.zeros(4, 3, dtype=torch.double).index_add_(0, state.system_idx, state.positions)
    torch.testing.assert_close(com, com0)  # momenta and forces are mean-free


def test_tiny_steps_are_always_accepted():
    state, centres = harmonic_state()
    state = state.replace(positions=state.positions + 0.3)  # away from the minimum
    energy_fn = harmonic(centres, state.system_idx, state.n_systems)
    new, accepted, stats = hmc_step(energy_fn, state, 1e-7, 15, torch.Generator().manual_seed(0))
    assert bool(accepted.all()) and stats["acceptance"] == 1.0
    assert float(stats["delta_h"].abs().max()) < 1e-9
    assert not torch.equal(new.positions, state.positions)


def test_leapfrog_energy_error_is_second_order():
    state, centres = harmonic_state()
    energy_fn = harmonic(centres, state.system_idx, state.n_systems)
    errors = []
    for dt, n in ((0.02, 15), (0.01, 30)):  # same seed and trajectory length: same momenta
        _, _, stats = hmc_step(energy_fn, state, dt, n, torch.Generator().manual_seed(4))
        errors.append(float(stats["delta_h"].abs().mean()))
    assert errors[0] < 1e-2
    assert 3.0 < errors[0] / errors[1] < 5.0  # |dH| ~ dt^2


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_energy_rejects_that_system_only(bad):
    state, centres = harmonic_state()
    inner = harmonic(centres, state.system_idx, state.n_systems)
    calls = []

    def energy_fn(positions):
        energy, gradient = inner(positions)
        calls.append(1)
        if len(calls) == 6:  # in the middle of the trajectory, system 2 only
            energy = energy.clone()
            energy[2] = bad
            gradient = gradient.clone()
            gradient[state.system_idx == 2] = bad
        return energy, gradient

    new, accepted, stats = hmc_step(energy_fn, state, 1e-4, 15, torch.Generator().manual_seed(0))
    assert stats["n_nonfinite"] == 1 and stats["nonfinite"].tolist() == [0, 0, 1, 0]
    assert accepted.tolist() == [True, True, False, True]
    assert bool(torch.isfinite(new.positions).all())
    mask = state.system_idx == 2
    assert torch.equal(new.positions[mask], state.positions[mask])


def test_seed_reproducibility():
    state, centres = harmonic_state()
    energy_fn = harmonic(centres, state.system_idx, state.n_systems)
    runs = [
        hmc_step(energy_fn, state, 0.3, 5, torch.Generator().manual_seed(seed))[0].positions
        for seed in (8, 8, 9)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_bad_arguments_raise():
    state, centres = harmonic_state()
    energy_fn = harmonic(centres, state.system_idx, state.n_systems)
    with pytest.raises(ValueError, match="step_size must have shape"):
        hmc_step(energy_fn, state, torch.ones(3, dtype=torch.double))
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc_step(energy_fn, state, 0.1, 0)
    with pytest.raises(ValueError, match="energy model"):
        sample_hmc(zero_model, state, get_timesteps(3))


# ----------------------------------------------------------------- sample_hmc


@pytest.fixture
def energy_denoiser() -> EnergyDenoiser:
    torch.manual_seed(0)
    return EnergyDenoiser(tiny_config(kind="energy")).double().eval()


def small_state(seed: int = 5):
    return make_state(
        2, 8, N_CLASSES, torch.Generator().manual_seed(seed), n_properties=len(PROPERTY_NAMES)
    )


def test_sample_hmc_runs_and_reports(energy_denoiser):
    ts = get_timesteps(4)  # 0.99, 0.663, 0.337, 0.01, 0: HMC before the last two steps
    stats, steps = [], []
    out = sample_hmc(
        energy_denoiser,
        small_state(),
        ts,
        generator=torch.Generator().manual_seed(1),
        callback=lambda record: steps.append(record["i"]),
        stats=stats,
        adapt=True,
    )
    assert bool(torch.isfinite(out.positions).all() and torch.isfinite(out.elements).all())
    assert steps == [0, 1, 2, 3]
    assert [s["t"] for s in stats] == pytest.approx([0.99 - 2 * 0.98 / 3, 0.01])
    assert all(tuple(s) == HMC_STATS_KEYS for s in stats)
    assert all(0.0 <= s["acceptance"] <= 1.0 and s["nonfinite"] == 0 for s in stats)
    first = stats[0]
    assert stats[1]["dt0"] == pytest.approx(0.4 * math.exp(0.5 * (first["acceptance"] - 0.5)))


def test_sample_hmc_outside_its_range_is_sample_sde(energy_denoiser):
    ts = get_timesteps(4)
    sde = MaterialSDE()
    plain = sample_sde(
        energy_denoiser, small_state(), ts, sde=sde, generator=torch.Generator().manual_seed(2)
    )
    stats = []
    without = sample_hmc(
        energy_denoiser,
        small_state(),
        ts,
        sde=sde,
        generator=torch.Generator().manual_seed(2),
        hmc_range=(0.0, 0.005),  # below every evaluated time (the grid ends 0.01, 0)
        stats=stats,
    )
    assert stats == []
    assert torch.equal(plain.positions, without.positions)
    assert torch.equal(plain.elements, without.elements)
    with_hmc = sample_hmc(
        energy_denoiser,
        small_state(),
        ts,
        sde=sde,
        generator=torch.Generator().manual_seed(2),
        dt0=0.1,
        stats=stats,
    )
    assert len(stats) == 2 and sum(s["acceptance"] for s in stats) > 0
    assert not torch.equal(plain.positions, with_hmc.positions)
