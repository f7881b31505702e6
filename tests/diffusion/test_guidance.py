"""Classifier-free guidance (docs/diffusion.md, *Classifier-free guidance*)."""

from __future__ import annotations

import math

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion import MaterialSDE, get_timesteps, guided, sample_sde
from tests.diffusion.toy_models import RecordingModel, make_state

EXACT = 1e-12
"""Round-off tolerance in float64."""

NULL_VALUE = -7.0
"""What the toy model 'predicts' for a system whose properties are all null."""


def property_model(batch: Batch, t: torch.Tensor):
    """Toy model with known branches: a per-system value v (sum of the properties, or
    NULL_VALUE when all are null), eps_x = v + 0.1 X, eps_e = 2 v + t."""
    props = batch.properties
    all_null = props.isnan().all(dim=-1)
    value = torch.where(
        all_null,
        torch.full_like(all_null, NULL_VALUE, dtype=props.dtype),
        props.nan_to_num(0.0).sum(dim=-1),
    )  # [S]
    value_atom = value[batch.system_idx].unsqueeze(-1)
    eps_x = value_atom + 0.1 * batch.positions
    eps_e = 2.0 * value_atom + t[batch.system_idx].unsqueeze(-1) + 0.0 * batch.elements
    return eps_x, eps_e


def _batch(generator):
    state = make_state(3, 4, 3, generator, n_properties=2)
    return state.replace(
        properties=torch.tensor([[0.5, 1.0], [-1.0, math.nan], [2.0, 0.25]], dtype=torch.float64)
    )


def test_zero_weight_is_the_conditional_model(generator):
    batch = _batch(generator)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    recorder = RecordingModel(property_model)
    eps_x, eps_e = guided(recorder, 0.0)(batch, t)
    ref_x, ref_e = property_model(batch, t)
    assert torch.equal(eps_x, ref_x) and torch.equal(eps_e, ref_e)
    assert [n for n, _ in recorder.calls] == [3]


@pytest.mark.parametrize("w", [0.25, 1.0, 2.5])
def test_guided_output_is_the_cfg_combination(w, generator):
    batch = _batch(generator)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    recorder = RecordingModel(property_model)
    eps_x, eps_e = guided(recorder, w)(batch, t)
    cond_x, cond_e = property_model(batch, t)
    null = batch.replace(properties=torch.full_like(batch.properties, math.nan))
    uncond_x, uncond_e = property_model(null, t)
    torch.testing.assert_close(eps_x, (1 + w) * cond_x - w * uncond_x, atol=EXACT, rtol=0)
    torch.testing.assert_close(eps_e, (1 + w) * cond_e - w * uncond_e, atol=EXACT, rtol=0)
    # by hand for system 0 (v = 1.5 conditional, -7 unconditional): the 0.1 X and t terms cancel
    x0 = batch.positions[0]
    expected_x0 = (1 + w) * 1.5 - w * NULL_VALUE + 0.1 * x0
    torch.testing.assert_close(eps_x[0], expected_x0, atol=EXACT, rtol=0)
    # both branches in one call on a doubled batch
    assert [n for n, _ in recorder.calls] == [6]


def test_icg_uses_training_rows(generator):
    batch = _batch(generator)
    t = torch.full((3,), 0.4, dtype=torch.float64)
    table = torch.tensor([[3.0, -0.5]], dtype=torch.float64)  # one row: the ICG branch is known
    w = 0.25
    eps_x, _ = guided(property_model, w, icg_properties=table)(batch, t)
    cond_x, _ = property_model(batch, t)
    icg_x, _ = property_model(batch.replace(properties=table.expand(3, 2)), t)
    torch.testing.assert_close(eps_x, (1 + w) * cond_x - w * icg_x, atol=EXACT, rtol=0)


def test_icg_draws_rows_reproducibly():
    table = torch.arange(20, dtype=torch.float64).reshape(10, 2)
    seen = []

    def spy(batch, t, generator=None):
        seen.append(batch.properties[batch.n_systems // 2 :].clone())
        return property_model(batch, t)

    batch = _batch(torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.4, dtype=torch.float64)
    for _ in range(2):
        guided(spy, 1.0, icg_properties=table, generator=torch.Generator().manual_seed(9))(batch, t)
    assert torch.equal(seen[0], seen[1])
    rows = {tuple(r) for r in table.tolist()}
    assert all(tuple(r) in rows for r in seen[0].tolist())


def test_generator_is_passed_to_the_model(generator):
    received = []

    def model(batch, t, generator=None):
        received.append(generator)
        return property_model(batch, t)

    g = torch.Generator().manual_seed(1)
    batch = _batch(generator)
    guided(model, 1.0, generator=g)(batch, torch.full((3,), 0.5, dtype=torch.float64))
    guided(model, 0.0, generator=g)(batch, torch.full((3,), 0.5, dtype=torch.float64))
    assert received == [g, g]


def test_guided_model_runs_in_a_sampler(generator):
    state = make_state(2, 3, 3, generator, n_properties=2)
    out = sample_sde(
        guided(property_model, 1.0), state, get_timesteps(5), generator=generator, sde=MaterialSDE()
    )
    assert out.positions.shape == state.positions.shape
    assert bool(torch.isfinite(out.positions).all())


def test_bad_arguments(generator):
    with pytest.raises(ValueError, match="finite"):
        guided(property_model, math.inf)
    with pytest.raises(ValueError, match="icg_properties"):
        guided(property_model, 1.0, icg_properties=torch.zeros(0, 2))
    model = guided(property_model, 1.0, icg_properties=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="property columns"):
        model(_batch(generator), torch.full((3,), 0.5, dtype=torch.float64))
