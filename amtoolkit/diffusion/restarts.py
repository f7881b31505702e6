"""Restarts: re-noise rejected samples to an intermediate time and denoise them again.

References:
    Xu et al., NeurIPS 2023, "Restart sampling for improving generative processes"
    (forward re-noising to an intermediate time, then the reverse process again);
    AMDEN (rejecting charge-unbalanced SiO2 samples).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import put_systems, select_systems
from amtoolkit.diffusion.forward import add_noise
from amtoolkit.diffusion.samplers import Model, Sampler, check_timesteps
from amtoolkit.diffusion.schedules import MaterialSDE
from amtoolkit.diffusion.streams import select_streams

Accept = Callable[[Batch], torch.Tensor]
"""Batch -> [S] bool, True for a sample that is kept."""


def _accepted(accept: Accept, batch: Batch) -> torch.Tensor:
    ok = torch.as_tensor(accept(batch), device=batch.positions.device)
    if ok.shape != (batch.n_systems,) or ok.dtype != torch.bool:
        raise ValueError(
            f"accept must return a bool tensor of shape [{batch.n_systems}], got "
            f"{ok.dtype} {list(ok.shape)}"
        )
    return ok.clone()


def restart_timesteps(ts: torch.Tensor, restart_t: float) -> torch.Tensor:
    """The part of the grid `ts` below `restart_t`, with `restart_t` put in front."""
    ts = check_timesteps(ts)
    if not 0.0 < restart_t < float(ts[0]):
        raise ValueError(
            f"restart_t={restart_t:g} must lie in (0, {float(ts[0]):g}), the grid's first time"
        )
    return torch.cat([ts.new_full((1,), restart_t), ts[ts < restart_t]])


def sample_with_restarts(
    sampler: Sampler,
    model: Model,
    state: Batch,
    ts: torch.Tensor,
    *,
    accept: Accept,
    restart_t: float = 0.3,
    max_restarts: int = 3,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Batch, torch.Tensor]:
    """Sample, then re-noise and re-denoise the systems `accept` rejects.

    After the first run of `sampler` over `ts`, every system that `accept` rejects is
    taken forward to `restart_t` from its current sample (``add_noise``: X + sigma_X eps,
    alpha_E E + sigma_E eps) and denoised again over the part of `ts` below `restart_t`.
    Only rejected systems are re-run; this repeats until all are accepted or a system
    has been restarted `max_restarts` times. Systems still rejected then are returned
    as they are (check with ``accept(batch)``).

    Args:
        sampler: a sampler with the common signature (`sample_sde`, `sample_ode`, ...).
        model: (Batch, t [S]) -> (eps_x, eps_e).
        state: the batch at ``ts[0]`` (e.g. `sample_prior`).
        ts: decreasing time grid ending at 0.
        accept: Batch -> [S] bool (e.g. `charge_balance(vocabulary.numbers)`).
        restart_t: time the rejected samples are re-noised to, in (0, ts[0]).
        max_restarts: most restarts of one system (0 = plain sampling).
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source for the sampler and the re-noising.

    Returns:
        (final batch, number of restarts of each system [S] long).

    References:
        Xu et al. 2023 (restart sampling); AMDEN (charge-balance rejection).
    """
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
    sde = MaterialSDE() if sde is None else sde
    short_ts = restart_timesteps(ts, restart_t)
    out = sampler(model, state, ts, sde=sde, generator=generator)
    accepted = _accepted(accept, out)
    restarts = torch.zeros(out.n_systems, dtype=torch.long, device=out.positions.device)
    for _ in range(max_restarts):
        rejected = ~accepted
        if not bool(rejected.any()):
            break
        part = select_systems(out, rejected)
        t = torch.full(
            (part.n_systems,), restart_t, dtype=part.positions.dtype, device=part.positions.device
        )
        streams = select_streams(generator, rejected)  # the rejected systems' own streams
        noisy, _, _ = add_noise(part, t, sde, streams)
        part = sampler(model_for(model, rejected), noisy, short_ts, sde=sde, generator=streams)
        out = put_systems(out, rejected, part)
        restarts[rejected] += 1
        accepted[rejected] = _accepted(accept, part)
    return out, restarts


def model_for(model: Model, mask: torch.Tensor) -> Model:
    """`model` for the systems where `mask` [S] is True: a model that draws from one
    stream per system (`GuidedModel` with `Streams`) must draw from theirs."""
    select = getattr(model, "select_systems", None)
    return model if select is None else select(mask)
