"""Smoke test: the samplers, guidance, restarts and loss with a tiny real ScoreDenoiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from amtoolkit.data.batch import from_atoms, to_atoms
from amtoolkit.data.ghosts import add_ghosts
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion import (
    MaterialSDE,
    charge_balance,
    denoising_loss,
    get_timesteps,
    guided,
    sample_ode,
    sample_prior,
    sample_sde,
    sample_with_restarts,
)

nn_denoiser = pytest.importorskip("amtoolkit.nn.denoiser")

VOCAB = ElementVocabulary(["O", "Si"])
SDE = MaterialSDE()
STEPS = 4


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = nn_denoiser.DenoiserConfig(
        n_classes=len(VOCAB),
        property_names=("density",),
        hidden=16,
        layers=2,
        vector_channels=2,
        cutoff=3.0,
    )
    return nn_denoiser.ScoreDenoiser(config).eval()


def _prior(seed: int):
    cell = 5.0 * torch.eye(3).expand(2, 3, 3).clone()
    properties = torch.tensor([[0.3], [float("nan")]])  # one conditioned, one null
    return sample_prior(
        cell,
        torch.tensor([9, 12]),
        len(VOCAB),
        SDE,
        torch.Generator().manual_seed(seed),
        properties,
    )


def _sample(model, seed: int, sampler=sample_sde):
    g = torch.Generator().manual_seed(seed)
    return sampler(
        guided(model, 1.0, generator=g),
        _prior(seed),
        get_timesteps(STEPS, SDE),
        sde=SDE,
        generator=g,
    )


@pytest.mark.parametrize("sampler", [sample_sde, sample_ode])
def test_sampling_shapes_ghosts_and_determinism(model, sampler):
    out = _sample(model, 0, sampler)
    assert out.positions.shape == (21, 3) and out.elements.shape == (21, 3)
    assert bool(torch.isfinite(out.positions).all() and torch.isfinite(out.elements).all())
    again = _sample(model, 0, sampler)
    assert torch.equal(out.positions, again.positions)
    assert torch.equal(out.elements, again.elements)
    other = _sample(model, 1, sampler)
    assert not torch.equal(out.positions, other.positions)
    structures = to_atoms(out, VOCAB)
    classes = out.elements.argmax(-1)
    real = [int((classes[out.system_idx == s] != 0).sum()) for s in range(2)]
    assert [len(a) for a in structures] == real
    assert all(0 not in a.numbers for a in structures)
    for atoms in structures:
        fractional = atoms.get_scaled_positions(wrap=False)
        assert bool(((fractional >= 0) & (fractional < 1 + 1e-12)).all())


def test_restarts_with_a_real_model(model):
    g = torch.Generator().manual_seed(0)
    out, restarts = sample_with_restarts(
        sample_sde,
        guided(model, 0.0, generator=g),
        _prior(0),
        get_timesteps(STEPS, SDE),
        accept=charge_balance(VOCAB),
        restart_t=0.5,
        max_restarts=1,
        generator=g,
    )
    assert out.positions.shape == (21, 3)
    assert restarts.shape == (2,) and bool(((restarts >= 0) & (restarts <= 1)).all())


def test_training_loss_with_ghosts(model):
    atoms = Atoms(
        "Si2O4",
        positions=np.random.default_rng(0).random((6, 3)) * 5.0,
        cell=5.0 * np.eye(3),
        pbc=True,
    )
    padded = add_ghosts(atoms, 0.09, 0)  # floor(0.09 * 125) = 11 atoms, 5 ghosts
    batch = from_atoms([padded, atoms], VOCAB, {"density": [0.1, float("nan")]}, ("density",))
    model.train()
    loss, per_system, t = denoising_loss(model, batch, SDE, torch.Generator().manual_seed(0))
    assert per_system.shape == (2,) and t.shape == (2,)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(gr).all()) for gr in grads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_on_cuda(model):
    device = torch.device("cuda")
    model = model.to(device)

    def run():
        g = torch.Generator(device=device).manual_seed(0)
        state = _prior(0).to(device)
        return sample_sde(
            guided(model, 1.0, generator=g),
            state,
            get_timesteps(STEPS, SDE),
            sde=SDE,
            generator=g,
        )

    # CUDA scatter-adds (index_add_) are atomic and run-to-run nondeterministic unless
    # torch's deterministic algorithms are on
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        a, b = run(), run()
    finally:
        torch.use_deterministic_algorithms(previous)
    assert a.positions.device.type == "cuda"
    assert bool(torch.isfinite(a.positions).all())
    assert torch.equal(a.positions, b.positions) and torch.equal(a.elements, b.elements)
    assert len(to_atoms(a, VOCAB)) == 2
