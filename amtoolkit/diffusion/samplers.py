"""Samplers of the material diffusion: pure functions with one signature (STYLE item 1).

Every sampler is ``sampler(model, state, ts, *, sde=None, generator=None, callback=None)
-> Batch``: `model` is any callable ``(Batch, t [S]) -> (eps_hat_x [N, 3], eps_hat_e
[N, n_classes])`` (a ScoreDenoiser, or a wrapper such as `guided`), `state` the batch at
time ``ts[0]`` (usually `sample_prior`), `ts` a decreasing time grid ending at 0
(`get_timesteps`). The score is s = -eps_hat / sigma(t). Positions are never wrapped
here (wrap at output, `amtoolkit.data.batch.to_atoms`); the injected position noise has
its per-system mean removed, like the training noise. Random draws use `generator`
and follow the state's dtype and device.

`callback`, if given, is called once per step, before the update, with the dict
``{"i": step index, "t": time of the step (float), "state": Batch at t,
"eps_x": eps_hat_x, "eps_e": eps_hat_e}``.

References:
    Song et al., ICLR 2021, "Score-based generative modeling through SDEs" (reverse SDE,
    eq. 6; probability-flow ODE, eq. 13); AMDEN; k-diffusion ``sampling.py`` for the
    function layout; docs/diffusion.md, *Samplers*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import element_noise, position_noise
from amtoolkit.diffusion.schedules import MaterialSDE

Model = Callable[[Batch, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(Batch, t [S]) -> (eps_hat_x [N, 3], eps_hat_e [N, n_classes])."""

Callback = Callable[[dict[str, Any]], None]

CALLBACK_KEYS = ("i", "t", "state", "eps_x", "eps_e")
"""The keys of the dict a sampler passes to its callback."""


def check_timesteps(ts: torch.Tensor, name: str = "ts") -> torch.Tensor:
    """Validate a sampling grid: 1-D, >= 2 points, strictly decreasing, in [0, 1), all > 0
    but the last (the model is never evaluated at t = 0). Returns it as a float64 CPU tensor.

    Raises:
        ValueError: naming the grid as `name` and the offending values.
    """
    ts = torch.as_tensor(ts).detach().to(device="cpu", dtype=torch.float64)
    if ts.ndim != 1 or ts.numel() < 2:
        got = f"{ts.numel()} time(s)" if ts.ndim <= 1 else f"shape {list(ts.shape)}"
        raise ValueError(f"{name} must be a list of at least 2 times (a start and 0), got {got}")
    if not bool(torch.isfinite(ts).all()):
        raise ValueError(f"{name} must be finite, got {ts.tolist()}")
    rising = torch.nonzero(ts[1:] >= ts[:-1])
    if len(rising):
        k = int(rising[0, 0])
        raise ValueError(
            f"{name} must be strictly decreasing, got {float(ts[k]):g} then {float(ts[k + 1]):g}"
        )
    if float(ts[0]) >= 1.0 or float(ts[-1]) < 0.0:
        raise ValueError(f"{name} must lie in [0, 1), got {float(ts[0])} .. {float(ts[-1])}")
    return ts


MAX_NOISE_SCALE = 10.0
"""Largest noise scale taken: 1 is the reverse SDE, below 1 colder; far above it the
injected noise outgrows the cell and the positions overflow (1e30 ends in NaN)."""

MAX_SCORE_GAIN = 100.0
"""Largest score gain taken: the shipped models use 0-6; far above it the position step
overshoots by orders of magnitude (1e30 ends in NaN)."""


def _bounded(name: str, value: float, largest: float) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a number in
    [0, `largest`] (a string or a bool is not a number here)."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name} must be a number in [0, {largest:g}], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, {largest:g}], got {value!r}") from None
    if not (math.isfinite(number) and 0.0 <= number <= largest):
        raise ValueError(f"{name} must be a number in [0, {largest:g}], got {value}")
    return number


def check_noise_scale(noise_scale: float) -> float:
    """A valid noise scale of the reverse SDE: a number in [0, `MAX_NOISE_SCALE`]."""
    return _bounded("noise_scale", noise_scale, MAX_NOISE_SCALE)


def check_score_gain(score_gain: float) -> float:
    """A valid score gain (`score_factor`) of the sde, ode and shortcut samplers: a number
    in [0, `MAX_SCORE_GAIN`]."""
    return _bounded("score_gain", score_gain, MAX_SCORE_GAIN)


def score_factor(score_gain: float, t: float, dt: float = 0.0) -> float:
    """Factor kappa = 1 + gamma t on the position score for the score gain gamma, averaged
    over the step from t to t - dt: 1 + gamma (t - dt / 2).

    The average is what a step of any length must apply for the flow to integrate kappa
    consistently: with many small steps it is kappa(t); a single jump from t_max to 0
    gets 1 + gamma t_max / 2, not the 1 + gamma t_max that belongs to its start only.

    A network trained with an MSE loss predicts the conditional mean of the noise; where
    x_t leaves the clean structure uncertain (large t) that mean is shorter than the
    noise of any one structure, and the probability flow of such a score ends in
    blurred short-range order. A factor that grows with t makes up for it, as the excess
    drift of a colder reverse SDE (``noise_scale`` < 1) does for `sample_sde`.

    References:
        Ingraham et al., Nature 2023, "Illuminating protein space with a programmable
        generative model" (Chroma), low-temperature sampling by a scaled score.
    """
    return 1.0 + score_gain * (t - 0.5 * dt)


def predict(
    model: Model, state: Batch, t: float, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs at the common time `t` of every system, shapes checked; `kwargs` go
    to the model (e.g. ``step_size=`` [S] for shortcut models)."""
    t_systems = torch.full(
        (state.n_systems,), t, dtype=state.positions.dtype, device=state.positions.device
    )
    eps_x, eps_e = model(state, t_systems, **kwargs)
    if eps_x.shape != state.positions.shape or eps_e.shape != state.elements.shape:
        raise ValueError(
            f"model returned eps_x {list(eps_x.shape)} and eps_e {list(eps_e.shape)}; expected "
            f"{list(state.positions.shape)} and {list(state.elements.shape)}"
        )
    return eps_x, eps_e


@torch.no_grad()
def sample_sde(
    model: Model,
    state: Batch,
    ts: torch.Tensor,
    *,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise_scale: float = 1.0,
    score_gain: float = 0.0,
) -> Batch:
    """Euler-Maruyama integration of the reverse-time SDE from ``ts[0]`` to ``ts[-1]``.

    With the positive step dt = t_i - t_{i+1}, s = -eps_hat / sigma(t_i) and z ~ N(0, I)
    (position z mean-free per system):

        X <- X + g_X^2 kappa(t) s_X dt + lambda g_X sqrt(dt) z_X
        E <- E - (f_E E - g_E^2 s_E) dt + lambda g_E sqrt(dt) z_E,   f_E = -(pi/2) tan(pi t/2)

    which, for the noise scale lambda = 1, is AMDEN's ``x <- x - (f dt + g z sqrt(dt))``
    with the reverse drift f = f_forward - g^2 s (z and -z have the same law). lambda < 1
    injects less noise than the reverse SDE ("low-temperature" sampling, as in protein
    diffusion samplers): the samples concentrate where the learned density is high,
    which sharpens the short-range order an imperfect network blurs, at the cost of
    diversity; lambda = 0 follows the drift alone (not the probability-flow ODE, whose
    score term is halved). kappa(t) = 1 + gamma t for the score gain gamma (averaged over
    the step, `score_factor`) is colder where t is large and the network least sure, and
    leaves the small-t steps, where it is accurate, at the learned law: on a-Si, lambda = 1
    with gamma = 6 gives sharper and better-bonded structures than lambda = 0.4 alone.

    Args:
        model: (Batch, t [S]) -> (eps_hat_x, eps_hat_e).
        state: the batch at ``ts[0]`` (e.g. `sample_prior`).
        ts: decreasing time grid ``[n + 1]`` ending at 0 (`get_timesteps`).
        sde: the process constants; default ``MaterialSDE()``; must match the training.
        generator: random source (on the state's device).
        callback: called with ``{"i", "t", "state", "eps_x", "eps_e"}`` every step (the
            model's eps, before the score gain).
        noise_scale: lambda >= 0, the factor on the injected noise (1 = the reverse SDE).
        score_gain: gamma >= 0 of the factor 1 + gamma t on the position score.

    Returns:
        The batch at ``ts[-1]`` (positions unwrapped, elements continuous).

    References:
        Song et al. 2021, eq. 6 (reverse SDE); AMDEN (Euler-Maruyama); docs/diffusion.md,
        *Samplers*;
        Yim et al. 2023, FrameDiff (noise scale of the reverse SDE); Ingraham et al. 2023
        (low-temperature sampling by a scaled score).
    """
    sde = MaterialSDE() if sde is None else sde
    ts = check_timesteps(ts)
    noise_scale = check_noise_scale(noise_scale)
    score_gain = check_score_gain(score_gain)
    for i in range(ts.numel() - 1):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        eps_x, eps_e = predict(model, state, t)
        if callback is not None:
            callback({"i": i, "t": t, "state": state, "eps_x": eps_x, "eps_e": eps_e})
        score_x, score_e = scores(sde, t, score_factor(score_gain, t, dt) * eps_x, eps_e)
        g2_x, g2_e, f_e = float(sde.g2_x(t)), float(sde.g2_e(t)), float(sde.drift_e(t))
        z_x = position_noise(state, generator)
        z_e = element_noise(state, generator)
        positions = state.positions + g2_x * score_x * dt + noise_scale * math.sqrt(g2_x * dt) * z_x
        elements = (
            state.elements
            - (f_e * state.elements - g2_e * score_e) * dt
            + noise_scale * math.sqrt(g2_e * dt) * z_e
        )
        state = state.replace(positions=positions, elements=elements)
    return state


@torch.no_grad()
def sample_ode(
    model: Model,
    state: Batch,
    ts: torch.Tensor,
    *,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    score_gain: float = 0.0,
) -> Batch:
    """Euler integration of the probability-flow ODE from ``ts[0]`` to ``ts[-1]``.

    The deterministic flow with the same marginals as the SDE: the noise is dropped and
    the g^2 s term halved,

        X <- X + (1/2) g_X^2 kappa(t) s_X dt
        E <- E - (f_E E - (1/2) g_E^2 s_E) dt,

    with kappa(t) = 1 + gamma t for the score gain gamma (averaged over the step,
    `score_factor`; gamma = 0 is the probability-flow ODE itself, gamma > 0 a colder flow
    that sharpens the short-range order an imperfect network blurs).

    Args:
        model: (Batch, t [S]) -> (eps_hat_x, eps_hat_e).
        state: the batch at ``ts[0]`` (e.g. `sample_prior`).
        ts: decreasing time grid ``[n + 1]`` ending at 0 (`get_timesteps`).
        sde: the process constants; default ``MaterialSDE()``; must match the training.
        generator: unused (kept for the common signature; the flow draws nothing).
        callback: called with ``{"i", "t", "state", "eps_x", "eps_e"}`` every step (the
            model's eps, before the score gain).
        score_gain: gamma >= 0 of the factor 1 + gamma t on the position score.

    Returns:
        The batch at ``ts[-1]``.

    References:
        Song et al. 2021, eq. 13 (probability-flow ODE); docs/diffusion.md, *Samplers*;
        Ingraham et al. 2023 (low-temperature sampling by a scaled score).
    """
    del generator  # deterministic given the state (a model may still draw, via its wrapper)
    sde = MaterialSDE() if sde is None else sde
    ts = check_timesteps(ts)
    score_gain = check_score_gain(score_gain)
    for i in range(ts.numel() - 1):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        eps_x, eps_e = predict(model, state, t)
        if callback is not None:
            callback({"i": i, "t": t, "state": state, "eps_x": eps_x, "eps_e": eps_e})
        score_x, score_e = scores(sde, t, score_factor(score_gain, t, dt) * eps_x, eps_e)
        g2_x, g2_e, f_e = float(sde.g2_x(t)), float(sde.g2_e(t)), float(sde.drift_e(t))
        positions = state.positions + 0.5 * g2_x * score_x * dt
        elements = state.elements - (f_e * state.elements - 0.5 * g2_e * score_e) * dt
        state = state.replace(positions=positions, elements=elements)
    return state


def scores(
    sde: MaterialSDE, t: float, eps_x: torch.Tensor, eps_e: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores s = -eps_hat / sigma(t) of positions [N, 3] and elements [N, C].

    As in AMDEN; docs/diffusion.md, *Samplers*.
    """
    return -eps_x / float(sde.sigma_x(t)), -eps_e / float(sde.sigma_e(t))


Sampler = Callable[..., Batch]

SAMPLERS: dict[str, Sampler] = {"sde": sample_sde, "ode": sample_ode}
"""Samplers by name (configuration is data, STYLE item 11)."""
