"""AMShortcut: jumps, the self-consistency target, the loss and few-step sampling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion import (
    SHORTCUT_EVEN_FROM,
    SHORTCUT_GRID_RHO,
    SHORTCUT_LEVELS,
    MaterialSDE,
    add_noise,
    denoising_loss,
    guided,
    jump_noise,
    sample_jump,
    sample_ode,
    sample_prior,
    sample_shortcut,
    self_consistency_target,
    shortcut_jump,
    shortcut_loss,
    shortcut_timesteps,
)
from tests.diffusion.toy_models import DeltaModel, GaussianModel, make_state
from tests.nn.helpers import N_CLASSES, PROPERTY_NAMES, random_batch, tiny_model

SDE = MaterialSDE()
EXACT = 1e-10  # float64 round-off
STEP_COLUMN = 1 + len(PROPERTY_NAMES) * 8  # node-embedding input column of d: [t, h_y, d, e]


def _one_hot(batch: Batch) -> Batch:
    classes = batch.elements.argmax(-1)
    return batch.replace(elements=torch.nn.functional.one_hot(classes, N_CLASSES).double())


def _noisy(seed: int) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """A noisy float64 batch of two triclinic systems and jump draws (t, d) for it."""
    g = torch.Generator().manual_seed(seed)
    t, d, _ = sample_jump(2, SDE, g, dtype=torch.float64)
    noisy, _, _ = add_noise(_one_hot(random_batch((6, 4), seed=seed)), t, SDE, g)
    return noisy, t, d


@dataclasses.dataclass
class StepIgnoring:
    """A model that accepts a step size and ignores it; records the step sizes."""

    model: object
    steps: list = dataclasses.field(default_factory=list)

    def __call__(self, batch, t, step_size=None, **kwargs):
        self.steps.append(None if step_size is None else step_size.clone())
        return self.model(batch, t)  # type: ignore[operator]


def test_jump_noise_inverts_the_jump():
    noisy, t, d = _noisy(0)
    eps_x = torch.randn_like(noisy.positions)
    eps_e = torch.randn_like(noisy.elements)
    landed = shortcut_jump(noisy, t, d, eps_x, eps_e, SDE)
    back_x, back_e = jump_noise(noisy, landed, t, d, SDE)
    assert torch.allclose(back_x, eps_x, atol=EXACT) and torch.allclose(back_e, eps_e, atol=EXACT)
    # positions move by sigma_max_X d eps (a_X = g^2 / (2 sigma) = sigma_max_X)
    d_atom = d[noisy.system_idx].unsqueeze(-1)
    moved = noisy.positions - SDE.sigma_max_x * d_atom * eps_x
    assert torch.allclose(landed.positions, moved, atol=EXACT)


@pytest.mark.parametrize("finest", [False, True], ids=["model-at-d", "model-at-0"])
def test_target_jump_lands_where_two_half_jumps_land(finest):
    model = tiny_model(step_size_embedding=True)
    noisy, t, d = _noisy(1)
    half_step = torch.zeros_like(d) if finest else d
    target_x, target_e = self_consistency_target(model, noisy, t, d, SDE, half_step=half_step)

    eps1 = model(noisy, t, step_size=half_step)
    mid = shortcut_jump(noisy, t, d, *eps1, SDE)
    eps2 = model(mid, t - d, step_size=half_step)
    two_jumps = shortcut_jump(mid, t - d, d, *eps2, SDE)
    one_jump = shortcut_jump(noisy, t, 2 * d, target_x, target_e, SDE)
    assert torch.allclose(one_jump.positions, two_jumps.positions, rtol=0, atol=EXACT)
    assert torch.allclose(one_jump.elements, two_jumps.elements, rtol=0, atol=EXACT)
    # closed form for positions: the mean of the two half-jump noises
    assert torch.allclose(target_x, 0.5 * (eps1[0] + eps2[0]), atol=EXACT)
    assert not target_x.requires_grad and not target_e.requires_grad


@pytest.mark.parametrize("finest", [False, True], ids=["model-at-d", "model-at-0"])
def test_gained_target_jump_lands_where_two_gained_half_jumps_land(finest):
    """With a score gain the 2d jump that sample_shortcut makes with the target (its
    noise times 1 + gamma (t - d)) lands where the two gained d jumps land."""
    model = tiny_model(step_size_embedding=True)
    noisy, t, d = _noisy(1)
    half_step = torch.zeros_like(d) if finest else d
    gamma = 3.0

    def factor(time, jump):
        return (1.0 + gamma * (time - 0.5 * jump))[noisy.system_idx].unsqueeze(-1)

    target_x, target_e = self_consistency_target(
        model, noisy, t, d, SDE, half_step=half_step, score_gain=gamma
    )
    eps1 = model(noisy, t, step_size=half_step)
    mid = shortcut_jump(noisy, t, d, factor(t, d) * eps1[0], eps1[1], SDE)
    eps2 = model(mid, t - d, step_size=half_step)
    two_jumps = shortcut_jump(mid, t - d, d, factor(t - d, d) * eps2[0], eps2[1], SDE)
    one_jump = shortcut_jump(noisy, t, 2 * d, factor(t, 2 * d) * target_x, target_e, SDE)
    assert torch.allclose(one_jump.positions, two_jumps.positions, rtol=0, atol=EXACT)
    assert torch.allclose(one_jump.elements, two_jumps.elements, rtol=0, atol=EXACT)
    with pytest.raises(ValueError, match="score_gain must be a number in \\[0, 100\\]"):
        self_consistency_target(model, noisy, t, d, SDE, score_gain=-1.0)


def test_a_constant_noise_is_self_consistent_under_any_gain():
    """The step-averaged factor integrates exactly: for a model whose noise is the same
    everywhere, two gained d jumps equal one gained 2d jump with that noise, so the
    target is the noise itself (a_X is constant for the VE positions)."""
    noisy, t, d = _noisy(3)
    eps_x = torch.randn_like(noisy.positions)

    def constant(batch, time, step_size=None):
        return eps_x, torch.zeros_like(batch.elements)

    for gamma in (0.0, 2.0, 6.0):
        target_x, _ = self_consistency_target(constant, noisy, t, d, SDE, score_gain=gamma)
        assert torch.allclose(target_x, eps_x, atol=EXACT)
    # a noise that depends on the positions (a Gaussian's exact score) is not: the gain
    # changes where the first half jump lands, so the target differs from the plain one
    centre = noisy.positions + 0.5 * torch.randn_like(noisy.positions)
    gaussian = StepIgnoring(GaussianModel(centre, 0.3, noisy.elements, 0.5, SDE))
    plain_x, _ = self_consistency_target(gaussian, noisy, t, d, SDE)
    gained_x, _ = self_consistency_target(gaussian, noisy, t, d, SDE, score_gain=6.0)
    assert not torch.allclose(gained_x, plain_x, atol=1e-3)


def test_target_replays_the_model_draws_for_every_call():
    """In training mode the property nulling is random; with the generator replayed, the
    two half jumps and the prediction see the same conditioning."""
    model = tiny_model(step_size_embedding=True, null_probability=0.5).train()
    noisy, t, d = _noisy(2)
    g = torch.Generator().manual_seed(7)
    start = g.get_state()

    def call(batch, time, **kwargs):
        return model(batch, time, generator=g, **kwargs)

    target = self_consistency_target(call, noisy, t, d, SDE, generator=g)
    assert torch.equal(g.get_state(), start)  # the prediction gets the same draws
    # by hand: both half jumps draw from the generator state at the start
    eps1 = model(noisy, t, step_size=d, generator=torch.Generator().set_state(start))
    mid = shortcut_jump(noisy, t, d, *eps1, SDE)
    eps2 = model(mid, t - d, step_size=d, generator=torch.Generator().set_state(start))
    expected = jump_noise(noisy, shortcut_jump(mid, t - d, d, *eps2, SDE), t, 2 * d, SDE)
    assert torch.allclose(target[0], expected[0], atol=EXACT)
    assert torch.allclose(target[1], expected[1], atol=EXACT)


def test_step_size_zero_is_the_score_model():
    model = tiny_model(step_size_embedding=True)
    batch = random_batch((6, 4))
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    plain = model(batch, t)
    at_zero = model(batch, t, step_size=torch.zeros(2, dtype=torch.float64))
    assert torch.equal(plain[0], at_zero[0]) and torch.equal(plain[1], at_zero[1])
    at_d = model(batch, t, step_size=torch.full((2,), 0.25, dtype=torch.float64))
    assert not torch.allclose(plain[0], at_d[0])  # d is an input


def test_jump_draws_are_powers_of_two_with_room_for_two_half_jumps():
    g = torch.Generator().manual_seed(3)
    t, d, half_step = sample_jump(4000, SDE, g, dtype=torch.float64)
    k = torch.round(torch.log2(SDE.t_max / (2 * d))).long()
    assert torch.allclose(2 * d, SDE.t_max * torch.exp2(-k.double()), rtol=1e-12)
    assert set(k.tolist()) == set(range(SHORTCUT_LEVELS))
    assert (t - 2 * d >= 0).all() and (t <= SDE.t_max + 1e-12).all()
    assert torch.allclose(t[k == 0], torch.full_like(t[k == 0], SDE.t_max))  # one jump to 0
    finest = k == SHORTCUT_LEVELS - 1
    assert (half_step[finest] == 0).all() and torch.equal(half_step[~finest], d[~finest])
    again = sample_jump(4000, SDE, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(again[0], t) and torch.equal(again[1], d)
    with pytest.raises(ValueError, match="levels must be an integer >= 1, got 0"):
        sample_jump(2, SDE, g, levels=0)


def test_loss_gradients_reach_the_step_size_embedding(generator):
    model = tiny_model(step_size_embedding=True).train()
    batch = _one_hot(random_batch((6, 4)))

    def call(b, t, **kwargs):
        return model(b, t, generator=generator, **kwargs)

    loss, per_system, t = shortcut_loss(call, batch, SDE, generator)
    loss.backward()
    assert per_system.shape == (2,) and ((t >= SDE.t_min) & (t <= SDE.t_max)).all()
    assert model.node_embedding.weight.grad[:, STEP_COLUMN].abs().sum() > 0
    # the denoising loss alone runs at d = 0: no gradient on the step-size column
    model.zero_grad()
    denoising_loss(call, batch, SDE, generator)[0].backward()
    assert model.node_embedding.weight.grad[:, STEP_COLUMN].abs().sum() == 0


def test_loss_is_the_denoising_loss_plus_the_consistency_term():
    model = tiny_model(step_size_embedding=True)  # eval mode: no random nulling
    batch = _one_hot(random_batch((6, 4)))
    t = torch.tensor([0.4, 0.6], dtype=torch.float64)
    total, per_system, t_out = shortcut_loss(
        model, batch, SDE, torch.Generator().manual_seed(4), t=t
    )
    g = torch.Generator().manual_seed(4)
    denoise, denoise_per_system, _ = denoising_loss(model, batch, SDE, g, t=t)
    t_jump, d, half_step = sample_jump(2, SDE, g, dtype=torch.float64)
    noisy, _, _ = add_noise(batch, t_jump, SDE, g)
    target = self_consistency_target(model, noisy, t_jump, d, SDE, half_step=half_step)
    eps_x, eps_e = model(noisy, t_jump, step_size=2 * d)
    per_atom = (eps_x - target[0]).pow(2).mean(-1) + 0.5 * (eps_e - target[1]).pow(2).mean(-1)
    assert torch.equal(t_out, t)
    assert torch.allclose(total, denoise + per_atom.mean(), atol=EXACT)
    assert per_system[0] > denoise_per_system[0] and per_system[1] > denoise_per_system[1]


def test_jumps_are_the_probability_flow_euler_steps(generator):
    """A model that ignores d makes sample_shortcut the Euler PF-ODE of sample_ode."""
    x0 = make_state(2, 5, N_CLASSES, generator)
    exact = DeltaModel(x0.positions, torch.softmax(x0.elements, -1), SDE)
    state = make_state(2, 5, N_CLASSES, generator)
    ts = shortcut_timesteps(5, SDE)
    recorder = StepIgnoring(exact)
    jumped = sample_shortcut(recorder, state, ts, sde=SDE)
    reference = sample_ode(exact, state, ts, sde=SDE)
    assert torch.allclose(jumped.positions, reference.positions, atol=EXACT)
    assert torch.allclose(jumped.elements, reference.elements, atol=EXACT)
    steps = torch.stack([s[0] for s in recorder.steps])
    assert torch.allclose(steps, ts[:-1] - ts[1:])  # d = t_i - t_{i+1}


def test_score_gain_jumps_are_the_gained_probability_flow_steps(generator):
    """With a score gain, the jumps of a model that ignores d are sample_ode's steps with
    the same gain (a Gaussian model, whose flow the gain changes)."""
    x0 = make_state(2, 5, N_CLASSES, generator)
    gaussian = GaussianModel(x0.positions, 0.3, torch.softmax(x0.elements, -1), 0.5, SDE)
    state = make_state(2, 5, N_CLASSES, generator)
    ts = shortcut_timesteps(5, SDE)
    model = StepIgnoring(gaussian)
    gained = sample_shortcut(model, state, ts, sde=SDE, score_gain=2.5)
    reference = sample_ode(gaussian, state, ts, sde=SDE, score_gain=2.5)
    assert torch.allclose(gained.positions, reference.positions, atol=EXACT)
    plain = sample_shortcut(model, state, ts, sde=SDE)
    assert not torch.allclose(gained.positions, plain.positions, atol=1e-3)
    assert torch.equal(gained.elements, plain.elements)
    with pytest.raises(ValueError, match="score_gain must be a number in \\[0, 100\\]"):
        sample_shortcut(model, state, ts, sde=SDE, score_gain=-1.0)


def test_few_step_grids_are_denser_towards_zero():
    i = torch.arange(6, dtype=torch.float64)
    even = SDE.t_max * (1 - i / 5)
    torch.testing.assert_close(shortcut_timesteps(5, SDE, rho=1.0), even)
    torch.testing.assert_close(
        shortcut_timesteps(5, SDE), SDE.t_max * (1 - i / 5) ** SHORTCUT_GRID_RHO
    )
    jumps = -torch.diff(shortcut_timesteps(5, SDE))
    assert bool((jumps[1:] < jumps[:-1]).all())  # each jump shorter than the one before
    many = shortcut_timesteps(SHORTCUT_EVEN_FROM, SDE)
    torch.testing.assert_close(
        many, torch.linspace(SDE.t_max, 0, SHORTCUT_EVEN_FROM + 1, dtype=torch.float64)
    )
    for bad in (0.5, float("nan")):
        with pytest.raises(ValueError, match="rho must be a number >= 1"):
            shortcut_timesteps(5, SDE, rho=bad)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_sampling_with_a_tiny_model_is_deterministic(steps):
    model = tiny_model(step_size_embedding=True)
    cell = 5.0 * torch.eye(3, dtype=torch.float64).expand(2, 3, 3).clone()
    state = sample_prior(
        cell,
        torch.tensor([6, 4]),
        N_CLASSES,
        SDE,
        torch.Generator().manual_seed(9),
        torch.zeros((2, len(PROPERTY_NAMES)), dtype=torch.float64),
    )
    seen = []
    ts = shortcut_timesteps(steps, SDE)
    first = sample_shortcut(model, state, ts, sde=SDE, callback=lambda d: seen.append(d["t"]))
    second = sample_shortcut(model, state, ts, sde=SDE)
    assert torch.equal(first.positions, second.positions)
    assert torch.equal(first.elements, second.elements)
    assert torch.isfinite(first.positions).all() and torch.isfinite(first.elements).all()
    assert seen == pytest.approx(ts[:-1].tolist())
    assert ts[0] == pytest.approx(SDE.t_max) and ts[-1] == 0


def test_guided_models_pass_the_step_size_on():
    recorder = StepIgnoring(lambda b, t: (torch.zeros_like(b.positions), b.elements.clone()))
    state = make_state(2, 3, N_CLASSES, torch.Generator().manual_seed(0), n_properties=1)
    ts = shortcut_timesteps(2, SDE)
    sample_shortcut(guided(recorder, w=0.5), state, ts, sde=SDE)
    assert len(recorder.steps) == 2  # one doubled call per step
    for s, d in zip(recorder.steps, ts[:-1] - ts[1:], strict=True):
        # [conditional; unconditional] systems
        assert torch.allclose(s, torch.full((4,), float(d), dtype=torch.float64))


def test_a_model_without_step_size_is_refused():
    model = tiny_model()
    state = _one_hot(random_batch((6, 4)))
    with pytest.raises(ValueError, match="step_size given to a model without step_size_embedding"):
        sample_shortcut(model, state, shortcut_timesteps(1, SDE))
