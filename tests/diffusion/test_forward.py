"""Forward noising, the training loss and the prior (docs/diffusion.md, *Forward process*)."""

from __future__ import annotations

import math

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion import (
    ELEMENT_LOSS_WEIGHT,
    MaterialSDE,
    add_noise,
    denoising_loss,
    sample_prior,
    sample_time,
)
from amtoolkit.diffusion._batch_ops import system_mean
from tests.diffusion.toy_models import make_state, zero_model

EXACT = 1e-12
"""Tolerance for identities that hold to round-off in float64."""

SDE = MaterialSDE(sigma_max_x=1.7, sigma_max_e=1.2)


def _clean_batch(n_systems: int, n_atoms: int, n_classes: int, generator) -> Batch:
    """Random 'data': positions in a 6 Å cube, one-hot elements."""
    state = make_state(n_systems, n_atoms, n_classes, generator)
    classes = torch.randint(n_classes, (state.n_atoms,), generator=generator)
    return state.replace(elements=torch.nn.functional.one_hot(classes, n_classes).double())


def test_add_noise_formula_and_mean_free_position_noise(generator):
    batch = _clean_batch(5, 7, 3, generator)
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=torch.float64)
    noisy, eps_x, eps_e = add_noise(batch, t, SDE, generator)
    assert eps_x.shape == (35, 3) and eps_e.shape == (35, 3)
    means = system_mean(eps_x, batch.system_idx, batch.n_systems)
    torch.testing.assert_close(means, torch.zeros_like(means), atol=EXACT, rtol=0)
    t_atom = t[batch.system_idx].unsqueeze(-1)
    torch.testing.assert_close(noisy.positions, batch.positions + 1.7 * t_atom * eps_x)
    alpha, sigma = torch.cos(math.pi * t_atom / 2), 1.2 * torch.sin(math.pi * t_atom / 2)
    torch.testing.assert_close(noisy.elements, alpha * batch.elements + sigma * eps_e)
    # the centre of mass of each system is not noised
    com_shift = system_mean(noisy.positions - batch.positions, batch.system_idx, 5)
    torch.testing.assert_close(com_shift, torch.zeros_like(com_shift), atol=EXACT, rtol=0)
    assert noisy.cell is batch.cell and noisy.properties is batch.properties


def test_add_noise_statistics(generator):
    """Per-component position noise has variance 1 - 1/n (one of n dof per axis removed)."""
    n_systems, n_atoms = 400, 5
    batch = _clean_batch(n_systems, n_atoms, 4, generator)
    t = torch.full((n_systems,), 0.6, dtype=torch.float64)
    noisy, eps_x, eps_e = add_noise(batch, t, SDE, generator)
    n = eps_x.numel()
    stat_tol = 5 * math.sqrt(2 / n)  # five standard errors of a variance estimate
    assert float(eps_x.var()) == pytest.approx(1 - 1 / n_atoms, rel=stat_tol)
    assert float(eps_e.var()) == pytest.approx(1.0, rel=stat_tol)
    displacement = noisy.positions - batch.positions
    expected_std = 1.7 * 0.6 * math.sqrt(1 - 1 / n_atoms)
    assert float(displacement.std()) == pytest.approx(expected_std, rel=stat_tol)


def test_add_noise_follows_dtype_and_generator():
    batch = _clean_batch(2, 3, 3, torch.Generator().manual_seed(0)).to(dtype=torch.float32)
    t = torch.tensor([0.3, 0.4])
    first = add_noise(batch, t, SDE, torch.Generator().manual_seed(7))
    second = add_noise(batch, t, SDE, torch.Generator().manual_seed(7))
    assert first[0].positions.dtype == torch.float32 and first[1].dtype == torch.float32
    assert torch.equal(first[0].positions, second[0].positions)
    assert torch.equal(first[2], second[2])
    with pytest.raises(ValueError, match="n_systems"):
        add_noise(batch, torch.tensor([0.3]), SDE)


def test_sample_time_range(generator):
    t = sample_time(10_000, SDE, generator, dtype=torch.float64)
    assert float(t.min()) >= SDE.t_min and float(t.max()) <= SDE.t_max
    assert float(t.mean()) == pytest.approx(0.5, abs=0.01)


def test_sample_time_focus_favours_its_window(generator):
    low, high, fraction = 0.2, 0.6, 0.5
    t = sample_time(20_000, SDE, generator, dtype=torch.float64, focus=(low, high))
    assert float(t.min()) >= SDE.t_min and float(t.max()) <= SDE.t_max
    inside = float(((t >= low) & (t <= high)).double().mean())
    expected = fraction + (1 - fraction) * (high - low) / (SDE.t_max - SDE.t_min)
    assert inside == pytest.approx(expected, abs=0.015)  # ~4 sigma at 20000 draws
    below = float((t < low).double().mean())  # the uniform half still reaches every t
    assert below == pytest.approx((1 - fraction) * (low - SDE.t_min) / 0.98, abs=0.015)
    only = sample_time(1000, SDE, generator, focus=(low, high), focus_fraction=1.0)
    assert float(only.min()) >= low and float(only.max()) <= high


def test_sample_time_without_focus_draws_as_before():
    a = sample_time(64, SDE, torch.Generator().manual_seed(3), dtype=torch.float64)
    b = sample_time(
        64,
        SDE,
        torch.Generator().manual_seed(3),
        dtype=torch.float64,
        focus=(0.2, 0.6),
        focus_fraction=0.0,
    )
    assert torch.equal(a, b)  # fraction 0: the same uniform draws


@pytest.mark.parametrize(
    ("focus", "fraction", "message"),
    [
        ((0.6, 0.2), 0.5, "low < high"),
        ((0.0, 0.5), 0.5, "t_min <= low"),
        ((0.2, 1.0), 0.5, "high <= t_max"),
        ((0.2,), 0.5, "two times"),
        ((0.2, 0.6), 1.5, "fraction must lie in"),
    ],
)
def test_sample_time_focus_rejects_bad_windows(focus, fraction, message):
    with pytest.raises(ValueError, match=message):
        sample_time(4, SDE, focus=focus, focus_fraction=fraction)


def test_loss_is_zero_for_an_oracle(generator):
    batch = _clean_batch(4, 6, 3, generator)

    def oracle(noisy: Batch, t: torch.Tensor):
        t_atom = t[noisy.system_idx].unsqueeze(-1)
        eps_x = (noisy.positions - batch.positions) / SDE.sigma_x(t_atom)
        eps_e = (noisy.elements - SDE.alpha_e(t_atom) * batch.elements) / SDE.sigma_e(t_atom)
        return eps_x, eps_e

    loss, per_system, t = denoising_loss(oracle, batch, SDE, generator)
    assert per_system.shape == (4,) and t.shape == (4,)
    assert float(loss) < EXACT
    assert float(per_system.abs().max()) < EXACT
    assert bool(((t >= SDE.t_min) & (t <= SDE.t_max)).all())


def test_loss_of_zero_model_is_noise_power(generator):
    """eps_hat = 0 gives E|eps_x|^2 + 0.5 E|eps_e|^2 = (1 - 1/n) + 0.5 per component."""
    n_atoms = 4
    batch = _clean_batch(500, n_atoms, 3, generator)
    loss, per_system, _ = denoising_loss(zero_model, batch, SDE, generator)
    expected = (1 - 1 / n_atoms) + ELEMENT_LOSS_WEIGHT * 1.0
    assert float(loss) == pytest.approx(expected, rel=0.03)  # ~10 standard errors


def test_loss_matches_manual_mse_and_weights(generator):
    """Fixed t and a model with known errors: loss = mean|dx|^2/3 + 0.5 mean|de|^2/3."""
    sizes = [3, 5]  # systems of different size: the scalar weights atoms, per-system doesn't
    batch = _clean_batch(1, 3, 3, generator)
    other = _clean_batch(1, 5, 3, generator)
    batch = Batch(
        positions=torch.cat([batch.positions, other.positions]),
        elements=torch.cat([batch.elements, other.elements]),
        cell=torch.cat([batch.cell, other.cell]),
        system_idx=torch.repeat_interleave(torch.arange(2), torch.tensor(sizes)),
        properties=torch.zeros((2, 0), dtype=torch.float64),
    )
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    seen = {}

    def shifted(noisy: Batch, t_model: torch.Tensor):
        seen["t"] = t_model
        # error 1 on each position component, 2 on each element component
        eps_x = (noisy.positions - batch.positions) / SDE.sigma_x(t_model[noisy.system_idx, None])
        alpha = SDE.alpha_e(t_model[noisy.system_idx, None])
        eps_e = (noisy.elements - alpha * batch.elements) / SDE.sigma_e(
            t_model[noisy.system_idx, None]
        )
        return eps_x + 1.0, eps_e + 2.0

    loss, per_system, t_out = denoising_loss(shifted, batch, SDE, generator, t=t)
    assert torch.equal(seen["t"], t) and torch.equal(t_out, t)
    expected = 1.0 + ELEMENT_LOSS_WEIGHT * 4.0
    torch.testing.assert_close(per_system, torch.full((2,), expected, dtype=torch.float64))
    assert float(loss) == pytest.approx(expected, abs=EXACT)


def test_loss_backpropagates(generator):
    batch = _clean_batch(2, 4, 3, generator).to(dtype=torch.float32)
    weight = torch.nn.Parameter(torch.tensor(0.5))

    def model(noisy: Batch, t: torch.Tensor):
        return weight * noisy.positions, weight * noisy.elements

    loss, _, _ = denoising_loss(model, batch, SDE, generator)
    loss.backward()
    assert weight.grad is not None and torch.isfinite(weight.grad)


def test_prior_uniform_in_triclinic_cell(generator):
    cell = torch.tensor(
        [[[6.0, 0.0, 0.0], [1.5, 5.0, 0.0], [0.5, 1.0, 7.0]]], dtype=torch.float64
    ).expand(3, 3, 3)
    n_atoms = torch.tensor([2000, 0, 3000])
    state = sample_prior(cell, n_atoms, 4, SDE, generator)
    assert state.n_systems == 3 and state.n_atoms == 5000
    assert state.atoms_per_system.tolist() == [2000, 0, 3000]
    assert state.properties.shape == (3, 0)
    fractional = torch.linalg.solve(cell[0].T, state.positions.T).T  # [N, 3]
    assert float(fractional.min()) >= 0.0 and float(fractional.max()) < 1.0
    stat_tol = 5 * math.sqrt(1 / 12 / fractional.numel())
    assert float(fractional.mean()) == pytest.approx(0.5, abs=stat_tol)
    assert float(fractional.var()) == pytest.approx(1 / 12, rel=0.03)
    assert float(state.elements.std()) == pytest.approx(1.2, rel=0.02)
    assert float(state.elements.mean()) == pytest.approx(0.0, abs=0.02)


def test_prior_dtype_properties_and_errors(generator):
    cell = 5.0 * torch.eye(3).expand(2, 3, 3)
    props = torch.tensor([[0.5, math.nan], [1.0, 2.0]])
    state = sample_prior(cell, [3, 4], 3, SDE, generator, properties=props)
    assert state.positions.dtype == torch.float32 and state.elements.dtype == torch.float32
    assert torch.equal(state.properties.isnan(), props.isnan())
    assert state.system_idx.tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="n_atoms"):
        sample_prior(cell, [3], 3, SDE, generator)
    with pytest.raises(ValueError, match="cell"):
        sample_prior(cell[0], [3], 3, SDE, generator)
    with pytest.raises(ValueError, match="properties"):
        sample_prior(cell, [3, 4], 3, SDE, generator, properties=torch.zeros(3, 1))
    a = sample_prior(cell, [3, 4], 3, SDE, torch.Generator().manual_seed(3))
    b = sample_prior(cell, [3, 4], 3, SDE, torch.Generator().manual_seed(3))
    assert torch.equal(a.positions, b.positions) and torch.equal(a.elements, b.elements)
