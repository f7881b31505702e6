"""AMShortcut: a denoiser that also knows the step size d, trained to jump in few steps.

The model is a ScoreDenoiser with ``step_size_embedding=True``. With d = 0 it is the
ordinary noise predictor eps(x_t, t) of the score SDE (trained with `denoising_loss`).
With d > 0 its output eps(x_t, t, d) defines a *jump* from t to t - d in the
probability-flow (PF) form, the Euler update of `sample_ode` with dt = d:

    X' = X + (1/2) g_X^2(t) s_X d         = X - a_X(t) d eps_X
    E' = E - (f_E(t) E - (1/2) g_E^2(t) s_E) d = (1 - f_E(t) d) E - a_E(t) d eps_E

with s = -eps / sigma(t), a(t) = g^2(t) / (2 sigma(t)) (a_X = sigma_max_X) and
f_E(t) = -(pi/2) tan(pi t / 2) (`shortcut_jump`).

Self-consistency: one jump over 2d must land where two consecutive jumps over d land
(t -> t - d -> t - 2d, model at step size d, no gradient). The jump is affine in eps,
so the eps that reproduces the two-jump end point (X'', E'') is closed-form
(`jump_noise`):

    eps*_X = (X - X'') / (2d a_X(t))               (= the mean of the two eps_X)
    eps*_E = ((1 - 2d f_E(t)) E - E'') / (2d a_E(t))

and eps(x_t, t, 2d) is regressed on eps* (stop-gradient target).

Training draws (`sample_jump`): a level k ~ U{0, ..., 7} per system, the jump
2d = t_max / 2^k (one jump from t_max to 0 down to t_max / 128) and t ~ U[2d, t_max]
so that t - 2d >= 0. On the finest level the two half jumps use the d = 0 model, which
ties the ladder of step sizes to the score model (as Frans et al. tie theirs to the
flow-matching model); on the other levels they use the model at d.

Sampling (`sample_shortcut`) makes one jump per step, d = t_i - t_{i+1}, on a grid from
t_max to 0 that is even for many steps and denser towards t = 0 for few
(`shortcut_timesteps`).

References:
    Frans et al., ICLR 2025, "One step diffusion via shortcut models" (self-consistency
    target, eq. 5; step sizes in powers of two, section 3); AMShortcut (probability-flow
    shortcut targets for materials, 25 % of batches; docs/diffusion.md, *AMShortcut*);
    Song et al., ICLR 2021, eq. 13 (probability-flow ODE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import system_mean
from amtoolkit.diffusion.flow import flow_timesteps
from amtoolkit.diffusion.forward import add_noise
from amtoolkit.diffusion.loss import ELEMENT_LOSS_WEIGHT, denoising_loss
from amtoolkit.diffusion.samplers import check_score_gain, check_timesteps, predict, score_factor
from amtoolkit.diffusion.schedules import MaterialSDE

ShortcutModel = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""(Batch, t [S], *, step_size=d [S]) -> (eps_x [N, 3], eps_e [N, n_classes])."""

Callback = Callable[[dict[str, Any]], None]

SHORTCUT_LEVELS = 8
"""Number of jump sizes 2d = t_max / 2^k, k = 0 .. SHORTCUT_LEVELS - 1, in training."""

SHORTCUT_GRID_RHO = 1.75
"""Exponent of the default few-step sampling grid (`shortcut_timesteps`), measured on a-Si."""

SHORTCUT_EVEN_FROM = 10
"""From this many steps on, `shortcut_timesteps` defaults to the even grid."""


def _per_atom(values: torch.Tensor | float, batch: Batch) -> torch.Tensor:
    """Per-system values [S] (or a scalar) broadcast to the atoms. [N, 1]"""
    dtype, device = batch.positions.dtype, batch.positions.device
    values = torch.as_tensor(values, dtype=dtype, device=device)
    if values.ndim == 0:
        values = values.expand(batch.n_systems)
    if values.shape != (batch.n_systems,):
        raise ValueError(
            f"per-system values must have shape [{batch.n_systems}], got {list(values.shape)}"
        )
    return values[batch.system_idx].unsqueeze(-1)


def _jump_coefficients(
    sde: MaterialSDE, t_atom: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a_X, a_E, f_E) at per-atom times [N, 1]: a = g^2 / (2 sigma), f_E the element drift."""
    a_x = 0.5 * sde.g2_x(t_atom) / sde.sigma_x(t_atom)
    a_e = 0.5 * sde.g2_e(t_atom) / sde.sigma_e(t_atom)
    return a_x, a_e, sde.drift_e(t_atom)


def shortcut_jump(
    state: Batch,
    t: torch.Tensor | float,
    d: torch.Tensor | float,
    eps_x: torch.Tensor,
    eps_e: torch.Tensor,
    sde: MaterialSDE | None = None,
) -> Batch:
    """One probability-flow Euler jump of size d from time t with the noise eps.

    X' = X - a_X(t) d eps_X and E' = (1 - f_E(t) d) E - a_E(t) d eps_E, i.e. the
    `sample_ode` update with dt = d and s = -eps / sigma(t).

    Args:
        state: the batch at time t.
        t: time of each system, > 0. [S] (or a float for all)
        d: jump of each system, t - d >= 0 for a jump that stays in the process. [S]
        eps_x: position noise. [N, 3]
        eps_e: element noise. [N, n_classes]
        sde: the process constants; default ``MaterialSDE()``.

    Returns:
        The batch at t - d.

    References:
        Song et al. 2021, eq. 13 (probability-flow ODE); docs/diffusion.md, *AMShortcut*.
    """
    sde = MaterialSDE() if sde is None else sde
    t_atom, d_atom = _per_atom(t, state), _per_atom(d, state)
    a_x, a_e, f_e = _jump_coefficients(sde, t_atom)
    positions = state.positions - a_x * d_atom * eps_x
    elements = (1.0 - f_e * d_atom) * state.elements - a_e * d_atom * eps_e
    return state.replace(positions=positions, elements=elements)


def _gained_jump(
    state: Batch,
    t: torch.Tensor | float,
    d: torch.Tensor | float,
    eps_x: torch.Tensor,
    eps_e: torch.Tensor,
    sde: MaterialSDE,
    score_gain: float,
) -> Batch:
    """`shortcut_jump` with the position noise times `score_factor` (1 + gamma (t - d/2)):
    the jump `sample_shortcut` makes, and the one its self-consistency targets follow."""
    gain = _per_atom(score_factor(score_gain, t, d), state)
    return shortcut_jump(state, t, d, gain * eps_x, eps_e, sde)


def jump_noise(
    state: Batch,
    target: Batch,
    t: torch.Tensor | float,
    d: torch.Tensor | float,
    sde: MaterialSDE | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise whose `shortcut_jump` of size d from `state` at t lands on `target`.

    eps_X = (X - X') / (d a_X(t)) and eps_E = ((1 - d f_E(t)) E - E') / (d a_E(t)).

    Args:
        state: the batch at t.
        target: the batch to reach (same atoms).
        t: time of each system, > 0. [S]
        d: jump of each system, > 0. [S]
        sde: the process constants; default ``MaterialSDE()``.

    Returns:
        (eps_x [N, 3], eps_e [N, n_classes]).

    References:
        Frans et al. 2025, eq. 5 (shortcut target), in AMShortcut's PF form.
    """
    sde = MaterialSDE() if sde is None else sde
    t_atom, d_atom = _per_atom(t, state), _per_atom(d, state)
    a_x, a_e, f_e = _jump_coefficients(sde, t_atom)
    eps_x = (state.positions - target.positions) / (a_x * d_atom)
    eps_e = ((1.0 - f_e * d_atom) * state.elements - target.elements) / (a_e * d_atom)
    return eps_x, eps_e


def sample_jump(
    n_systems: int,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    *,
    levels: int = SHORTCUT_LEVELS,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-consistency draws per system: time t, half jump d, step size of the half jumps.

    k ~ U{0, ..., levels - 1}, 2d = t_max / 2^k, t ~ U[2d, t_max] (so t - 2d >= 0; on
    level 0, t = t_max: the one-step jump to 0). The half jumps use the model at d, or at
    0 on the finest level k = levels - 1.

    Args:
        n_systems: number of systems S.
        sde: the process constants (t_max); default ``MaterialSDE()``.
        generator: random source (on `device`).
        levels: number of jump sizes (8: 2d from t_max down to t_max / 128).
        dtype: dtype of the draws.
        device: device of the draws.

    Returns:
        (t [S], d [S], step size of the half jumps [S]).

    References:
        Frans et al. 2025, section 3 (step sizes in powers of two).
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    sde = MaterialSDE() if sde is None else sde
    k = torch.randint(levels, (n_systems,), generator=generator, device=device)
    jump = sde.t_max * torch.exp2(-k.to(dtype))  # 2d [S]
    u = torch.rand(n_systems, generator=generator, dtype=dtype, device=device)
    t = jump + (sde.t_max - jump) * u
    d = 0.5 * jump
    half_step = torch.where(k == levels - 1, torch.zeros_like(d), d)
    return t, d, half_step


@torch.no_grad()
def self_consistency_target(
    model: ShortcutModel,
    noisy: Batch,
    t: torch.Tensor,
    d: torch.Tensor,
    sde: MaterialSDE | None = None,
    *,
    half_step: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    score_gain: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stop-gradient target eps* of the 2d jump: the noise that lands where two d jumps do.

    Jumps t -> t - d -> t - 2d with the model at step size `half_step` (default d), then
    solves the 2d jump from t for its noise (`jump_noise`). With a score gain gamma, every
    jump is the gained jump that `sample_shortcut` makes (position noise times
    `score_factor`, 1 + gamma (t - d / 2)), and eps*_X is the noise that the gained 2d
    jump needs: the ladder of step sizes then follows the gained probability flow, which
    a factor on an ungained jump only approximates for long jumps.

    Args:
        model: (Batch, t [S], *, step_size [S]) -> (eps_x, eps_e).
        noisy: x_t. [S systems]
        t: time of each system, t - 2d >= 0. [S]
        d: half jump of each system, > 0. [S]
        sde: the process constants; default ``MaterialSDE()``.
        half_step: step size fed to the model for the half jumps [S]; default d.
        generator: the generator the model draws from (property nulling, null
            embeddings). Its state is restored before each model call and on return,
            so both half jumps and a following call of the model on `noisy` (the
            prediction being trained) see the same property conditioning.
        score_gain: gamma >= 0 of the jumps (0: the learned flow itself).

    Returns:
        (eps*_x [N, 3], eps*_e [N, n_classes]); no gradient flows through them.

    References:
        Frans et al. 2025, eq. 5; AMShortcut (probability-flow targets); docs/diffusion.md,
        *AMShortcut*.
    """
    sde = MaterialSDE() if sde is None else sde
    score_gain = check_score_gain(score_gain)
    step = d if half_step is None else half_step
    start = None if generator is None else generator.get_state()
    mid = noisy
    for time in (t, t - d):
        if start is not None:
            generator.set_state(start)
        eps_x, eps_e = model(mid, time, step_size=step)
        mid = _gained_jump(mid, time, d, eps_x, eps_e, sde, score_gain)
    if start is not None:
        generator.set_state(start)
    eps_x, eps_e = jump_noise(noisy, mid, t, 2.0 * d, sde)
    return eps_x / _per_atom(score_factor(score_gain, t, 2.0 * d), noisy), eps_e


def shortcut_loss(
    model: ShortcutModel,
    batch: Batch,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    *,
    t: torch.Tensor | None = None,
    score_gain: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AMShortcut loss: the denoising loss at d = 0 plus the self-consistency loss.

    The denoising term is `denoising_loss` (times `t` or t ~ U[t_min, t_max], model
    called without a step size, i.e. d = 0). The self-consistency term draws (t', d) per
    system with `sample_jump`, noises the batch to t', and regresses the model at step
    size 2d on the stop-gradient target of `self_consistency_target`:
    MSE(eps*_X, eps_hat_X) + 0.5 MSE(eps*_E, eps_hat_E), averaged as in `denoising_loss`.
    Draw order on `generator`: the denoising term, then k, t', the noise of x_t', the
    model's draws (replayed for the three calls on x_t').

    Args:
        model: (Batch, t [S], *, step_size [S]) -> (eps_x, eps_e); a ScoreDenoiser with
            ``step_size_embedding=True`` (possibly wrapped to pass `generator`).
        batch: clean structures with one-hot elements.
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source of the draws (and of the model's, if it uses it).
        t: fixed times of the denoising term [S] (the self-consistency times are drawn).
        score_gain: gamma of the jumps the self-consistency targets are built from
            (`self_consistency_target`); sample the model with the same gain. The
            denoising term (d = 0) is unchanged.

    Returns:
        (loss scalar, per-system loss [S] (sum of both terms), t [S] of the denoising
        term).

    References:
        Frans et al. 2025, eq. 6 (flow-matching plus self-consistency objective);
        AMShortcut; docs/diffusion.md, *AMShortcut*.
    """
    sde = MaterialSDE() if sde is None else sde
    dtype, device = batch.positions.dtype, batch.positions.device
    loss, per_system, t = denoising_loss(model, batch, sde, generator, t=t)
    t_jump, d, half_step = sample_jump(batch.n_systems, sde, generator, dtype=dtype, device=device)
    noisy, _, _ = add_noise(batch, t_jump, sde, generator)
    target_x, target_e = self_consistency_target(
        model,
        noisy,
        t_jump,
        d,
        sde,
        half_step=half_step,
        generator=generator,
        score_gain=score_gain,
    )
    eps_hat_x, eps_hat_e = model(noisy, t_jump, step_size=2.0 * d)
    err_x = (eps_hat_x - target_x).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    err_e = (eps_hat_e - target_e).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    per_atom = err_x + ELEMENT_LOSS_WEIGHT * err_e  # [N, 1]
    consistency = system_mean(per_atom, batch.system_idx, batch.n_systems).squeeze(-1)
    return loss + per_atom.mean(), per_system + consistency, t


def shortcut_timesteps(
    steps: int,
    sde: MaterialSDE | None = None,
    *,
    rho: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Grid of `steps` jumps from t_max to 0: ``t_i = t_max (1 - i / steps)^rho``.

    rho = 1 is the even grid (with steps = 2^k its jumps are exactly the trained sizes
    t_max / 2^k). rho > 1 makes the early jumps longer and the late ones shorter, which
    spends the few model calls where the short-range order forms: on a-Si at 2-5 steps
    the RDF RMSD falls by 15-20 % from rho = 1 to `SHORTCUT_GRID_RHO` (docs/generator.md,
    *Time grids*). From `SHORTCUT_EVEN_FROM` steps on, the default is the even grid,
    which is better there.

    Args:
        steps: number of jumps (model evaluations), >= 1.
        sde: the process (its t_max); default ``MaterialSDE()``.
        rho: grid exponent >= 1; default `SHORTCUT_GRID_RHO` below `SHORTCUT_EVEN_FROM`
            steps, else 1.
        dtype: dtype of the grid.
        device: device of the grid.

    Returns:
        Decreasing times ``[steps + 1]``, first t_max, last 0.
    """
    even = flow_timesteps(steps, sde, dtype=dtype, device=device)  # checks steps
    if rho is None:
        rho = SHORTCUT_GRID_RHO if steps < SHORTCUT_EVEN_FROM else 1.0
    if not (math.isfinite(rho) and rho >= 1.0):
        raise ValueError(f"rho must be a number >= 1, got {rho}")
    return even[0] * (even / even[0]) ** rho


@torch.no_grad()
def sample_shortcut(
    model: ShortcutModel,
    state: Batch,
    ts: torch.Tensor,
    *,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    score_gain: float = 0.0,
) -> Batch:
    """Shortcut sampling: one `shortcut_jump` per step, d = t_i - t_{i+1}.

    The model is called as ``model(state, t, step_size=d)`` with per-system tensors; a
    `guided` model passes the step size on to its model. With a score gain gamma > 0
    each jump's position noise is multiplied by 1 + gamma (t - d / 2), the factor
    1 + gamma t averaged over the jump (`score_factor`): the jump of
    a colder probability flow, which sharpens the short-range order (on a-Si, gamma =
    5 takes the RDF RMSD at 5 jumps from 0.23 to 0.11, but makes 1-2 jumps worse;
    docs/generator.md, *Score gain*).

    Args:
        model: (Batch, t [S], *, step_size [S]) -> (eps_x, eps_e).
        state: the batch at ``ts[0]`` (`sample_prior`).
        ts: decreasing time grid ``[n + 1]`` ending at 0 (`shortcut_timesteps`).
        sde: the process constants; default ``MaterialSDE()``; must match the training.
        generator: unused (kept for the common signature; the jumps draw nothing).
        callback: called with ``{"i", "t", "state", "eps_x", "eps_e"}`` every step (the
            model's eps, before the score gain).
        score_gain: gamma >= 0 of the factor 1 + gamma t on the position noise.

    Returns:
        The batch at ``ts[-1]``.

    References:
        Frans et al. 2025, section 3 (few-step sampling); AMShortcut; docs/diffusion.md,
        *AMShortcut*;
        Ingraham et al. 2023 (low-temperature sampling by a scaled score).
    """
    del generator  # deterministic given the state
    sde = MaterialSDE() if sde is None else sde
    ts = check_timesteps(ts)
    score_gain = check_score_gain(score_gain)
    dtype, device = state.positions.dtype, state.positions.device
    for i in range(ts.numel() - 1):
        t, d = float(ts[i]), float(ts[i] - ts[i + 1])
        t_systems = torch.full((state.n_systems,), t, dtype=dtype, device=device)
        d_systems = torch.full((state.n_systems,), d, dtype=dtype, device=device)
        eps_x, eps_e = predict(model, state, t, step_size=d_systems)
        if callback is not None:
            callback({"i": i, "t": t, "state": state, "eps_x": eps_x, "eps_e": eps_e})
        state = _gained_jump(state, t_systems, d_systems, eps_x, eps_e, sde, score_gain)
    return state
