"""Score denoiser: symmetries, periodic invariances, batching, gradients, null embeddings,
configuration and checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.nn import (
    DENOISERS,
    DenoiserConfig,
    ScoreDenoiser,
    build_denoiser,
    cutoff_function,
    edge_attributes,
    gaussian_basis,
    with_radial_basis,
    with_step_size_embedding,
)
from tests.nn.helpers import N_CLASSES, random_batch, random_orthogonal, tiny_config, tiny_model

SYMMETRY_ATOL = 1e-10  # float64 outputs of order 0.01-1; differences are summation order
T = torch.tensor([0.3, 0.8], dtype=torch.double)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(model, batch, t=T, seed=0):
    return model(batch, t, generator=gen(seed))


def assert_same(a, b, atol=SYMMETRY_ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def test_output_shapes_and_nontrivial_values(model, batch):
    eps_x, eps_e = run(model, batch)
    assert eps_x.shape == (batch.n_atoms, 3) and eps_e.shape == (batch.n_atoms, N_CLASSES)
    assert eps_x.dtype == eps_e.dtype == torch.double
    # the symmetry tests below would pass trivially on constant outputs
    assert float(eps_x.detach().std()) > 1e-3 and float(eps_e.detach().std()) > 1e-3
    # zero mean per system, like the position noise of the forward process
    for s in range(batch.n_systems):
        assert_same(eps_x[batch.system_idx == s].mean(0), torch.zeros(3, dtype=torch.double))


def test_permutation_equivariance(model, batch):
    eps_x, eps_e = run(model, batch)
    perm = torch.cat([torch.randperm(6, generator=gen(1)), 6 + torch.randperm(4, generator=gen(2))])
    permuted = batch.replace(positions=batch.positions[perm], elements=batch.elements[perm])
    px, pe = run(model, permuted)
    assert_same(px, eps_x[perm])
    assert_same(pe, eps_e[perm])


def test_translation_invariance(model, batch):
    eps_x, eps_e = run(model, batch)
    shift = torch.tensor([[3.7, -11.2, 0.4], [-0.9, 2.5, 40.0]], dtype=torch.double)
    moved = batch.replace(positions=batch.positions + shift[batch.system_idx])
    mx, me = run(model, moved)
    assert_same(mx, eps_x)
    assert_same(me, eps_e)


@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "rotoreflection"])
def test_orthogonal_equivariance(model, batch, proper):
    """Rotating or mirroring positions and cell rows together rotates eps_x only."""
    q = random_orthogonal(3, proper)
    eps_x, eps_e = run(model, batch)
    rotated = batch.replace(positions=batch.positions @ q.T, cell=batch.cell @ q.T)
    rx, re = run(model, rotated)
    assert_same(rx, eps_x @ q.T)
    assert_same(re, eps_e)


def test_lattice_moves_and_cell_basis_change_nothing(model, batch):
    """Same periodic structure: atoms moved by lattice vectors, or another cell basis."""
    eps_x, eps_e = run(model, batch)
    rng = np.random.default_rng(4)
    moves = torch.as_tensor(rng.integers(-3, 4, (batch.n_atoms, 3)), dtype=torch.double)
    offsets = torch.einsum("na,nab->nb", moves, batch.cell[batch.system_idx])
    mx, me = run(model, batch.replace(positions=batch.positions + offsets))
    assert_same(mx, eps_x)
    assert_same(me, eps_e)
    unimodular = torch.tensor([[1, 1, 0], [0, 1, -1], [2, 0, 1]], dtype=torch.double)
    bx, be = run(model, batch.replace(cell=unimodular @ batch.cell))
    assert_same(bx, eps_x)
    assert_same(be, eps_e)


def test_batched_equals_one_by_one(model):
    batch = random_batch((6, 4, 7), seed=9)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.double)
    eps_x, eps_e = run(model, batch, t)
    for s in range(3):
        mask = batch.system_idx == s
        single = Batch(
            positions=batch.positions[mask],
            elements=batch.elements[mask],
            cell=batch.cell[s : s + 1],
            system_idx=torch.zeros(int(mask.sum()), dtype=torch.long),
            properties=batch.properties[s : s + 1],
        )
        sx, se = run(model, single, t[s : s + 1])
        assert_same(sx, eps_x[mask])
        assert_same(se, eps_e[mask])


def test_gradients_match_finite_differences():
    """d eps / d positions and d eps / d cell through the periodic edge vectors."""
    model = tiny_model(layers=2, hidden=8)
    batch = random_batch((4,), seed=6)
    t = torch.tensor([0.4], dtype=torch.double)

    def outputs(positions, cell):
        eps_x, eps_e = model(batch.replace(positions=positions, cell=cell), t, generator=gen(0))
        return eps_x, eps_e

    inputs = (batch.positions.clone().requires_grad_(True), batch.cell.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(outputs, inputs)
    # the graph is not frozen: moving one atom changes the prediction for the others
    (grad,) = torch.autograd.grad(outputs(*inputs)[0][1:].sum(), inputs[0])
    assert float(grad[0].abs().max()) > 1e-6


def test_second_derivatives_for_energy_models():
    """Double backward works (the energy-based variant differentiates a gradient)."""
    model = tiny_model(layers=1, hidden=8, vector_channels=2)
    batch = random_batch((3,), seed=8)
    t = torch.tensor([0.4], dtype=torch.double)
    weights = torch.randn(3, 3, dtype=torch.double, generator=gen(0))

    def projected(positions):
        eps_x, _ = model(batch.replace(positions=positions), t)
        return (eps_x * weights).sum()

    positions = batch.positions.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(projected, (positions,))


@pytest.mark.parametrize("radial_basis", [0, 4])
def test_edge_chunks_change_nothing(batch, radial_basis):
    """Chunked edge processing (a memory setting) gives the same outputs and gradients."""
    whole = tiny_model(edge_chunk_size=0, radial_basis=radial_basis)
    chunked = tiny_model(edge_chunk_size=7, radial_basis=radial_basis)
    positions = batch.positions.clone().requires_grad_(True)
    outputs = []
    for model in (whole, chunked):
        eps_x, eps_e = run(model, batch.replace(positions=positions))
        (grad,) = torch.autograd.grad((eps_x**2).sum() + eps_e.sum(), positions)
        outputs.append((eps_x, eps_e, grad))
    for a, b in zip(*outputs, strict=True):
        assert_same(a, b)


def test_output_is_continuous_when_an_atom_crosses_the_cutoff():
    cutoff = 3.5
    r = torch.tensor([cutoff], dtype=torch.double, requires_grad=True)
    (slope,) = torch.autograd.grad(cutoff_function(r, cutoff).sum(), r)
    assert float(cutoff_function(r.detach(), cutoff)) == 0.0 and float(slope) == 0.0
    assert float(cutoff_function(torch.zeros(1), cutoff)) == pytest.approx(2 * np.tanh(1) ** 2)

    model = tiny_model()
    cell = torch.eye(3, dtype=torch.double)[None] * 12.0  # one image only
    elements = torch.eye(N_CLASSES, dtype=torch.double)[[1, 2]]

    def pair(distance):
        positions = torch.tensor([[1.0, 1.0, 1.0], [1.0 + distance, 1.0, 1.0]]).double()
        b = Batch(positions, elements, cell, torch.zeros(2, dtype=torch.long), torch.zeros(1, 2))
        with torch.no_grad():
            return model(b.to(dtype=torch.double), torch.tensor([0.5], dtype=torch.double))

    delta = 1e-4
    inside, outside, far = pair(cutoff - delta), pair(cutoff + delta), pair(cutoff + 1.0)
    for a, b, c in zip(inside, outside, far, strict=True):
        assert_same(b, c)  # beyond the cutoff the atoms do not see each other
        assert float((a - b).abs().max()) < 1e-6  # f_cut ~ delta^2 just inside


def test_all_nan_properties_are_the_unconditional_branch(model, batch):
    nan_batch = batch.replace(properties=torch.full_like(batch.properties, float("nan")))
    eps_x, eps_e = run(model, nan_batch, seed=11)
    # the output depends on the null draws (generator seed) only ...
    again_x, again_e = run(model, nan_batch, seed=11)
    assert torch.equal(again_x, eps_x) and torch.equal(again_e, eps_e)
    other_x, _ = run(model, nan_batch, seed=12)
    assert not torch.allclose(other_x, eps_x, atol=1e-6)
    # ... not on the property embedding weights (no property information enters)
    with torch.no_grad():
        for p in model.property_embedding.parameters():
            p.add_(torch.randn_like(p))
    ux, ue = run(model, nan_batch, seed=11)
    assert_same(ux, eps_x)
    assert_same(ue, eps_e)
    # and it equals a training-mode model that nulls every property (null_probability=1)
    nulled = tiny_model(null_probability=1.0, radial_basis=model.config.radial_basis)
    nulled.load_state_dict(model.state_dict())
    tx, te = run(nulled.train(), batch, seed=11)
    assert_same(tx, eps_x)
    assert_same(te, eps_e)


def test_null_probability_acts_in_train_mode_only(batch):
    model = tiny_model(null_probability=0.5)
    eval_runs = [run(model.eval(), batch, seed=s)[0] for s in range(4)]
    for out in eval_runs[1:]:
        assert torch.equal(out, eval_runs[0])  # present properties: no randomness in eval
    train_runs = [run(model.train(), batch, seed=s)[0] for s in range(8)]
    assert any(not torch.allclose(out, eval_runs[0], atol=1e-8) for out in train_runs)
    never = tiny_model(null_probability=0.0)
    assert_same(run(never.train(), batch, seed=1)[0], run(never.eval(), batch, seed=2)[0])


def test_properties_condition_the_output(model, batch):
    eps_x, eps_e = run(model, batch)
    changed = batch.replace(properties=batch.properties + 1.0)
    cx, ce = run(model, changed)
    assert not torch.allclose(cx, eps_x, atol=1e-8) and not torch.allclose(ce, eps_e, atol=1e-8)


def test_step_size_embedding():
    model = tiny_model(step_size_embedding=True)
    batch = random_batch()
    base = model(batch, T)
    assert_same(model(batch, T, step_size=torch.zeros(2, dtype=torch.double))[0], base[0])
    half = model(batch, T, step_size=torch.full((2,), 0.5, dtype=torch.double))
    assert not torch.allclose(half[0], base[0], atol=1e-8)
    with pytest.raises(ValueError, match="step_size_embedding"):
        tiny_model()(batch, T, step_size=torch.zeros(2, dtype=torch.double))


def test_gaussian_basis_resolves_a_bond_from_a_non_bond():
    r = torch.tensor([[0.0], [2.35], [2.6], [6.5]], dtype=torch.double)
    phi = gaussian_basis(r, 6.5, 27)  # centres every 0.25 Å
    assert phi.shape == (4, 27)
    assert phi[0, 0] == 1.0 and phi[3, 26] == 1.0  # each peaks at its centre
    assert float(phi[1, 9]) == pytest.approx(math.exp(-0.5 * (0.1 / 0.25) ** 2))
    # the scalar e_ij moves by 0.06 between 2.35 and 2.6 Å; the basis by order one
    e = edge_attributes(r[1:3] ** 2, 6.5)
    assert float(e[1] - e[0]) == pytest.approx(0.06, abs=0.01)
    assert float((phi[2] - phi[1]).abs().max()) > 0.5
    for bad in (1, -2):
        with pytest.raises(ValueError, match="radial_basis must be 0"):
            tiny_config(radial_basis=bad)


def test_widened_weights_reproduce_the_model_without_a_basis(batch):
    plain = tiny_model(seed=3)
    widened = tiny_model(seed=4, radial_basis=5)
    widened.load_state_dict(with_radial_basis(plain.state_dict(), 5))
    for a, b in zip(run(plain, batch), run(widened, batch), strict=True):
        assert_same(a, b)
    # the new columns are trainable: the loss has a gradient along them
    widened.zero_grad()
    run(widened, batch)[0].square().sum().backward()
    grad = widened.egnn.layers[0].message.edge.weight.grad
    assert float(grad[:, -5:].abs().max()) > 0


@pytest.mark.parametrize("time_frequencies", [0, 3])
def test_a_score_model_widened_for_step_sizes_predicts_the_same_for_every_d(
    batch, time_frequencies
):
    plain = tiny_model(seed=3, time_frequencies=time_frequencies)
    shortcut = tiny_model(seed=4, time_frequencies=time_frequencies, step_size_embedding=True)
    shortcut.load_state_dict(with_step_size_embedding(plain.state_dict(), shortcut.config))
    for d in (0.0, 0.25, 0.9):
        step = torch.full((batch.n_systems,), d, dtype=torch.double)
        widened = shortcut(batch, T, step_size=step, generator=gen(0))
        for a, b in zip(run(plain, batch), widened, strict=True):
            assert_same(a, b)
    # the new columns are trainable, and a random model is not the plain one
    shortcut.zero_grad()
    shortcut(batch, T, step_size=T / 2, generator=gen(0))[0].square().sum().backward()
    grad = shortcut.node_embedding.weight.grad
    start = shortcut.time_embedding.dim + shortcut.property_embedding.dim
    assert float(grad[:, start : start + shortcut.step_size.dim].abs().max()) > 0
    fresh = tiny_model(seed=4, time_frequencies=time_frequencies, step_size_embedding=True)
    with torch.no_grad():
        assert float((run(fresh, batch)[0] - run(plain, batch)[0]).abs().max()) > 1e-3


def test_step_size_widening_refuses_mismatched_weights():
    with pytest.raises(ValueError, match="needs a config with step_size_embedding"):
        with_step_size_embedding(tiny_model().state_dict(), tiny_config())
    already = tiny_model(step_size_embedding=True).state_dict()
    with pytest.raises(ValueError, match="node_embedding takes 21 inputs; .* takes 20"):
        with_step_size_embedding(already, tiny_config(step_size_embedding=True))


def test_config_json_round_trip_and_registry():
    config = tiny_config(null_probability=0.25, time_frequencies=3, step_size_embedding=True)
    text = json.dumps(config.to_dict())
    assert DenoiserConfig.from_dict(json.loads(text)) == config
    assert DenoiserConfig.from_json(config.to_json()) == config
    assert DenoiserConfig(n_classes=4).to_dict()["cutoff"] == 6.5
    assert isinstance(build_denoiser(json.loads(text)), DENOISERS["score"])
    with pytest.raises(ValueError, match="unknown DenoiserConfig fields"):
        DenoiserConfig.from_dict({"n_classes": 3, "hiden": 16})
    with pytest.raises(ValueError, match="unknown denoiser kind"):
        build_denoiser(tiny_config(kind="energy-typo"))
    with pytest.raises(ValueError, match="null_probability"):
        tiny_config(null_probability=-0.1)
    with pytest.raises(ValueError, match="property_names"):
        tiny_config(property_names="shear_modulus")


def test_state_dict_round_trip_reproduces_outputs(tmp_path, model, batch):
    (tmp_path / "config.json").write_text(model.config.to_json())
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    config = DenoiserConfig.from_json((tmp_path / "config.json").read_text())
    torch.manual_seed(123)  # different initial weights
    loaded = build_denoiser(config).double().eval()
    loaded.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    nan_batch = batch.replace(
        properties=batch.properties.clone().index_fill_(1, torch.tensor([0]), float("nan"))
    )
    for b in (batch, nan_batch):
        ex, ee = run(model, b, seed=5)
        lx, le = run(loaded, b, seed=5)
        assert torch.equal(lx, ex) and torch.equal(le, ee)


def test_bad_input_is_named(model, batch):
    with pytest.raises(ValueError, match="properties must have shape"):
        model(batch.replace(properties=batch.properties[:, :1]), T)
    with pytest.raises(ValueError, match="elements must have shape"):
        model(batch.replace(elements=batch.elements[:, :2]), T)
    with pytest.raises(ValueError, match="t must have shape"):
        model(batch, torch.zeros(3, dtype=torch.double))
    with pytest.raises(TypeError, match="dtype"):
        model(batch.to(dtype=torch.float32), T)
    scalar_t = model(batch, torch.tensor(0.3, dtype=torch.double))
    assert_same(scalar_t[0], model(batch, torch.full((2,), 0.3, dtype=torch.double))[0])
    assert isinstance(model, ScoreDenoiser)
