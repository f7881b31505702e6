"""Time, step-size and property embeddings; null embeddings and random nulling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from amtoolkit.nn.embeddings import (
    PropertyEmbedding,
    StepSizeEmbedding,
    TimeEmbedding,
    fourier_features,
)

EXACT = 1e-12
N_SIGMA = 5.0  # width of statistical acceptance bands


def test_fourier_features_known_values():
    t = torch.tensor([0.25, 0.5], dtype=torch.double)
    got = fourier_features(t, 2)
    expected = torch.tensor(
        [
            [0.25, math.sin(math.pi / 4), math.sin(math.pi / 2), math.cos(math.pi / 4), 0.0],
            [0.5, 1.0, 0.0, 0.0, -1.0],
        ],
        dtype=torch.double,
    )
    torch.testing.assert_close(got, expected, atol=EXACT, rtol=0)
    assert TimeEmbedding(0)(t).shape == (2, 1) and TimeEmbedding(3).dim == 7
    assert torch.equal(TimeEmbedding(0)(t)[:, 0], t)
    assert StepSizeEmbedding(2)(t).shape == (2, 5)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_embedding(null_probability: float = 0.3, n_properties: int = 2) -> PropertyEmbedding:
    torch.manual_seed(1)
    return PropertyEmbedding(n_properties, 8, null_probability).double()


def test_present_properties_are_linear_then_layernorm_per_property():
    emb = make_embedding().eval()
    with torch.no_grad():
        emb.norm_weight.uniform_(0.5, 1.5)
        emb.norm_bias.uniform_(-0.5, 0.5)
    y = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.7, 0.0]], dtype=torch.double)
    out = emb(y).view(3, 2, 8)
    for i in range(2):
        linear = nn.Linear(1, 8).double()
        norm = nn.LayerNorm(8).double()
        with torch.no_grad():
            linear.weight.copy_(emb.weight[i][:, None])
            linear.bias.copy_(emb.bias[i])
            norm.weight.copy_(emb.norm_weight[i])
            norm.bias.copy_(emb.norm_bias[i])
            torch.testing.assert_close(out[:, i], norm(linear(y[:, i : i + 1])))
    assert out.shape == (3, 2, 8) and emb.dim == 16


def test_null_draws_depend_on_the_generator_seed_only():
    emb = make_embedding().eval()
    nan = float("nan")
    y1 = torch.tensor([[nan, 0.5], [1.0, nan]], dtype=torch.double)
    y2 = torch.tensor([[nan, -3.0], [nan, nan]], dtype=torch.double)  # other entries differ

    def run(y, seed):
        return emb(y, generator=gen(seed)).view(2, 2, 8)

    draws = torch.randn(2, 2, 8, generator=gen(7), dtype=torch.double)
    a, b = run(y1, 7), run(y2, 7)
    torch.testing.assert_close(a[0, 0], draws[0, 0], atol=EXACT, rtol=0)
    torch.testing.assert_close(a[1, 1], draws[1, 1], atol=EXACT, rtol=0)
    torch.testing.assert_close(b[0, 0], a[0, 0], atol=EXACT, rtol=0)
    torch.testing.assert_close(b[1, 1], a[1, 1], atol=EXACT, rtol=0)
    assert not torch.allclose(run(y1, 8)[0, 0], a[0, 0])
    # present entries do not depend on the generator
    torch.testing.assert_close(run(y1, 8)[0, 1], a[0, 1], atol=EXACT, rtol=0)


def test_training_nulls_each_entry_with_the_configured_probability():
    p = 0.3
    emb = make_embedding(p)
    y = torch.randn(4000, 2, dtype=torch.double)
    embedded = emb.eval()(y).view(-1, 2, 8)
    train = emb.train()(y, generator=gen(3)).view(-1, 2, 8)
    nulled = (train - embedded).abs().amax(-1) > EXACT  # [S, m]
    n = nulled.numel()
    assert abs(float(nulled.double().mean()) - p) < N_SIGMA * math.sqrt(p * (1 - p) / n)
    # each property is nulled independently, per system
    for i in range(2):
        frac = float(nulled[:, i].double().mean())
        assert abs(frac - p) < N_SIGMA * math.sqrt(p * (1 - p) / nulled.shape[0])
    # the nulled entries are the draws the generator gives in eval mode for NaN
    draws = emb.eval()(y * float("nan"), generator=gen(3))
    torch.testing.assert_close(train[nulled], draws.view(-1, 2, 8)[nulled], atol=EXACT, rtol=0)
    # eval mode never nulls present properties, whatever the probability
    torch.testing.assert_close(emb.eval()(y, generator=gen(3)), embedded.view(-1, 16))


def test_null_probability_one_and_zero():
    y = torch.randn(10, 2, dtype=torch.double)
    all_null = make_embedding(1.0).train()(y, generator=gen(0))
    nan_eval = make_embedding(1.0).eval()(y * float("nan"), generator=gen(0))
    torch.testing.assert_close(all_null, nan_eval, atol=EXACT, rtol=0)
    never = make_embedding(0.0)
    torch.testing.assert_close(never.train()(y), never.eval()(y), atol=EXACT, rtol=0)


def test_null_draws_are_standard_normal():
    emb = make_embedding().eval()
    y = torch.full((3000, 2), float("nan"), dtype=torch.double)
    out = emb(y, generator=gen(4)).detach()
    n = out.numel()
    assert abs(float(out.mean())) < N_SIGMA / math.sqrt(n)
    assert abs(float(out.var()) - 1.0) < N_SIGMA * math.sqrt(2.0 / n)


def test_nan_properties_give_finite_gradients():
    emb = make_embedding().train()
    y = torch.tensor([[float("nan"), 0.4], [1.0, -0.3]], dtype=torch.double)
    emb(y, generator=gen(0)).pow(2).sum().backward()
    for p in emb.parameters():
        assert torch.isfinite(p.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="null_probability"):
        PropertyEmbedding(2, 8, 1.5)
    with pytest.raises(ValueError, match="shape"):
        make_embedding()(torch.zeros(3, 3, dtype=torch.double))
    assert make_embedding(n_properties=0)(torch.zeros(4, 0)).shape == (4, 0)
