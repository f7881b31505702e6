"""Energy-based denoiser: the noise prediction is the gradient of a scalar noise energy.

The network is the score denoiser's (node features [t, e_i, h_y ...], EGNN) read out as
an invariant per-atom term instead of a vector (docs/diffusion.md, *Energy models and HMC*):

    e_i   = 1/2 |u_i|^2 + gamma a_i,   u_i = X_i^(L, channel 0) - X_i,  a_i = Linear(H^L_i)
    S     = sum_i e_i                   (per system, invariant)
    E_hat = S / sigma_X(t)              (the noise energy, k_B T = 1)

and the noise predictions are its gradients, eps_x = grad_X S and eps_e = grad_E S, so
that the position score s_X = -eps_x / sigma_X = -grad_X E_hat is a conservative field
(which Hamiltonian Monte Carlo needs, `amtoolkit.diffusion.hmc`). E_hat is not a
physical energy.

References:
    AMDEN (energy-based denoiser for HMC denoising); Du et al., "Reduce, reuse, recycle:
    compositional generation with energy-based diffusion models and MCMC", ICML 2023;
    Salimans & Ho, "Should EBMs model the energy or the score?", 2021.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from amtoolkit.nn.denoiser import DENOISERS, DenoiserConfig, ScoreDenoiser, remove_system_mean
from amtoolkit.nn.graph import edge_vectors, periodic_edges

if TYPE_CHECKING:  # only the types: nn/ does not import the diffusion code at run time
    from amtoolkit.data.batch import Batch
    from amtoolkit.diffusion.schedules import MaterialSDE

GAMMA_INIT = 1.0
"""Initial weight gamma of the learned per-atom term a_i in e_i."""


class EnergyDenoiser(ScoreDenoiser):
    """EGNN noise energy whose gradients are the noise predictions: (Batch, t) -> (eps_x, eps_e).

    Same configuration (`DenoiserConfig` with ``kind="energy"``) and call signature as
    `ScoreDenoiser`, so samplers, guidance, `denoising_loss` and the trainer use it
    unchanged. The score denoiser's element head is replaced by the per-atom energy head
    ``Linear(hidden, 1)`` and the learnable scalar `gamma` (initialised to `GAMMA_INIT`).

    Gradients are taken with `torch.autograd.grad` inside `torch.enable_grad()`, so the
    model also works under `torch.no_grad()` (as in the samplers). In training mode (with
    gradients enabled) the graph of the gradients is kept (``create_graph``: the loss
    back-propagates through eps = grad S, double backprop); otherwise the outputs are
    detached.

    Scores: s_X = -eps_x / sigma_X(t) = -grad_X E_hat with E_hat = S / sigma_X(t). The
    element part is read with the element noise scale, s_E = -eps_e / sigma_E(t) =
    -grad_E S / sigma_E(t) (the samplers' convention), i.e. the element score is the
    gradient of S / sigma_E, not of E_hat; HMC acts on positions only.

    Args:
        config: the architecture (``kind`` should be ``"energy"``).

    References:
        AMDEN (energy-based denoiser); docs/diffusion.md, *Energy models and HMC*.
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__(config)
        del self.element_head  # eps_e is a gradient here, not a readout
        self.atom_energy = nn.Linear(config.hidden, 1, bias=False)  # a_i (a constant is void)
        self.gamma = nn.Parameter(torch.tensor(GAMMA_INIT))

    def potential(
        self,
        batch: Batch,
        t: torch.Tensor,
        *,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The unscaled potential S = sum_i e_i of each system and its per-atom terms.

        Differentiable in positions and elements (when gradients are enabled); invariant
        to rotations, reflections, translations and permutations.

        Args:
            batch: noisy systems (as for `ScoreDenoiser.forward`).
            t: diffusion time of each system. [n_systems] (a scalar is broadcast)
            step_size: shortcut step size [n_systems] (models with `step_size_embedding`).
            generator: source of the null-embedding draws.

        Returns:
            S per system [n_systems] and e_i = 1/2 |u_i|^2 + gamma a_i per atom [n_atoms], Å^2.
        """
        t, step_size = self._check(batch, t, step_size)
        src, dst, shifts = periodic_edges(
            batch.positions.detach(), batch.cell.detach(), batch.system_idx, self.config.cutoff
        )
        edge_vec = edge_vectors(batch.positions, batch.cell, batch.system_idx, src, dst, shifts)
        per_system = self.system_features(batch, t, step_size, generator)  # [S, F]
        h0 = torch.cat([per_system[batch.system_idx], batch.elements], dim=-1)
        h, u = self.egnn(self.node_embedding(h0), edge_vec, src, dst)
        displacement = u[:, 0]  # u_i = X_i^(L, 0) - X_i  [N, 3]
        learned = self.atom_energy(h).squeeze(-1)  # a_i  [N]
        per_atom = 0.5 * (displacement * displacement).sum(-1) + self.gamma * learned  # [N]
        total = per_atom.new_zeros(batch.n_systems).index_add_(0, batch.system_idx, per_atom)
        return total, per_atom

    def energy(
        self,
        batch: Batch,
        t: torch.Tensor,
        sde: MaterialSDE,
        *,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Noise energy E_hat(x, t) = S / sigma_X(t) of each system (k_B T = 1). [n_systems]

        The model does not know the diffusion process, hence `sde` (its sigma_X).
        Differentiable in positions when gradients are enabled.
        """
        total, _ = self.potential(batch, t, step_size=step_size, generator=generator)
        t_systems = torch.as_tensor(t, dtype=total.dtype, device=total.device)
        return total / sde.sigma_x(t_systems.expand(batch.n_systems))

    def potential_gradients(
        self,
        batch: Batch,
        t: torch.Tensor,
        *,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """S, its per-atom terms and its gradients in positions and elements, in one pass.

        Works under `torch.no_grad()`. With ``create_graph=False`` every output is detached.

        Returns:
            S [n_systems], e_i [n_atoms], grad_X S [n_atoms, 3] (Å), grad_E S
            [n_atoms, n_classes] (Å^2).
        """
        with torch.enable_grad():
            positions = _differentiable(batch.positions)
            elements = _differentiable(batch.elements)
            total, per_atom = self.potential(
                batch.replace(positions=positions, elements=elements),
                t,
                step_size=step_size,
                generator=generator,
            )
            grad_x, grad_e = torch.autograd.grad(  # no pair in range: zero grad_X
                total.sum(),
                (positions, elements),
                create_graph=create_graph,
                materialize_grads=True,
            )
        if not create_graph:
            total, per_atom = total.detach(), per_atom.detach()
        return total, per_atom, grad_x, grad_e

    def forward(
        self,
        batch: Batch,
        t: torch.Tensor,
        *,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise predictions as gradients of S: eps_x = grad_X S, eps_e = grad_E S.

        Args and returns as `ScoreDenoiser.forward`. eps_x has zero mean per system
        (S is translation invariant; the mean is removed again against round-off).
        """
        create_graph = self.training and torch.is_grad_enabled()
        _, _, grad_x, grad_e = self.potential_gradients(
            batch, t, step_size=step_size, generator=generator, create_graph=create_graph
        )
        eps_x = remove_system_mean(grad_x, batch.system_idx, batch.n_systems)
        return eps_x, grad_e


def _differentiable(x: torch.Tensor) -> torch.Tensor:
    """`x` itself if it already carries gradients, else a detached leaf that requires them."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


DENOISERS["energy"] = EnergyDenoiser
