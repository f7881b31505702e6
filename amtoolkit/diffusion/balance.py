"""Charge-balanced relabelling: the most likely balanced elements of a sample, and the
sample denoised again with those elements held.

A sample of an oxide model whose decoded formal charges do not sum to zero (a few O too
many in a-SiO2) is one or a few atoms away from a balanced one: those whose element
embedding is least sure. `balanced_classes` picks, for every atom, the class that
maximises the summed embedding value of the chosen classes under the constraints that
the formal charges sum to zero and that at least one atom is real. For a Gaussian around
the one-hot embedding (the forward process at small t) that is the most likely balanced
decoding; it is a small integer program, solved with HiGHS (`scipy.optimize.milp`).

The positions were denoised with the old elements, so `rebalance` then re-noises the
system to `restart_t` with the new one-hot elements as its clean elements and denoises
it again with `HeldElements`: the model's position output is used as it is, and its
element output is replaced by the exact noise of the held elements, so the element
channel follows the forward process of those elements back to t = 0 while the positions
adapt to them. The result is decoded to the held elements exactly.

References:
    Song et al., ICLR 2021, "Score-based generative modeling through stochastic
    differential equations", section 5 and appendix I (conditional sampling by
    replacing a known part of the state with its forward-noised value); Xu et al.,
    NeurIPS 2023 (restart sampling); AMDEN (charge-balanced SiO2 samples).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import put_systems, select_systems
from amtoolkit.diffusion.charge import class_charges, is_charge_balanced
from amtoolkit.diffusion.forward import add_noise
from amtoolkit.diffusion.restarts import model_for, restart_timesteps
from amtoolkit.diffusion.samplers import Model, Sampler
from amtoolkit.diffusion.schedules import MaterialSDE
from amtoolkit.diffusion.streams import select_streams

__all__ = ["HeldElements", "balanced_classes", "balanced_composition", "rebalance"]

MILP_TIME_LIMIT = 30.0
"""Seconds HiGHS may spend on one system's relabelling (about 0.05 s for 260 atoms)."""


def balanced_classes(scores: np.ndarray, charges: Sequence[int]) -> np.ndarray | None:
    """Class of each atom of one system that maximises the summed score, charges balanced.

    Exact, and fast at 10^4 atoms: the program is solved over the atoms least sure of
    their element (smallest margin between their best and second-best class), the others
    held at their best class, and the set is grown until the loss of the solution
    against the argmax is no larger than the smallest margin held: any labelling that
    changes a held atom loses at least that margin, so none does better.

    Args:
        scores: element embedding of each atom [n_atoms, n_classes]; -inf rules a class
            out for that atom (e.g. the ghost class of a model without ghosts).
        charges: formal charge of each class (class 0, the ghost, has charge 0).

    Returns:
        Class indices [n_atoms] whose charges sum to zero with at least one non-ghost
        atom, maximising the sum of the chosen scores; None when no such labelling
        exists (e.g. 100 real atoms of SiO2 without ghosts: a multiple of 3 is needed).

    References:
        Q. Huangfu, J. A. J. Hall, Math. Prog. Comp. 10, 119 (2018) (HiGHS, the
        mixed-integer solver behind `scipy.optimize.milp`).
    """
    scores = np.asarray(scores, dtype=float)
    charge = np.asarray(charges, dtype=float)
    n, c = scores.shape
    if charge.shape != (c,):
        raise ValueError(f"{charge.size} charges for {c} element classes")
    best = scores.argmax(axis=1)
    if charge[best].sum() == 0 and np.any(best != 0):
        return best
    top = np.sort(scores, axis=1)
    margin = top[:, -1] - top[:, -2] if c > 1 else np.full(n, np.inf)
    margin = np.where(np.isfinite(margin), margin, np.inf)
    order = np.argsort(margin, kind="stable")
    k = min(n, FIRST_FREE)
    while True:
        free, held = order[:k], order[k:]
        chosen = _best_balanced(
            scores[free],
            charge,
            net=charge[best[held]].sum(),
            held_real=int(np.count_nonzero(best[held])),
        )
        if chosen is not None:
            loss = (scores[free, best[free]] - scores[free, chosen]).sum()
            if k == n or loss <= margin[order[k]]:
                out = best.copy()
                out[free] = chosen
                return out
        elif k == n:
            return None
        k = min(n, 4 * k)


FIRST_FREE = 64
"""Atoms whose class `balanced_classes` first leaves free (the least sure ones)."""


def _best_balanced(
    scores: np.ndarray, charge: np.ndarray, *, net: float, held_real: int
) -> np.ndarray | None:
    """The integer program of `balanced_classes` over some atoms, the rest held: their
    charges must sum to -net, and at least ``1 - held_real`` of them must be real."""
    n, c = scores.shape
    allowed = np.isfinite(scores)
    cost = -np.where(allowed, scores, 0.0).ravel()
    # sparse: one row per atom over its c classes (a dense [n, n c] matrix is 3 GB at 10^4)
    one_class = LinearConstraint(
        sparse.kron(sparse.eye(n, format="csr"), np.ones((1, c)), format="csr"), 1.0, 1.0
    )
    neutral = LinearConstraint(np.tile(charge, n)[None, :], -net, -net)
    real = LinearConstraint(
        np.tile(np.arange(c) != 0, n)[None, :].astype(float), 1.0 - held_real, np.inf
    )
    result = milp(
        cost,
        constraints=[one_class, neutral, real],
        integrality=np.ones(n * c),
        bounds=Bounds(0.0, allowed.ravel().astype(float)),
        options={"time_limit": MILP_TIME_LIMIT},
    )
    if result.x is None:
        return None
    return np.rint(result.x).reshape(n, c).argmax(axis=1)


def balanced_composition(
    n_atoms: int, charges: Sequence[int], *, ghosts: bool
) -> np.ndarray | None:
    """Atoms of each class in some charge-balanced labelling of `n_atoms` atoms, if any.

    Args:
        n_atoms: atoms in the system (real ones and, with `ghosts`, ghosts).
        charges: formal charge of each class (class 0, the ghost, has charge 0).
        ghosts: whether atoms may be ghosts (class 0); without, all are real.

    Returns:
        Counts per class [n_classes] summing to `n_atoms`, with charges summing to zero
        and at least one real atom; None when there is none (e.g. 100 atoms of SiO2
        without ghosts, or 2 with them).
    """
    charge = np.asarray(charges, dtype=float)
    c = charge.size
    real = (np.arange(c) != 0).astype(float)
    result = milp(
        np.zeros(c),
        constraints=[
            LinearConstraint(np.ones((1, c)), n_atoms, n_atoms),
            LinearConstraint(charge[None, :], 0.0, 0.0),
            LinearConstraint(real[None, :], 1.0, np.inf),
        ],
        integrality=np.ones(c),
        bounds=Bounds(0.0, np.where((real > 0) | ghosts, np.inf, 0.0)),
    )
    if result.x is None:
        return None
    return np.rint(result.x).astype(int)


@dataclasses.dataclass(frozen=True)
class HeldElements:
    """A score model whose element output is the exact noise of held clean elements.

    Called as the model: ``(batch, t [S], **kwargs) -> (eps_x, eps_e)``, with eps_x from
    `model` and eps_e = (E_t - alpha_E(t) E_0) / sigma_E(t) for the held E_0, so a score
    sampler takes the element channel to E_0 as t -> 0 while the positions follow the
    model given those elements.

    Attributes:
        model: the score model (or a guided one).
        elements: the held clean elements E_0, one-hot, same shape as the batch's.
        sde: the process constants of the model.
    """

    model: Model
    elements: torch.Tensor
    sde: MaterialSDE

    def __call__(
        self, batch: Batch, t: torch.Tensor, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps_x, _ = self.model(batch, t, **kwargs)
        t_atoms = t[batch.system_idx].unsqueeze(-1)
        alpha, sigma = self.sde.alpha_e(t_atoms), self.sde.sigma_e(t_atoms)
        return eps_x, (batch.elements - alpha * self.elements) / sigma


def rebalance(
    sampler: Sampler,
    model: Model,
    state: Batch,
    ts: torch.Tensor,
    *,
    class_numbers: Sequence[int],
    restart_t: float = 0.3,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    decode: Any = None,
) -> tuple[Batch, torch.Tensor]:
    """Relabel every charge-unbalanced system to its most likely balanced elements and
    denoise it again from `restart_t` with those elements held.

    Args:
        sampler: a score sampler with the common signature (`sample_sde`, ...).
        model: (Batch, t [S]) -> (eps_x, eps_e), the model that made `state`.
        state: the final samples (t = 0), elements continuous.
        ts: the decreasing grid they were sampled on; the re-denoising runs over its part
            below `restart_t`.
        class_numbers: atomic number of each class (ghost 0 first).
        restart_t: time the relabelled systems are re-noised to, in (0, ts[0]).
        sde: the process constants; default ``MaterialSDE()``.
        generator: random source for the re-noising and the sampler.
        decode: Batch -> Batch applied before reading the elements (e.g. ruling the
            ghost class out for a model without ghosts); default: none.

    Returns:
        (batch, number of atoms relabelled in each system [S] long). A system already
        balanced, or one with no balanced labelling, is returned as it is with 0.
    """
    sde = MaterialSDE() if sde is None else sde
    short_ts = restart_timesteps(ts, restart_t)
    view = state if decode is None else decode(state)
    relabelled = torch.zeros(state.n_systems, dtype=torch.long, device=state.positions.device)
    todo = ~is_charge_balanced(view, class_numbers)
    if not bool(todo.any()):
        return state, relabelled
    charges = class_charges(class_numbers).tolist()
    scores = view.elements.detach().cpu().double().numpy()
    system_idx = state.system_idx.cpu().numpy()
    classes = view.elements.argmax(dim=-1).cpu().numpy()
    for s in torch.nonzero(todo).flatten().tolist():
        atoms = system_idx == s
        chosen = balanced_classes(scores[atoms], charges)
        if chosen is None:
            todo[s] = False
            continue
        relabelled[s] = int(np.count_nonzero(chosen != classes[atoms]))
        classes[atoms] = chosen
    if not bool(todo.any()):
        return state, relabelled
    held = torch.nn.functional.one_hot(
        torch.as_tensor(classes, device=state.elements.device), state.elements.shape[-1]
    ).to(state.elements.dtype)
    part = select_systems(state.replace(elements=held), todo)
    t = torch.full(
        (part.n_systems,), restart_t, dtype=part.positions.dtype, device=part.positions.device
    )
    streams = select_streams(generator, todo)  # the relabelled systems' own streams
    noisy, _, _ = add_noise(part, t, sde, streams)
    held_model = HeldElements(model_for(model, todo), part.elements, sde)
    out = sampler(held_model, noisy, short_ts, sde=sde, generator=streams)
    return put_systems(state, todo, out.replace(elements=part.elements)), relabelled
