"""Denoising (noise-prediction) training loss of the material diffusion.

References:
    AMDEN training objective (docs/diffusion.md, *Training loss*); Ho et al., NeurIPS 2020
    (eps prediction).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import system_mean
from amtoolkit.diffusion.forward import add_noise, sample_time
from amtoolkit.diffusion.schedules import MaterialSDE

ELEMENT_LOSS_WEIGHT = 0.5
"""Weight of the element-noise MSE relative to the position-noise MSE (AMDEN)."""

Model = Callable[[Batch, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def denoising_loss(
    model: Model,
    batch: Batch,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    *,
    t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise-prediction loss MSE(eps_X, eps_hat_X) + 0.5 MSE(eps_E, eps_hat_E).

    Each system gets its own t ~ U[t_min, t_max] (unless `t` is given), is noised with
    `add_noise` (mean-free position noise), and the model predicts both noises. The MSEs
    average over atoms and components: the scalar loss over every atom of the batch
    (systems weighted by their number of atoms), the per-system loss over that system's
    atoms only.

    Args:
        model: callable (Batch, t [S]) -> (eps_hat_x [N, 3], eps_hat_e [N, n_classes]).
        batch: clean structures with one-hot elements.
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source for t and the noise.
        t: fixed times per system [S] instead of random ones.

    Returns:
        (loss scalar, per-system loss [S], t [S]).

    References:
        AMDEN; docs/diffusion.md, *Training loss*.
    """
    sde = MaterialSDE() if sde is None else sde
    dtype, device = batch.positions.dtype, batch.positions.device
    if t is None:
        t = sample_time(batch.n_systems, sde, generator, dtype=dtype, device=device)
    noisy, eps_x, eps_e = add_noise(batch, t, sde, generator)
    t = torch.as_tensor(t, dtype=dtype, device=device)
    eps_hat_x, eps_hat_e = model(noisy, t)
    err_x = (eps_hat_x - eps_x).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    err_e = (eps_hat_e - eps_e).pow(2).mean(dim=-1, keepdim=True)  # [N, 1]
    per_atom = err_x + ELEMENT_LOSS_WEIGHT * err_e  # [N, 1]
    per_system = system_mean(per_atom, batch.system_idx, batch.n_systems).squeeze(-1)
    return per_atom.mean(), per_system, t
