"""Neural networks of the diffusion models (docs/models.md).

- `periodic_edges`, `edge_vectors`: periodic radius graphs of flat batches (vesin).
- `TimeEmbedding`, `PropertyEmbedding` (null embeddings), `StepSizeEmbedding`.
- `EGNN`: equivariant backbone with k vector channels, attention and a smooth cutoff.
- `DenoiserConfig`, `ScoreDenoiser`, `build_denoiser`, `DENOISERS`.
- `EnergyDenoiser`: eps = gradient of a scalar noise energy (for HMC denoising).
"""

from __future__ import annotations

from amtoolkit.nn.denoiser import (
    DENOISERS,
    DenoiserConfig,
    ScoreDenoiser,
    build_denoiser,
    remove_system_mean,
    with_step_size_embedding,
)
from amtoolkit.nn.egnn import (
    EGNN,
    EGNNLayer,
    cutoff_function,
    edge_attributes,
    gaussian_basis,
    with_radial_basis,
)
from amtoolkit.nn.embeddings import (
    PropertyEmbedding,
    StepSizeEmbedding,
    TimeEmbedding,
    fourier_features,
)
from amtoolkit.nn.energy import GAMMA_INIT, EnergyDenoiser
from amtoolkit.nn.graph import edge_vectors, lattice_offsets, periodic_edges

__all__ = [
    "DENOISERS",
    "EGNN",
    "GAMMA_INIT",
    "DenoiserConfig",
    "EGNNLayer",
    "EnergyDenoiser",
    "PropertyEmbedding",
    "ScoreDenoiser",
    "StepSizeEmbedding",
    "TimeEmbedding",
    "build_denoiser",
    "cutoff_function",
    "edge_attributes",
    "edge_vectors",
    "fourier_features",
    "gaussian_basis",
    "lattice_offsets",
    "periodic_edges",
    "remove_system_mean",
    "with_radial_basis",
    "with_step_size_embedding",
]
