"""Toy models with known noise predictions for the diffusion tests.

They follow the model contract (Batch, t [S]) -> (eps_x [N, 3], eps_e [N, n_classes]).
"""

from __future__ import annotations

import dataclasses

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion import MaterialSDE, sample_prior
from amtoolkit.diffusion._batch_ops import remove_system_mean


def make_state(
    n_systems: int,
    n_atoms: int,
    n_classes: int,
    generator: torch.Generator,
    *,
    length: float = 6.0,
    dtype: torch.dtype = torch.float64,
    sde: MaterialSDE | None = None,
    n_properties: int = 0,
) -> Batch:
    """Prior samples of `n_systems` cubic cells of `n_atoms` atoms each."""
    cell = length * torch.eye(3, dtype=dtype).expand(n_systems, 3, 3).clone()
    properties = torch.zeros((n_systems, n_properties), dtype=dtype)
    return sample_prior(
        cell, torch.full((n_systems,), n_atoms), n_classes, sde, generator, properties
    )


@dataclasses.dataclass
class DeltaModel:
    """Exact noise prediction when the data is one fixed configuration (X0, E0).

    X_t = X0 + sigma_X eps and E_t = alpha_E E0 + sigma_E eps, so
    eps = (X_t - X0) / sigma_X and (E_t - alpha_E E0) / sigma_E.
    """

    positions: torch.Tensor  # X0 [N, 3]
    elements: torch.Tensor  # E0 [N, n_classes]
    sde: MaterialSDE
    system_idx: torch.Tensor | None = None  # [N]; with it, properties[:, 0] = system id

    def __call__(self, batch: Batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0, e0 = self.positions, self.elements
        if self.system_idx is not None:  # a sub-batch: find its systems by their id
            ids = batch.properties[:, 0].long()
            rows = torch.isin(self.system_idx, ids)
            x0, e0 = x0[rows], e0[rows]
        t_atom = t[batch.system_idx].unsqueeze(-1)
        eps_x = (batch.positions - x0) / self.sde.sigma_x(t_atom)
        eps_e = (batch.elements - self.sde.alpha_e(t_atom) * e0) / self.sde.sigma_e(t_atom)
        return eps_x, eps_e


@dataclasses.dataclass
class GaussianModel:
    """Exact noise prediction for Gaussian data.

    Positions: X0 = mu_x + s_x P z (P removes the per-system mean, as the forward noise
    does), so X_t - mu_x = sqrt(s_x^2 + sigma_X^2) P z and
    eps = sigma_X P (X_t - mu_x) / (s_x^2 + sigma_X^2).
    Elements: E0 ~ N(mu_e, s_e^2) per component, E_t ~ N(alpha mu_e, alpha^2 s_e^2 + sigma^2),
    eps = sigma_E (E_t - alpha mu_e) / (alpha^2 s_e^2 + sigma_E^2).
    """

    mu_x: torch.Tensor  # [N, 3]
    s_x: float
    mu_e: torch.Tensor  # [N, n_classes]
    s_e: float
    sde: MaterialSDE

    def __call__(self, batch: Batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_atom = t[batch.system_idx].unsqueeze(-1)
        sigma_x = self.sde.sigma_x(t_atom)
        dx = remove_system_mean(batch.positions - self.mu_x, batch.system_idx, batch.n_systems)
        eps_x = sigma_x * dx / (self.s_x**2 + sigma_x**2)
        alpha, sigma_e = self.sde.alpha_e(t_atom), self.sde.sigma_e(t_atom)
        eps_e = (
            sigma_e * (batch.elements - alpha * self.mu_e) / (alpha**2 * self.s_e**2 + sigma_e**2)
        )
        return eps_x, eps_e


@dataclasses.dataclass
class RecordingModel:
    """Wraps a model and records (n_systems, t) of every call."""

    model: object
    calls: list[tuple[int, torch.Tensor]] = dataclasses.field(default_factory=list)

    def __call__(self, batch: Batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append((batch.n_systems, t.clone()))
        return self.model(batch, t)  # type: ignore[operator]


def zero_model(batch: Batch, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicts zero noise everywhere."""
    return torch.zeros_like(batch.positions), torch.zeros_like(batch.elements)
