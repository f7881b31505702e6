"""The material diffusion process: schedules, forward noising, loss, prior, samplers.

- `MaterialSDE`, `get_timesteps`: VE positions + VP-cosine elements (DESIGN section 4).
- `add_noise`, `sample_time`, `denoising_loss`: training.
- `sample_prior`, `sample_sde`, `sample_ode`, `SAMPLERS`: generation (pure functions
  with one signature; positions are never wrapped here).
- `guided`: classifier-free guidance (unconditional branch or ICG).
- `sample_with_restarts`, `charge_balance`: re-noise and re-denoise rejected samples,
  e.g. charge-unbalanced SiO2.

Nothing here reads files or builds `ase.Atoms`; use `amtoolkit.data.batch.to_atoms`.
"""

from __future__ import annotations

from amtoolkit.diffusion.charge import (
    FORMAL_CHARGES,
    ChargeBalance,
    charge_balance,
    class_charges,
    is_charge_balanced,
    net_charge,
)
from amtoolkit.diffusion.forward import add_noise, sample_time
from amtoolkit.diffusion.guidance import GuidedModel, guided
from amtoolkit.diffusion.loss import ELEMENT_LOSS_WEIGHT, denoising_loss
from amtoolkit.diffusion.prior import sample_prior
from amtoolkit.diffusion.restarts import restart_timesteps, sample_with_restarts
from amtoolkit.diffusion.samplers import CALLBACK_KEYS, SAMPLERS, sample_ode, sample_sde
from amtoolkit.diffusion.schedules import MaterialSDE, get_timesteps

__all__ = [
    "CALLBACK_KEYS",
    "ELEMENT_LOSS_WEIGHT",
    "FORMAL_CHARGES",
    "SAMPLERS",
    "ChargeBalance",
    "GuidedModel",
    "MaterialSDE",
    "add_noise",
    "charge_balance",
    "class_charges",
    "denoising_loss",
    "get_timesteps",
    "guided",
    "is_charge_balanced",
    "net_charge",
    "restart_timesteps",
    "sample_ode",
    "sample_prior",
    "sample_sde",
    "sample_time",
    "sample_with_restarts",
]
