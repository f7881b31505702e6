"""Prior of the reverse process: where sampling starts.

References:
    AMDEN prior (uniform positions, Gaussian embeddings); docs/diffusion.md, *Prior and
    time grid*.
"""

from __future__ import annotations

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion.schedules import MaterialSDE


def sample_prior(
    cell: torch.Tensor,
    n_atoms: torch.Tensor,
    n_classes: int,
    sde: MaterialSDE | None = None,
    generator: torch.Generator | None = None,
    properties: torch.Tensor | None = None,
) -> Batch:
    """Initial state: positions uniform in each cell, embeddings ~ N(0, sigma_max_E^2).

    Positions are ``u @ cell`` with fractional coordinates u ~ U[0, 1)^3; element
    embeddings are what the forward process reaches at t -> 1. Dtype and device follow
    `cell`.

    Args:
        cell: cell vectors as rows, Å. [S, 3, 3]
        n_atoms: number of atoms (real + ghost) of each system. [S] (int)
        n_classes: number of element classes (ghost included).
        sde: the process constants (sigma_max_E); default ``MaterialSDE()``.
        generator: random source on the device of `cell`.
        properties: normalised property targets [S, m] (NaN = null); default: no
            property columns ([S, 0]).

    Returns:
        Batch of S systems.

    References:
        AMDEN (prior); docs/diffusion.md, *Prior and time grid*.
    """
    sde = MaterialSDE() if sde is None else sde
    if cell.ndim != 3 or cell.shape[1:] != (3, 3):
        raise ValueError(f"cell must have shape [S, 3, 3], got {list(cell.shape)}")
    n_systems = cell.shape[0]
    counts = torch.as_tensor(n_atoms, dtype=torch.long, device=cell.device).reshape(-1)
    if counts.shape != (n_systems,):
        raise ValueError(
            f"n_atoms must have {n_systems} entries (one per cell), got {counts.numel()}"
        )
    if (counts < 0).any():
        raise ValueError("n_atoms must be non-negative")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    system_idx = torch.repeat_interleave(torch.arange(n_systems, device=cell.device), counts)
    n_total = int(counts.sum())
    fractional = torch.rand(
        (n_total, 3), generator=generator, dtype=cell.dtype, device=cell.device
    )  # [N, 3]
    positions = torch.einsum("ni,nij->nj", fractional, cell[system_idx])
    elements = sde.sigma_max_e * torch.randn(
        (n_total, n_classes), generator=generator, dtype=cell.dtype, device=cell.device
    )
    if properties is None:
        properties = cell.new_zeros((n_systems, 0))
    properties = torch.as_tensor(properties, dtype=cell.dtype, device=cell.device)
    if properties.ndim != 2 or properties.shape[0] != n_systems:
        raise ValueError(
            f"properties must have shape [S, m] = [{n_systems}, m], got {list(properties.shape)}"
        )
    return Batch(
        positions=positions,
        elements=elements,
        cell=cell,
        system_idx=system_idx,
        properties=properties,
    )
