"""Per-system conditioning features: diffusion time, properties, shortcut step size.

Each embedding maps a per-system quantity to a feature vector [n_systems, dim]; the
denoiser broadcasts it to the atoms of the system and concatenates it with the
element features to form the node features H0 (docs/models.md, *Denoiser architecture*).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def fourier_features(x: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """``[x, sin(pi 2^k x), cos(pi 2^k x) for k < n_frequencies]``. [n, 1 + 2 n_frequencies]

    Args:
        x: scalars in [0, 1] (diffusion time or step size). [n]
        n_frequencies: number of octaves; 0 gives ``x`` alone (as in AMDEN).

    References:
        Tancik et al., NeurIPS 2020 (Fourier features); AMDEN feeds t itself.
    """
    features = [x[:, None]]
    if n_frequencies > 0:
        freqs = math.pi * 2.0 ** torch.arange(n_frequencies, dtype=x.dtype, device=x.device)
        angles = x[:, None] * freqs  # [n, n_frequencies]
        features += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(features, dim=-1)


class TimeEmbedding(nn.Module):
    """Diffusion time t [n_systems] -> features [n_systems, 1 + 2 n_frequencies].

    Parameter-free: the node-embedding Linear of the denoiser mixes the features.
    """

    def __init__(self, n_frequencies: int = 0) -> None:
        super().__init__()
        if n_frequencies < 0:
            raise ValueError(f"n_frequencies must be >= 0, got {n_frequencies}")
        self.n_frequencies = int(n_frequencies)

    @property
    def dim(self) -> int:
        return 1 + 2 * self.n_frequencies

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return fourier_features(t, self.n_frequencies)


class StepSizeEmbedding(TimeEmbedding):
    """Shortcut step size d [n_systems] -> features [n_systems, 1 + 2 n_frequencies].

    d = 0 is the instantaneous (flow) limit; AMShortcut uses d in {0, 1/128, ..., 1}.

    References:
        Frans et al., "One Step Diffusion via Shortcut Models", ICLR 2025; AMShortcut.
    """


class PropertyEmbedding(nn.Module):
    """Property targets with null embeddings: y [n_systems, m] -> [n_systems, m * dim].

    Each property i has its own ``Linear(1, dim)`` followed by its own ``LayerNorm(dim)``.
    An absent property (NaN) gets a draw from N(0, I) instead (the "null embedding": the
    distribution of a LayerNormed vector, but independent of the structure, hence
    unconditional). In training mode every entry is also nulled with probability
    `null_probability`, so one model learns every subset of its properties, including
    the unconditional branch used by classifier-free guidance.

    The N(0, I) draws for all [n_systems, m, dim] entries are made first from the
    generator, whether or not an entry is null, so the null vector of an entry depends
    only on the generator state (not on the other properties or the training mode).

    References:
        AMShortcut (flexible null embeddings); Ho & Salimans 2022 (classifier-free guidance).
    """

    def __init__(self, n_properties: int, dim: int = 8, null_probability: float = 0.1) -> None:
        super().__init__()
        if n_properties < 0 or dim < 1:
            raise ValueError(f"need n_properties >= 0 and dim >= 1, got {n_properties}, {dim}")
        if not 0.0 <= null_probability <= 1.0:
            raise ValueError(f"null_probability must lie in [0, 1], got {null_probability}")
        self.n_properties = int(n_properties)
        self.property_dim = int(dim)
        self.null_probability = float(null_probability)
        # the m Linear(1, dim) and LayerNorm(dim) modules, stacked: row i is property i
        bound = 1.0  # nn.Linear's default init for fan_in = 1: U(-1, 1)
        self.weight = nn.Parameter(torch.empty(n_properties, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_properties, dim).uniform_(-bound, bound))
        self.norm_weight = nn.Parameter(torch.ones(n_properties, dim))
        self.norm_bias = nn.Parameter(torch.zeros(n_properties, dim))

    @property
    def dim(self) -> int:
        return self.n_properties * self.property_dim

    def null_mask(
        self, properties: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Which entries get the null embedding: NaN, or nulled at random in training. [S, m]"""
        mask = torch.isnan(properties)
        if self.training and self.null_probability > 0.0:
            u = _rand(properties.shape, properties, generator)
            mask = mask | (u < self.null_probability)
        return mask

    def forward(
        self, properties: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Embed normalised properties; NaN = absent. [n_systems, m] -> [n_systems, m * dim]"""
        if properties.ndim != 2 or properties.shape[1] != self.n_properties:
            raise ValueError(
                f"properties must have shape [n_systems, {self.n_properties}], "
                f"got {tuple(properties.shape)}"
            )
        n_systems = properties.shape[0]
        if self.n_properties == 0:
            return properties.new_zeros(n_systems, 0)
        null = _randn((n_systems, self.n_properties, self.property_dim), properties, generator)
        mask = self.null_mask(properties, generator)  # drawn after `null`, see class doc
        # NaN must not enter the Linear: its gradient would be NaN even where masked out
        y = torch.nan_to_num(properties, nan=0.0)[..., None]  # [S, m, 1]
        h = y * self.weight + self.bias  # [S, m, dim]
        h = nn.functional.layer_norm(h, (self.property_dim,))
        h = h * self.norm_weight + self.norm_bias
        h = torch.where(mask[..., None], null, h)
        return h.reshape(n_systems, self.dim)


def _randn(shape: tuple[int, ...], like: torch.Tensor, generator: Any) -> torch.Tensor:
    """Normals of `shape` (first axis: systems) on `like`'s device and dtype, from a
    generator or one stream per system (`amtoolkit.diffusion.streams.Streams`)."""
    from amtoolkit.diffusion.streams import random_rows

    return random_rows(shape, generator, dtype=like.dtype, device=like.device)


def _rand(shape: tuple[int, ...], like: torch.Tensor, generator: Any) -> torch.Tensor:
    """Uniforms in [0, 1) of `shape`, drawn as `_randn` draws."""
    from amtoolkit.diffusion.streams import random_rows

    return random_rows(shape, generator, dtype=like.dtype, device=like.device, draw="uniform")
