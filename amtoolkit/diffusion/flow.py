"""Material ODE: flow matching on periodic positions and element embeddings.

Time runs as in the rest of the package: t = 1 is noise, t = 0 is data. A data sample
(X, E) is paired with a noise sample (X_noise, E_noise) from the prior (`sample_prior`:
positions uniform in the cell, embeddings N(0, sigma_max_E^2)) and joined by a straight
path, periodic for the positions:

    D = mic(X - X_noise)                     (minimum-image displacement)
    X_t = X_noise + (1 - t) D,   E_t = t E_noise + (1 - t) E

The model reads (X_t, E_t, t) and predicts the velocity towards the data,
v_X = D (with its per-system mean removed) and v_E = E - E_noise, in the slots that
hold (eps_x, eps_e) for the score model; sampling integrates X <- X + v_X dt,
E <- E + v_E dt from the prior down to t = 0 with a positive step dt.

The position target is made mean-free because the denoiser's position output is
(its per-system mean is removed); a common translation of every atom of a system does
not change the structure, so nothing is lost.

References:
    Lipman et al., ICLR 2023, "Flow matching for generative modeling" (conditional
    flow matching, eqs. 21-23 with sigma_min = 0); Liu et al., ICLR 2023, "Flow straight
    and fast" (rectified flow); AMShortcut (material ODE baseline); Miller et al., ICML
    2024, "FlowMM" (periodic shortest paths); docs/diffusion.md, *Material ODE (flow
    matching)*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import remove_system_mean, system_mean
from amtoolkit.diffusion.forward import sample_time
from amtoolkit.diffusion.loss import ELEMENT_LOSS_WEIGHT
from amtoolkit.diffusion.prior import sample_prior
from amtoolkit.diffusion.samplers import check_timesteps, predict
from amtoolkit.diffusion.schedules import MaterialSDE

VelocityModel = Callable[[Batch, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(Batch, t [S]) -> (v_x [N, 3], v_e [N, n_classes]): the velocity towards the data."""

Callback = Callable[[dict[str, Any]], None]


def minimum_image(
    vectors: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor
) -> torch.Tensor:
    """Periodic image of each vector with fractional coordinates in [-1/2, 1/2].

    The vector is written in the basis of its system's cell, each fractional coordinate
    is shifted by the nearest integer, and the result is turned back into Å. The result
    differs from the input by a lattice vector. For orthorhombic cells it is the
    shortest image; for strongly tilted triclinic cells it may not be the shortest, but
    it is unique and continuous inside the half-open box, which is all the flow path
    needs (the same image at every t).

    Args:
        vectors: per-atom displacements, Å. [N, 3]
        cell: cell vectors as rows, Å. [S, 3, 3]
        system_idx: system of each atom. [N]

    Returns:
        The wrapped displacements, Å. [N, 3]
    """
    inverse = torch.linalg.inv(cell)[system_idx]  # [N, 3, 3]
    fractional = torch.einsum("ni,nij->nj", vectors, inverse)
    fractional = fractional - torch.round(fractional)
    return torch.einsum("ni,nij->nj", fractional, cell[system_idx])


def flow_path(
    batch: Batch, noise: Batch, t: torch.Tensor
) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """The point at time t on the straight (periodic) path from `noise` to `batch`.

    X_t = X_noise + (1 - t) mic(X - X_noise) and E_t = t E_noise + (1 - t) E; cell and
    properties are those of `batch`.

    Args:
        batch: data x_0 (positions may be unwrapped).
        noise: a prior sample x_1 with the same atoms (`sample_prior`).
        t: time of each system in [0, 1]. [S]

    Returns:
        (x_t, target v_x [N, 3] (mean-free per system), target v_e [N, n_classes]).

    References:
        Lipman et al. 2023, eq. 23 (optimal-transport conditional path, sigma_min = 0).
    """
    t = torch.as_tensor(t, dtype=batch.positions.dtype, device=batch.positions.device)
    if t.shape != (batch.n_systems,):
        raise ValueError(
            f"t must have shape [n_systems] = [{batch.n_systems}], got {list(t.shape)}"
        )
    if noise.positions.shape != batch.positions.shape or not torch.equal(
        noise.system_idx, batch.system_idx
    ):
        raise ValueError(
            f"noise has {noise.n_atoms} atoms in {noise.n_systems} systems, the data "
            f"{batch.n_atoms} in {batch.n_systems}; they must match atom by atom"
        )
    displacement = minimum_image(
        batch.positions - noise.positions, batch.cell, batch.system_idx
    )  # [N, 3]
    t_atom = t[batch.system_idx].unsqueeze(-1)  # [N, 1]
    positions = noise.positions + (1.0 - t_atom) * displacement
    elements = t_atom * noise.elements + (1.0 - t_atom) * batch.elements
    v_x = remove_system_mean(displacement, batch.system_idx, batch.n_systems)
    v_e = batch.elements - noise.elements
    return batch.replace(positions=positions, elements=elements), v_x, v_e


def flow_loss(
    model: VelocityModel,
    batch: Batch,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    *,
    t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flow-matching loss MSE(v_X, v_hat_X) + 0.5 MSE(v_E, v_hat_E).

    Each system gets t ~ U[t_min, t_max] (the training range of the score model, so the
    same time embedding range and t bins apply; unless `t` is given) and a prior sample
    as its noise end (`sample_prior` with the batch's cells, drawn after t). The MSEs
    average over atoms and components as in `denoising_loss`.

    Args:
        model: (Batch, t [S]) -> (v_hat_x [N, 3], v_hat_e [N, n_classes]).
        batch: clean structures with one-hot elements.
        sde: the process constants (sigma_max_E of the prior, t_min, t_max); default
            ``MaterialSDE()``.
        generator: random source for t and the noise.
        t: fixed times per system [S] instead of random ones.

    Returns:
        (loss scalar, per-system loss [S], t [S]).

    References:
        Lipman et al. 2023, eq. 23 (conditional flow matching loss); AMShortcut (material
        ODE); docs/diffusion.md, *Material ODE (flow matching)*.
    """
    sde = MaterialSDE() if sde is None else sde
    dtype, device = batch.positions.dtype, batch.positions.device
    if t is None:
        t = sample_time(batch.n_systems, sde, generator, dtype=dtype, device=device)
    t = torch.as_tensor(t, dtype=dtype, device=device)
    noise = sample_prior(
        batch.cell,
        batch.atoms_per_system,
        batch.elements.shape[-1],
        sde,
        generator,
        batch.properties,
    )
    noisy, v_x, v_e = flow_path(batch, noise, t)
    v_hat_x, v_hat_e = model(noisy, t)
    err_x = (v_hat_x - v_x).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    err_e = (v_hat_e - v_e).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    per_atom = err_x + ELEMENT_LOSS_WEIGHT * err_e  # [N, 1]
    per_system = system_mean(per_atom, batch.system_idx, batch.n_systems).squeeze(-1)
    return per_atom.mean(), per_system, t


def flow_timesteps(
    steps: int,
    sde: MaterialSDE | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Even sampling grid of `steps` Euler steps from t_max down to 0.

    The model is evaluated at ``t_max, ..., t_max / steps`` (never at t = 0, and never
    outside the training range at the top). The prior, the exact law at t = 1, is used
    as the state at t_max: the true X_{t_max} lies (1 - t_max) of the way along the path,
    1 % for t_max = 0.99, the same approximation the score samplers make.

    Args:
        steps: number of Euler steps (model evaluations), >= 1.
        sde: the process (its t_max); default ``MaterialSDE()``.
        dtype: dtype of the grid.
        device: device of the grid.

    Returns:
        Decreasing times ``[steps + 1]``, first t_max, last 0.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    sde = MaterialSDE() if sde is None else sde
    return torch.linspace(sde.t_max, 0.0, steps + 1, dtype=dtype, device=device)


@torch.no_grad()
def sample_flow(
    model: VelocityModel,
    state: Batch,
    ts: torch.Tensor,
    *,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Batch:
    """Euler integration of the material ODE from ``ts[0]`` to ``ts[-1]``.

    With the positive step dt = t_i - t_{i+1} and the predicted velocities at t_i,

        X <- X + v_X dt,   E <- E + v_E dt.

    Args:
        model: (Batch, t [S]) -> (v_x [N, 3], v_e [N, n_classes]) (a flow-trained
            ScoreDenoiser, or a wrapper such as `guided`).
        state: the batch at ``ts[0]`` (`sample_prior`).
        ts: decreasing time grid ``[n + 1]`` in [0, 1) ending at 0 (`flow_timesteps`).
        sde: unused (kept for the common signature; the flow has no schedule).
        generator: unused (the flow draws nothing).
        callback: called every step, before the update, with ``{"i", "t", "state",
            "eps_x", "eps_e"}``; the ``eps_*`` entries hold the velocities.

    Returns:
        The batch at ``ts[-1]`` (positions unwrapped, elements continuous).

    References:
        Lipman et al. 2023 (sampling the flow ODE); docs/diffusion.md, *Material ODE
        (flow matching)*.
    """
    del sde, generator  # deterministic, schedule-free
    ts = check_timesteps(ts)
    for i in range(ts.numel() - 1):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        v_x, v_e = predict(model, state, t)
        if callback is not None:
            callback({"i": i, "t": t, "state": state, "eps_x": v_x, "eps_e": v_e})
        state = state.replace(
            positions=state.positions + v_x * dt, elements=state.elements + v_e * dt
        )
    return state
