"""The material diffusion process: noise schedules and SDE coefficients.

Positions follow a variance-exploding (VE) process and element embeddings a
variance-preserving process with a cosine progression (VP-cosine):

- positions: X_t = X_0 + sigma_X(t) eps, sigma_X(t) = sigma_max_X t;
- elements: E_t = alpha_E(t) E_0 + sigma_E(t) eps, alpha_E(t) = cos(pi t / 2),
  sigma_E(t) = sigma_max_E sin(pi t / 2).

Both are the marginals of linear forward SDEs dx = f(t) x dt + g(t) dw with
f = d log(alpha)/dt and g^2 = d sigma^2/dt - 2 f sigma^2:

- VE: f_X = 0, g_X^2 = d(sigma_max_X^2 t^2)/dt = 2 sigma_max_X^2 t;
- VP: f_E = -(pi/2) tan(pi t/2),
  g_E^2 = pi alpha_E sigma_E sigma_max_E + pi tan(pi t/2) sigma_E^2
        = pi sigma_max_E^2 tan(pi t/2).

References:
    AMDEN (score SDE on materials) and AMShortcut (material diffusion); Song et al., ICLR
    2021, "Score-based generative modeling through SDEs", eqs. 5-6 and appendix B (linear
    SDE marginals); docs/diffusion.md, *Forward process* and *SDE coefficients*.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

TimeLike = torch.Tensor | float


def _as_tensor(t: TimeLike) -> torch.Tensor:
    """`t` as a tensor (floats become float64 scalars, tensors are kept as they are)."""
    return t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)


@dataclasses.dataclass(frozen=True)
class MaterialSDE:
    """Constants of the material diffusion process and its coefficient functions.

    All methods take a time `t` (float or tensor of any shape, t in [0, 1)) and return a
    tensor of the same shape (float64 for a float argument).

    Attributes:
        sigma_max_x: position noise scale at t = 1, Å (1.5; 1.7 for MEG in AMDEN).
        sigma_max_e: element-embedding noise scale at t = 1 (dimensionless, 1.5).
        t_min: smallest training time and last grid time before the final step to 0.
        t_max: largest training time and first time of the sampling grid.

    References:
        AMDEN / AMShortcut material diffusion; docs/diffusion.md, *Forward process*.
    """

    sigma_max_x: float = 1.5
    sigma_max_e: float = 1.5
    t_min: float = 0.01
    t_max: float = 0.99

    def __post_init__(self) -> None:
        for name in ("sigma_max_x", "sigma_max_e"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not 0.0 < self.t_min < self.t_max < 1.0:
            raise ValueError(
                f"need 0 < t_min < t_max < 1 (tan(pi t/2) diverges at t = 1), "
                f"got t_min={self.t_min}, t_max={self.t_max}"
            )

    # positions: variance exploding ------------------------------------------------------
    def sigma_x(self, t: TimeLike) -> torch.Tensor:
        """Position noise scale sigma_X(t) = sigma_max_X t, Å."""
        return self.sigma_max_x * _as_tensor(t)

    def g2_x(self, t: TimeLike) -> torch.Tensor:
        """Squared position diffusion g_X^2(t) = d sigma_X^2/dt = 2 sigma_max_X^2 t, Å^2."""
        return 2.0 * self.sigma_max_x**2 * _as_tensor(t)

    # elements: variance preserving, cosine progression --------------------------------
    def alpha_e(self, t: TimeLike) -> torch.Tensor:
        """Element signal scale alpha_E(t) = cos(pi t / 2)."""
        return torch.cos(0.5 * math.pi * _as_tensor(t))

    def sigma_e(self, t: TimeLike) -> torch.Tensor:
        """Element noise scale sigma_E(t) = sigma_max_E sin(pi t / 2)."""
        return self.sigma_max_e * torch.sin(0.5 * math.pi * _as_tensor(t))

    def drift_e(self, t: TimeLike) -> torch.Tensor:
        """Forward element drift coefficient d log(alpha_E)/dt = -(pi/2) tan(pi t/2).

        The forward SDE drift is ``drift_e(t) * E``.
        """
        return -0.5 * math.pi * torch.tan(0.5 * math.pi * _as_tensor(t))

    def g2_e(self, t: TimeLike) -> torch.Tensor:
        """Squared element diffusion g_E^2(t) = d sigma_E^2/dt - 2 drift_e(t) sigma_E^2.

        Written as in AMDEN: pi alpha_E sigma_E sigma_max_E + pi tan(pi t/2) sigma_E^2
        (which equals pi sigma_max_E^2 tan(pi t/2)).
        """
        t = _as_tensor(t)
        sigma = self.sigma_e(t)
        return (
            math.pi * self.alpha_e(t) * sigma * self.sigma_max_e
            + math.pi * torch.tan(0.5 * math.pi * t) * sigma**2
        )

    # serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, float]:
        """JSON-ready constants (stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaterialSDE:
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown MaterialSDE keys {sorted(unknown)}; expected {sorted(known)}"
            )
        return cls(**{k: float(v) for k, v in data.items()})


def start_range(steps: int, sde: MaterialSDE) -> tuple[float, float]:
    """(low, high): a reverse grid of `steps` steps may start at any t with low < t <= high
    (above t_min, so that its even steps reach t_min; any t > 0 for one jump to 0)."""
    return (sde.t_min if steps > 1 else 0.0), sde.t_max


def get_timesteps(
    steps: int,
    sde: MaterialSDE | None = None,
    *,
    t_start: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sampling time grid: `steps` even points from t_max (or `t_start`) down to t_min, then 0.

    `steps` is the number of model evaluations (reverse steps), as in k-diffusion's
    ``get_sigmas_*`` (which also append the final zero): ``steps - 1`` even steps from
    t_max to t_min and a final step from t_min to 0. AMDEN's schedule ("200 even steps
    from 0.99 to 0.01, then a final step to 0") is ``get_timesteps(201)``.

    Args:
        steps: number of reverse steps, >= 1 (with 1: a single step from t_max to 0).
        sde: the process (its t_min and t_max); default ``MaterialSDE()``.
        t_start: first time instead of t_max, in (t_min, t_max] (partial diffusion from a
            re-noised structure, `amtoolkit.refine`); with ``steps == 1`` any time in
            (0, t_max].
        dtype: dtype of the grid.
        device: device of the grid.

    Returns:
        Decreasing times ``[steps + 1]``, first t_max (or `t_start`), last 0.

    References:
        AMDEN (reverse process grid); docs/diffusion.md, *Prior and time grid*.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    sde = MaterialSDE() if sde is None else sde
    start = sde.t_max if t_start is None else float(t_start)
    low, high = start_range(steps, sde)
    if not low < start <= high:
        raise ValueError(
            f"t_start must lie in ({low:g}, {high:g}] for {steps} step(s), got {t_start}"
        )
    grid = torch.linspace(start, sde.t_min, steps, dtype=dtype, device=device)
    return torch.cat([grid, grid.new_zeros(1)])
