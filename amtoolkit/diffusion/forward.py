"""Forward (noising) process of the material diffusion.

References:
    AMDEN / AMShortcut material diffusion; docs/diffusion.md, *Forward process*.
"""

from __future__ import annotations

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import element_noise, position_noise
from amtoolkit.diffusion.schedules import MaterialSDE


def sample_time(
    n_systems: int,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    focus: tuple[float, float] | None = None,
    focus_fraction: float = 0.5,
) -> torch.Tensor:
    """Training times, one per system: t ~ U[t_min, t_max], or a mixture that favours a window.

    With `focus` = (low, high), each system draws from U[low, high] with probability
    `focus_fraction` and from U[t_min, t_max] otherwise: more training signal where
    the network is weakest (for a-Si, the noise levels at which the bonding network
    forms) while every t keeps some weight. The loss is not reweighted, so the model
    still learns the same noise prediction at every t.

    Args:
        n_systems: number of draws.
        sde: the process constants (t_min, t_max); default ``MaterialSDE()``.
        generator: random source.
        dtype: dtype of the times.
        device: device of the times.
        focus: (low, high) window, t_min <= low < high <= t_max; None = uniform.
        focus_fraction: probability of a draw from the window, in [0, 1].

    Returns:
        t [n_systems].

    References:
        AMDEN (t ~ U in training; docs/diffusion.md, *Training loss*); Karras et al.,
        NeurIPS 2022, section 5
        (a training noise distribution that favours the levels that matter).
    """
    sde = MaterialSDE() if sde is None else sde
    u = torch.rand(n_systems, generator=generator, dtype=dtype, device=device)
    t = sde.t_min + (sde.t_max - sde.t_min) * u
    if focus is None:
        return t
    low, high = check_time_focus(focus, focus_fraction, sde)
    pick = torch.rand(n_systems, generator=generator, dtype=dtype, device=device)
    return torch.where(pick < focus_fraction, low + (high - low) * u, t)


def check_time_focus(
    focus: tuple[float, float], fraction: float, sde: MaterialSDE
) -> tuple[float, float]:
    """Validate a training-time window and its fraction; returns (low, high).

    Raises:
        ValueError: a window outside [t_min, t_max] or empty, or a fraction outside [0, 1].
    """
    if len(focus) != 2:
        raise ValueError(f"the time focus must be two times (low, high), got {list(focus)}")
    low, high = (float(x) for x in focus)
    if not sde.t_min <= low < high <= sde.t_max:
        raise ValueError(
            f"the time focus must satisfy t_min <= low < high <= t_max "
            f"({sde.t_min} <= low < high <= {sde.t_max}), got [{low}, {high}]"
        )
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the time focus fraction must lie in [0, 1], got {fraction}")
    return low, high


def add_noise(
    batch: Batch,
    t: torch.Tensor,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """Draw x_t from the forward process given clean data x_0 = `batch`.

    X_t = X_0 + sigma_X(t) eps_X with the per-system mean of eps_X removed (translation
    invariance: the centre of mass of each system is not noised), and
    E_t = alpha_E(t) E_0 + sigma_E(t) eps_E. Cells and properties are kept. Noise
    follows the batch's dtype and device.

    Args:
        batch: clean structures (elements one-hot, or any current sample to re-noise).
        t: time of each system, in [0, 1). [n_systems]
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source (on the batch's device) for reproducible noise.

    Returns:
        (noisy batch, eps_x [n_atoms, 3] (zero mean per system), eps_e [n_atoms, n_classes]).

    References:
        AMDEN; docs/diffusion.md, *Forward process*.
    """
    sde = MaterialSDE() if sde is None else sde
    t = torch.as_tensor(t, dtype=batch.positions.dtype, device=batch.positions.device)
    if t.shape != (batch.n_systems,):
        raise ValueError(
            f"t must have shape [n_systems] = [{batch.n_systems}], got {list(t.shape)}"
        )
    eps_x = position_noise(batch, generator)  # [n_atoms, 3]
    eps_e = element_noise(batch, generator)  # [n_atoms, n_classes]
    t_atom = t[batch.system_idx].unsqueeze(-1)  # [n_atoms, 1]
    positions = batch.positions + sde.sigma_x(t_atom) * eps_x
    elements = sde.alpha_e(t_atom) * batch.elements + sde.sigma_e(t_atom) * eps_e
    return batch.replace(positions=positions, elements=elements), eps_x, eps_e
