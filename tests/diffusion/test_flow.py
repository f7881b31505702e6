"""Material ODE (flow matching): periodic paths, exact velocities, one-step transport."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion import (
    MaterialSDE,
    flow_loss,
    flow_path,
    flow_timesteps,
    minimum_image,
    sample_flow,
    sample_prior,
)
from amtoolkit.diffusion._batch_ops import remove_system_mean
from tests.nn.helpers import random_batch, tiny_model

SDE = MaterialSDE()
EXACT = 1e-10  # float64 round-off of a few cell-sized operations
N_CLASSES = 3


def _triclinic_cells(n: int, seed: int) -> torch.Tensor:
    """`n` strongly tilted cells of edge ~6 Å. [n, 3, 3]"""
    g = torch.Generator().manual_seed(seed)
    cells = torch.diag_embed(6.0 + torch.rand((n, 3), generator=g, dtype=torch.float64))
    tilt = 2.0 * torch.rand((n, 3), generator=g, dtype=torch.float64) - 1.0
    cells[:, 1, 0], cells[:, 2, 0], cells[:, 2, 1] = 2.5 * tilt[:, 0], 2.5 * tilt[:, 1], tilt[:, 2]
    return cells


def _data(seed: int) -> Batch:
    """Two triclinic one-hot systems (7 and 5 atoms), positions unwrapped by up to 2 cells."""
    g = torch.Generator().manual_seed(seed)
    cell = _triclinic_cells(2, seed)
    prior = sample_prior(cell, torch.tensor([7, 5]), N_CLASSES, SDE, g)
    shifts = torch.randint(-2, 3, prior.positions.shape, generator=g).to(torch.float64)
    positions = prior.positions + torch.einsum("ni,nij->nj", shifts, cell[prior.system_idx])
    classes = torch.randint(N_CLASSES, (prior.n_atoms,), generator=g)
    elements = torch.nn.functional.one_hot(classes, N_CLASSES).to(torch.float64)
    return prior.replace(positions=positions, elements=elements)


def _fractional(vectors: torch.Tensor, batch: Batch) -> torch.Tensor:
    return torch.einsum("ni,nij->nj", vectors, torch.linalg.inv(batch.cell)[batch.system_idx])


@dataclasses.dataclass
class DeltaVelocity:
    """Exact velocity field when the data is one configuration (X0, E0).

    On the path X_t = X_noise + (1 - t) D, with X0 - X_noise = D + lattice vector,
    X0 - X_t = t D + lattice vector, and t D has fractional coordinates in [-t/2, t/2], so
    mic(X0 - X_t) = t D and v_X = D = mic(X0 - X_t) / t. Likewise E0 - E_t =
    t (E0 - E_noise), so v_E = (E0 - E_t) / t. The position velocity is made mean-free,
    as the denoiser's output is.
    """

    positions: torch.Tensor  # X0 [N, 3]
    elements: torch.Tensor  # E0 [N, C]

    def __call__(self, batch: Batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_atom = t[batch.system_idx].unsqueeze(-1)
        d = minimum_image(self.positions - batch.positions, batch.cell, batch.system_idx)
        v_x = remove_system_mean(d / t_atom, batch.system_idx, batch.n_systems)
        return v_x, (self.elements - batch.elements) / t_atom


def test_minimum_image_is_a_lattice_shift_into_the_half_box():
    data = _data(0)
    vectors = 20.0 * torch.randn(data.positions.shape, dtype=torch.float64)
    wrapped = minimum_image(vectors, data.cell, data.system_idx)
    shift = _fractional(vectors - wrapped, data)
    assert torch.allclose(shift, torch.round(shift), atol=EXACT)  # whole lattice vectors
    assert _fractional(wrapped, data).abs().max() <= 0.5 + EXACT


def test_the_path_crosses_the_periodic_boundary_in_a_triclinic_cell():
    cell = _triclinic_cells(1, 3)
    frac_data = torch.tensor([[0.95, 0.5, 0.5]], dtype=torch.float64)
    frac_noise = torch.tensor([[0.05, 0.5, 0.5]], dtype=torch.float64)
    one_hot = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    data = Batch(
        positions=frac_data @ cell[0],
        elements=one_hot,
        cell=cell,
        system_idx=torch.zeros(1, dtype=torch.long),
        properties=torch.zeros((1, 0), dtype=torch.float64),
    )
    noise = data.replace(positions=frac_noise @ cell[0], elements=torch.zeros_like(one_hot))
    noisy, v_x, v_e = flow_path(data, noise, torch.tensor([0.5], dtype=torch.float64))
    # the short way is -0.1 along a (across the face), not +0.9 through the cell
    d = minimum_image(data.positions - noise.positions, data.cell, data.system_idx)
    assert torch.allclose(d, -0.1 * cell[0, 0:1], atol=EXACT)
    frac_mid = _fractional(noisy.positions, noisy)
    assert torch.allclose(
        frac_mid, torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64), atol=EXACT
    )
    assert torch.allclose(noisy.elements, 0.5 * one_hot, atol=EXACT)
    assert torch.equal(v_x, torch.zeros_like(v_x))  # one atom: the velocity is a translation
    assert torch.equal(v_e, one_hot)


def test_loss_vanishes_for_the_exact_velocity_of_a_delta_distribution(generator):
    data = _data(1)
    exact = DeltaVelocity(data.positions, data.elements)
    loss, per_system, t = flow_loss(exact, data, SDE, generator)
    assert loss < EXACT**2 and (per_system < EXACT**2).all()
    assert ((t >= SDE.t_min) & (t <= SDE.t_max)).all()
    # a model that knows a slightly different configuration pays for it
    moved = DeltaVelocity(data.positions + 0.1 * torch.randn_like(data.positions), data.elements)
    assert flow_loss(moved, data, SDE, torch.Generator().manual_seed(1234))[0] > 1e-4


def test_loss_uses_given_times_and_is_reproducible(generator):
    data = _data(2)
    # the data moved by a lattice vector and a small common translation: the same
    # structure, so the exact velocity still has zero loss (mean-free target)
    shift = data.cell[data.system_idx][:, 0] + 0.05
    model = DeltaVelocity(data.positions + shift, data.elements)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    a = flow_loss(model, data, SDE, torch.Generator().manual_seed(5), t=t)
    b = flow_loss(model, data, SDE, torch.Generator().manual_seed(5), t=t)
    assert torch.equal(a[2], t) and torch.equal(a[1], b[1])
    assert a[0] < EXACT**2


@pytest.mark.parametrize("steps", [1, 4])
def test_euler_transports_the_prior_onto_the_configuration(steps, generator):
    data = _data(3)
    state = sample_prior(data.cell, data.atoms_per_system, N_CLASSES, SDE, generator)
    out = sample_flow(
        DeltaVelocity(data.positions, data.elements), state, flow_timesteps(steps, SDE)
    )
    assert torch.allclose(out.elements, data.elements, atol=EXACT)
    # positions: the data configuration, up to lattice vectors and one rigid translation
    # per system (the velocity is mean-free)
    offset = minimum_image(out.positions - data.positions, data.cell, data.system_idx)
    per_system = remove_system_mean(offset, data.system_idx, data.n_systems)
    assert per_system.abs().max() < EXACT


def test_grid_and_callback():
    ts = flow_timesteps(4, SDE)
    assert torch.allclose(ts, torch.tensor([0.99, 0.7425, 0.495, 0.2475, 0.0], dtype=ts.dtype))
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        flow_timesteps(0)
    data = _data(4)
    seen = []
    sample_flow(
        DeltaVelocity(data.positions, data.elements), data, ts, callback=lambda d: seen.append(d)
    )
    assert [d["i"] for d in seen] == [0, 1, 2, 3] and seen[0]["t"] == pytest.approx(0.99)
    assert set(seen[0]) == {"i", "t", "state", "eps_x", "eps_e"}


def test_loss_backward_on_a_tiny_denoiser(generator):
    model = tiny_model().train()
    batch = random_batch((6, 4))
    one_hot = torch.nn.functional.one_hot(batch.elements.argmax(-1), batch.elements.shape[-1])
    batch = batch.replace(elements=one_hot.to(torch.float64))
    loss, per_system, t = flow_loss(
        lambda b, t: model(b, t, generator=generator), batch, SDE, generator
    )
    loss.backward()
    assert per_system.shape == (2,) and t.shape == (2,)
    grads = [p.grad for p in model.parameters() if p.numel()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.node_embedding.weight.grad.abs().sum() > 0
    assert model.element_head.weight.grad.abs().sum() > 0
