"""Exponential moving average (EMA) of model weights, as plain state dicts.

References:
    Polyak & Juditsky, SIAM J. Control Optim. 30, 838 (1992) (iterate averaging); the
    warm-up min(decay, (1 + n) / (10 + n)) follows TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_init(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's state_dict to start the average from."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def ema_decay_at(decay: float, n_updates: int) -> float:
    """Warmed-up decay after `n_updates` previous updates: min(decay, (1 + n) / (10 + n))."""
    return min(decay, (1.0 + n_updates) / (10.0 + n_updates))


@torch.no_grad()
def ema_update(
    ema: dict[str, torch.Tensor], model: nn.Module, decay: float, n_updates: int
) -> None:
    """In place: ema <- d ema + (1 - d) w for floating-point entries (d = warmed-up decay);
    other entries (integer buffers) are copied."""
    d = ema_decay_at(decay, n_updates)
    for key, value in model.state_dict().items():
        target = ema[key]
        if target.is_floating_point():
            target.mul_(d).add_(value.detach(), alpha=1.0 - d)
        else:
            target.copy_(value)
