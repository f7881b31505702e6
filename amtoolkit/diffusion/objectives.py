"""Training objectives by name: the loss a model is trained with.

- ``"score"``: `denoising_loss`, noise prediction of the score SDE (AMDEN);
- ``"flow"``: `flow_loss`, velocity prediction of the material ODE (flow matching);
- ``"shortcut"``: `shortcut_loss`, AMShortcut (denoising at d = 0 plus the
  self-consistency of jumps; needs a model with ``step_size_embedding``).

Every loss has the signature ``loss(model, batch, sde=None, generator=None, *, t=None)
-> (loss scalar, per-system loss [S], t [S])``.

`SAMPLING` says which samplers generate with a model of each objective and on which time
grid; `sampling_method` picks one by name (``"ode"`` is the probability-flow ODE of a
score model and the learned flow of a flow model; ``"hmc"`` needs an energy model).

References:
    AMDEN; AMShortcut; docs/diffusion.md, *Samplers by objective*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from amtoolkit.diffusion.flow import flow_loss, flow_timesteps, sample_flow
from amtoolkit.diffusion.hmc import sample_hmc
from amtoolkit.diffusion.loss import denoising_loss
from amtoolkit.diffusion.samplers import Sampler, sample_ode, sample_sde
from amtoolkit.diffusion.schedules import get_timesteps
from amtoolkit.diffusion.shortcut import sample_shortcut, shortcut_loss, shortcut_timesteps

Loss = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

LOSSES: dict[str, Loss] = {
    "score": denoising_loss,
    "flow": flow_loss,
    "shortcut": shortcut_loss,
}
"""Training losses by objective name (configuration is data, STYLE item 11)."""

OBJECTIVES: tuple[str, ...] = tuple(LOSSES)
"""Names of the training objectives."""


Timesteps = Callable[..., torch.Tensor]
"""``timesteps(steps, sde) -> decreasing grid [steps + 1]`` ending at 0."""


@dataclasses.dataclass(frozen=True)
class SamplingMethod:
    """A sampler and the time grid it integrates over.

    Attributes:
        sampler: function with the common sampler signature (`amtoolkit.diffusion.samplers`).
        timesteps: grid builder ``(steps, sde) -> ts``.
        needs_energy: only for energy models (``DenoiserConfig.kind == "energy"``).
        restarts: re-noising with the score process (charge-balance restarts) is valid.
        noise_scale: the sampler takes a ``noise_scale`` (stochastic samplers).
        score_gain: the sampler takes a ``score_gain`` (the samplers of a score: reverse
            SDE, probability-flow ODE and shortcut jumps).
    """

    sampler: Sampler
    timesteps: Timesteps
    needs_energy: bool = False
    restarts: bool = True
    noise_scale: bool = False
    score_gain: bool = False


_SDE = SamplingMethod(sample_sde, get_timesteps, noise_scale=True, score_gain=True)
_PF_ODE = SamplingMethod(sample_ode, get_timesteps, score_gain=True)
_HMC = SamplingMethod(sample_hmc, get_timesteps, needs_energy=True, noise_scale=True)

SAMPLING: dict[str, dict[str, SamplingMethod]] = {
    "score": {"sde": _SDE, "ode": _PF_ODE, "hmc": _HMC},
    "shortcut": {
        "sde": _SDE,
        "ode": _PF_ODE,
        "shortcut": SamplingMethod(sample_shortcut, shortcut_timesteps, score_gain=True),
        "hmc": _HMC,
    },
    "flow": {"ode": SamplingMethod(sample_flow, flow_timesteps, restarts=False)},
}
"""Objective -> sampler name -> method (configuration is data, STYLE item 11)."""


def sampler_names(objective: str, kind: str = "score") -> list[str]:
    """Samplers that work with a model of `objective` and denoiser `kind`."""
    methods = SAMPLING.get(objective, {})
    return [name for name, m in methods.items() if kind == "energy" or not m.needs_energy]


def sampling_method(objective: str, name: str, kind: str = "score") -> SamplingMethod:
    """The method `name` for a model of `objective` and denoiser `kind`.

    Raises:
        ValueError: an unknown objective, or a sampler this model cannot use (the message
            lists the ones it can).
    """
    if objective not in SAMPLING:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(SAMPLING)}")
    allowed = sampler_names(objective, kind)
    if not any(name in methods for methods in SAMPLING.values()):
        raise ValueError(f"unknown sampler {name!r}; this model supports: {', '.join(allowed)}")
    if name not in allowed:
        raise ValueError(
            f"sampler {name!r} does not work with this model (objective {objective!r}, "
            f"kind {kind!r}); use one of: {', '.join(allowed)}"
        )
    return SAMPLING[objective][name]
