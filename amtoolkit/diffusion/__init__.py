"""The material diffusion process: schedules, forward noising, loss, prior, samplers.

- `MaterialSDE`, `get_timesteps`: VE positions + VP-cosine elements (docs/diffusion.md).
- `add_noise`, `sample_time` (uniform, or favouring a window of t), `denoising_loss`:
  training.
- `sample_prior`, `sample_sde`, `sample_ode`, `SAMPLERS`: generation (pure functions
  with one signature; positions are never wrapped here).
- `guided`: classifier-free guidance (unconditional branch or ICG).
- `sample_hmc`, `hmc_step`, `draw_momenta`, `noise_energy_fn`: Hamiltonian Monte Carlo
  on the noise energy of an energy-based denoiser (HMC denoising).
- `sample_with_restarts`, `charge_balance`: re-noise and re-denoise rejected samples,
  e.g. charge-unbalanced SiO2; `rebalance`, `balanced_classes`, `HeldElements`: relabel
  what stays unbalanced to its most likely balanced elements and re-denoise with them held.
- `flow_loss`, `sample_flow`, `flow_timesteps`: the material ODE (flow matching).
- `shortcut_loss`, `sample_shortcut`, `shortcut_timesteps`: AMShortcut (step-size aware
  denoiser, few-step sampling); `LOSSES` / `OBJECTIVES`: training losses by name.

Nothing here reads files or builds `ase.Atoms`; use `amtoolkit.data.batch.to_atoms`.
"""

from __future__ import annotations

from amtoolkit.diffusion.balance import (
    HeldElements,
    balanced_classes,
    balanced_composition,
    rebalance,
)
from amtoolkit.diffusion.charge import (
    FORMAL_CHARGES,
    ChargeBalance,
    charge_balance,
    class_charges,
    is_charge_balanced,
    net_charge,
)
from amtoolkit.diffusion.flow import (
    flow_loss,
    flow_path,
    flow_timesteps,
    minimum_image,
    sample_flow,
)
from amtoolkit.diffusion.forward import add_noise, check_time_focus, sample_time
from amtoolkit.diffusion.guidance import GuidedModel, guided
from amtoolkit.diffusion.hmc import (
    HMC_STATS_KEYS,
    draw_momenta,
    hmc_step,
    noise_energy_fn,
    sample_hmc,
)
from amtoolkit.diffusion.loss import ELEMENT_LOSS_WEIGHT, denoising_loss
from amtoolkit.diffusion.objectives import (
    LOSSES,
    OBJECTIVES,
    SAMPLING,
    SamplingMethod,
    sampler_names,
    sampling_method,
)
from amtoolkit.diffusion.prior import sample_prior
from amtoolkit.diffusion.restarts import restart_timesteps, sample_with_restarts
from amtoolkit.diffusion.samplers import (
    CALLBACK_KEYS,
    SAMPLERS,
    check_noise_scale,
    check_score_gain,
    check_timesteps,
    sample_ode,
    sample_sde,
    score_factor,
)
from amtoolkit.diffusion.schedules import MaterialSDE, get_timesteps
from amtoolkit.diffusion.shortcut import (
    SHORTCUT_EVEN_FROM,
    SHORTCUT_GRID_RHO,
    SHORTCUT_LEVELS,
    jump_noise,
    sample_jump,
    sample_shortcut,
    self_consistency_target,
    shortcut_jump,
    shortcut_loss,
    shortcut_timesteps,
)
from amtoolkit.diffusion.streams import Streams

__all__ = [
    "CALLBACK_KEYS",
    "ELEMENT_LOSS_WEIGHT",
    "FORMAL_CHARGES",
    "HMC_STATS_KEYS",
    "SAMPLERS",
    "ChargeBalance",
    "GuidedModel",
    "HeldElements",
    "MaterialSDE",
    "add_noise",
    "balanced_classes",
    "balanced_composition",
    "charge_balance",
    "check_noise_scale",
    "check_score_gain",
    "check_time_focus",
    "check_timesteps",
    "class_charges",
    "denoising_loss",
    "draw_momenta",
    "get_timesteps",
    "guided",
    "hmc_step",
    "is_charge_balanced",
    "net_charge",
    "noise_energy_fn",
    "rebalance",
    "restart_timesteps",
    "sample_hmc",
    "sample_ode",
    "sample_prior",
    "sample_sde",
    "sample_time",
    "sample_with_restarts",
    "Streams",
    "score_factor",
]

__all__ += [  # material ODE (flow matching) and AMShortcut
    "LOSSES",
    "OBJECTIVES",
    "SAMPLING",
    "SHORTCUT_EVEN_FROM",
    "SHORTCUT_GRID_RHO",
    "SHORTCUT_LEVELS",
    "SamplingMethod",
    "flow_loss",
    "flow_path",
    "flow_timesteps",
    "jump_noise",
    "minimum_image",
    "sample_flow",
    "sample_jump",
    "sample_shortcut",
    "sampler_names",
    "sampling_method",
    "self_consistency_target",
    "shortcut_jump",
    "shortcut_loss",
    "shortcut_timesteps",
]
