"""Builders of tiny float64 models and small periodic batches for the network tests."""

from __future__ import annotations

import numpy as np
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.nn import DenoiserConfig, ScoreDenoiser

N_CLASSES = 3
PROPERTY_NAMES = ("shear_modulus", "ring_size")
TINY = {"hidden": 16, "layers": 2, "vector_channels": 4, "cutoff": 3.5, "n_norm": 8.0}


def tiny_config(**changes) -> DenoiserConfig:
    """A 2-layer, 16-wide model with a 3.5 Å cutoff (larger than half the test cells)."""
    fields = {"n_classes": N_CLASSES, "property_names": PROPERTY_NAMES, **TINY}
    fields.update(changes)
    return DenoiserConfig(**fields)


def tiny_model(seed: int = 0, **changes) -> ScoreDenoiser:
    """A tiny float64 model in eval mode with reproducible weights."""
    torch.manual_seed(seed)
    return ScoreDenoiser(tiny_config(**changes)).double().eval()


def random_cell(rng: np.random.Generator, length: float, triclinic: bool) -> np.ndarray:
    """A cell of edge ~`length` Å; triclinic cells get random tilts of up to 0.35 length."""
    cell = np.diag(rng.uniform(0.9, 1.1, 3) * length)
    if triclinic:
        cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.35, 0.35, 3) * length
    return cell


def random_batch(
    sizes: tuple[int, ...] = (6, 4),
    *,
    seed: int = 0,
    length: float = 5.0,
    triclinic: bool = True,
    n_properties: int = len(PROPERTY_NAMES),
    unwrap: int = 2,
) -> Batch:
    """Random float64 systems: positions in the cell, then moved by up to `unwrap` lattice
    vectors (unwrapped, as inside samplers); continuous element features; properties."""
    rng = np.random.default_rng(seed)
    cells, positions = [], []
    for n in sizes:
        cell = random_cell(rng, length, triclinic)
        frac = rng.uniform(0.0, 1.0, (n, 3)) + rng.integers(-unwrap, unwrap + 1, (n, 3))
        cells.append(cell)
        positions.append(frac @ cell)
    n_atoms = sum(sizes)
    return Batch(
        positions=torch.as_tensor(np.concatenate(positions)),
        elements=torch.as_tensor(rng.normal(size=(n_atoms, N_CLASSES))),
        cell=torch.as_tensor(np.stack(cells)),
        system_idx=torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes)),
        properties=torch.as_tensor(rng.normal(size=(len(sizes), n_properties))),
    )


def random_orthogonal(seed: int, proper: bool) -> torch.Tensor:
    """A random 3x3 rotation (det +1) or rotoreflection (det -1), float64."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] *= -1.0
    return torch.as_tensor(q)
