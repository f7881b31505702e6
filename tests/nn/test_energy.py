"""Energy denoiser: eps = gradient of S (finite differences), symmetries, batching,
double backprop in training, no_grad use and the DENOISERS registry."""

from __future__ import annotations

import pytest
import torch

from amtoolkit.diffusion import MaterialSDE, denoising_loss
from amtoolkit.nn import DENOISERS, GAMMA_INIT, EnergyDenoiser, build_denoiser
from tests.nn.helpers import N_CLASSES, random_batch, random_orthogonal, tiny_config

SYMMETRY_ATOL = 1e-10  # float64, differences are summation order only
FD_STEP = 1e-5  # Å (and element-feature units) for central differences
FD_ATOL = 1e-8  # central-difference error ~ FD_STEP^2 * S''' plus round-off / FD_STEP
T = torch.tensor([0.3, 0.8], dtype=torch.double)
SDE = MaterialSDE()


def energy_model(seed: int = 0, **changes) -> EnergyDenoiser:
    torch.manual_seed(seed)
    return EnergyDenoiser(tiny_config(kind="energy", **changes)).double().eval()


@pytest.fixture
def model() -> EnergyDenoiser:
    return energy_model()


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def potential(model, batch, t=T):
    return model.potential(batch, t, generator=gen())


def run(model, batch, t=T):
    return model(batch, t, generator=gen())


def assert_same(a, b, atol=SYMMETRY_ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def central_difference(fn, x: torch.Tensor) -> torch.Tensor:
    """d sum(fn(x)) / dx by central differences, entry by entry."""
    grad = torch.zeros_like(x)
    for index in range(x.numel()):
        step = torch.zeros_like(x).view(-1)
        step[index] = FD_STEP
        step = step.view_as(x)
        grad.view(-1)[index] = (fn(x + step).sum() - fn(x - step).sum()) / (2 * FD_STEP)
    return grad


def test_registry_and_parameters():
    model = build_denoiser({**tiny_config().to_dict(), "kind": "energy"})
    assert isinstance(model, EnergyDenoiser) and DENOISERS["energy"] is EnergyDenoiser
    names = dict(model.named_parameters())
    assert "gamma" in names and float(names["gamma"].detach()) == GAMMA_INIT
    assert not any(name.startswith("element_head") for name in names)


def test_potential_sums_atoms_and_energy_divides_by_sigma(model):
    batch = random_batch()
    total, per_atom = potential(model, batch)
    assert total.shape == (2,) and per_atom.shape == (batch.n_atoms,)
    sums = torch.zeros(2, dtype=torch.double).index_add_(0, batch.system_idx, per_atom)
    assert_same(total, sums)
    e_hat = model.energy(batch, T, SDE, generator=gen())
    assert_same(e_hat, total / (SDE.sigma_max_x * T))


def test_eps_is_gradient_of_potential(model):
    """eps_x = grad_X S = sigma_X grad_X E_hat (so s_X = -grad_X E_hat); eps_e = grad_E S."""
    batch = random_batch((5, 3), seed=1)
    eps_x, eps_e = run(model, batch)
    assert float(eps_x.abs().max()) > 1e-4 and float(eps_e.abs().max()) > 1e-4

    def s_of_positions(x):
        return potential(model, batch.replace(positions=x))[0]

    def s_of_elements(e):
        return potential(model, batch.replace(elements=e))[0]

    def e_hat_of_positions(x):
        return model.energy(batch.replace(positions=x), T, SDE, generator=gen())

    assert_same(eps_x, central_difference(s_of_positions, batch.positions), atol=FD_ATOL)
    assert_same(eps_e, central_difference(s_of_elements, batch.elements), atol=FD_ATOL)
    # the position score of the samplers, -eps_x / sigma_X, is minus the gradient of E_hat
    # (per system: the difference quotient of the sum over systems splits by atom)
    sigma = (SDE.sigma_max_x * T)[batch.system_idx, None]
    fd_e_hat = central_difference(e_hat_of_positions, batch.positions)
    assert_same(-eps_x / sigma, -fd_e_hat, atol=FD_ATOL / float(sigma.min()))


def test_translation_rotation_permutation(model):
    batch = random_batch()
    eps_x, eps_e = run(model, batch)
    total, _ = potential(model, batch)
    for s in range(batch.n_systems):  # zero mean per system (translation invariance)
        assert_same(eps_x[batch.system_idx == s].sum(0), torch.zeros(3, dtype=torch.double))

    shift = torch.tensor([[3.7, -11.2, 0.4], [-0.9, 2.5, 40.0]], dtype=torch.double)
    moved = batch.replace(positions=batch.positions + shift[batch.system_idx])
    mx, me = run(model, moved)
    assert_same(mx, eps_x)
    assert_same(me, eps_e)
    assert_same(potential(model, moved)[0], total)

    for proper in (True, False):
        q = random_orthogonal(3, proper)
        rotated = batch.replace(positions=batch.positions @ q.T, cell=batch.cell @ q.T)
        rx, re = run(model, rotated)
        assert_same(rx, eps_x @ q.T)
        assert_same(re, eps_e)
        assert_same(potential(model, rotated)[0], total)

    perm = torch.cat([torch.randperm(6, generator=gen()), 6 + torch.randperm(4, generator=gen())])
    permuted = batch.replace(positions=batch.positions[perm], elements=batch.elements[perm])
    px, pe = run(model, permuted)
    assert_same(px, eps_x[perm])
    assert_same(pe, eps_e[perm])
    total_p, per_atom_p = potential(model, permuted)
    assert_same(total_p, total)
    assert_same(per_atom_p, potential(model, batch)[1][perm])


def test_batched_equals_one_by_one(model):
    batch = random_batch((6, 4, 5), seed=2)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.double)
    eps_x, eps_e = model(batch, t)  # no NaN properties: nothing is drawn
    for s in range(batch.n_systems):
        mask = batch.system_idx == s
        single = batch.replace(
            positions=batch.positions[mask],
            elements=batch.elements[mask],
            cell=batch.cell[s : s + 1],
            system_idx=torch.zeros(int(mask.sum()), dtype=torch.long),
            properties=batch.properties[s : s + 1],
        )
        sx, se = model(single, t[s : s + 1])
        assert_same(sx, eps_x[mask])
        assert_same(se, eps_e[mask])


def test_no_grad_and_eval_outputs_are_detached(model):
    batch = random_batch()
    with torch.no_grad():
        nx, ne = run(model, batch)
    gx, ge = run(model, batch)
    assert not (nx.requires_grad or ne.requires_grad or gx.requires_grad or ge.requires_grad)
    assert_same(nx, gx)
    assert_same(ne, ge)


def test_training_backpropagates_through_the_gradients():
    """Double backprop: every parameter gets a gradient, and d loss / d gamma matches a
    finite difference of the loss (it would be missing without create_graph)."""
    model = energy_model(null_probability=0.0).train()
    batch = random_batch((6, 4), seed=3)
    one_hot = torch.nn.functional.one_hot(batch.elements.argmax(-1), N_CLASSES).double()
    batch = batch.replace(elements=one_hot)
    t = torch.tensor([0.2, 0.6], dtype=torch.double)

    def loss() -> torch.Tensor:
        return denoising_loss(model, batch, SDE, torch.Generator().manual_seed(5), t=t)[0]

    loss().backward()
    # the biases of the last node update only add a constant to every a_i, hence to S:
    # they cannot change a gradient of S, so they (and only they) get no gradient
    last = f"egnn.layers.{model.config.layers - 1}.node_update"
    constant_shifts = {f"{last}.2.bias", f"{last}.3.bias"}
    for name, parameter in model.named_parameters():
        if name in constant_shifts:
            assert parameter.grad is None, name
            continue
        assert parameter.grad is not None, name
        assert bool(torch.isfinite(parameter.grad).all()), name
    assert float(model.gamma.grad.abs()) > 0
    with torch.no_grad():
        gamma = float(model.gamma)
        model.gamma.fill_(gamma + FD_STEP)
        up = float(loss())
        model.gamma.fill_(gamma - FD_STEP)
        down = float(loss())
        model.gamma.fill_(gamma)
    torch.testing.assert_close(
        float(model.gamma.grad), (up - down) / (2 * FD_STEP), atol=FD_ATOL, rtol=1e-6
    )


def test_wrong_element_width_is_rejected(model):
    batch = random_batch()
    with pytest.raises(ValueError, match="elements must have shape"):
        model(batch.replace(elements=batch.elements[:, :2]), T)
