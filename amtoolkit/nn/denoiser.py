"""Score denoiser: a Batch and diffusion times -> predicted noise (eps_x, eps_e).

Node features H0 = [t, h_y1 ... h_ym (, d), e_i] (time, property embeddings, shortcut step
size, element features) are projected to `hidden`, run through the EGNN, and
read out as eps_x = X - X^(L, channel 0) and eps_e = Linear(H^L)
(docs/models.md, *Denoiser architecture*).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from amtoolkit.nn.egnn import EGNN, check_radial_basis
from amtoolkit.nn.embeddings import PropertyEmbedding, StepSizeEmbedding, TimeEmbedding
from amtoolkit.nn.graph import edge_vectors, periodic_edges

if TYPE_CHECKING:  # only the type: nn/ does not import ASE-facing modules at run time
    from amtoolkit.data.batch import Batch


MAX_SIZES = {"hidden": 8192, "layers": 64, "vector_channels": 1024, "property_dim": 1024}
"""Largest architecture sizes a config may ask for, far above the papers' (width 128,
4-8 layers, k = 8): past them a value is a typo, and building it hangs."""


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    """Architecture of a denoiser; stored as JSON next to the state_dict in checkpoints.

    Attributes:
        n_classes: number of element classes (ghost class 0 included).
        property_names: conditioning properties, in column order of `Batch.properties`.
        hidden: width of node features and MLPs.
        layers: number of EGNN layers L.
        vector_channels: k, the number of vector channels.
        cutoff: graph and f_cut radius, Å.
        n_norm: normaliser of the neighbour sums.
        property_dim: width of each property embedding.
        null_probability: chance that a property is nulled per system in training mode.
        step_size_embedding: feed the shortcut step size d (AMShortcut).
        time_frequencies: Fourier octaves of the time (and step size) features; 0 feeds t
            itself, as in AMDEN.
        kind: key of `DENOISERS` that `build_denoiser` uses.
        edge_chunk_size: edges processed at once in each layer (0: all at once). An
            execution setting, not architecture: results do not depend on it, memory does
            (the per-edge temporaries are [chunk, hidden]).
        radial_basis: Gaussians of the edge length fed to the edge MLPs besides e_ij
            (0: none, as in AMDEN; see `amtoolkit.nn.egnn`).
    """

    n_classes: int
    property_names: tuple[str, ...] = ()
    hidden: int = 128
    layers: int = 4
    vector_channels: int = 8
    cutoff: float = 6.5
    n_norm: float = 40.0
    property_dim: int = 8
    null_probability: float = 0.1
    step_size_embedding: bool = False
    time_frequencies: int = 0
    kind: str = "score"
    edge_chunk_size: int = 32768
    radial_basis: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.property_names, str):
            raise ValueError(
                f"property_names must be a sequence of names, got {self.property_names!r}"
            )
        object.__setattr__(self, "property_names", tuple(str(p) for p in self.property_names))
        if len(set(self.property_names)) != len(self.property_names):
            raise ValueError(f"duplicate property names: {self.property_names}")
        if self.n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {self.n_classes}")
        for name, largest in MAX_SIZES.items():
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
            if getattr(self, name) > largest:  # a typo, not a model (10^12 layers hung)
                raise ValueError(f"{name} must be <= {largest}, got {getattr(self, name)}")
        if not (self.cutoff > 0 and self.n_norm > 0):
            raise ValueError(
                f"cutoff and n_norm must be positive, got {self.cutoff}, {self.n_norm}"
            )
        if not 0.0 <= self.null_probability <= 1.0:
            raise ValueError(f"null_probability must lie in [0, 1], got {self.null_probability}")
        if self.edge_chunk_size < 0:
            raise ValueError(f"edge_chunk_size must be >= 0, got {self.edge_chunk_size}")
        if self.time_frequencies < 0:
            raise ValueError(f"time_frequencies must be >= 0, got {self.time_frequencies}")
        check_radial_basis(self.radial_basis)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (property_names as a list)."""
        out = dataclasses.asdict(self)
        out["property_names"] = list(self.property_names)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenoiserConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DenoiserConfig fields: {unknown}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DenoiserConfig:
        return cls.from_dict(json.loads(text))


class ScoreDenoiser(nn.Module):
    """EGNN noise predictor of the score SDE: (Batch, t) -> (eps_x, eps_e).

    The network is batched over systems with flat tensors; only the neighbour search
    loops over systems. Outputs are E(3) equivariant (eps_x rotates with positions and
    cell, eps_e is invariant), translation and permutation equivariant, and independent
    of how positions are wrapped or which basis spans the lattice.

    Args:
        config: the architecture.

    References:
        AMDEN (score SDE denoiser with an EGNN); Song et al., ICLR 2021 (score SDEs).
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        self.time_embedding = TimeEmbedding(config.time_frequencies)
        self.property_embedding = PropertyEmbedding(
            len(config.property_names), config.property_dim, config.null_probability
        )
        self.step_size = (
            StepSizeEmbedding(config.time_frequencies) if config.step_size_embedding else None
        )
        in_dim = self.time_embedding.dim + config.n_classes + self.property_embedding.dim
        if self.step_size is not None:
            in_dim += self.step_size.dim
        self.node_embedding = nn.Linear(in_dim, config.hidden)
        self.egnn = EGNN(
            config.hidden,
            config.layers,
            config.vector_channels,
            config.cutoff,
            config.n_norm,
            config.edge_chunk_size,
            config.radial_basis,
        )
        self.element_head = nn.Linear(config.hidden, config.n_classes)

    def system_features(
        self,
        batch: Batch,
        t: torch.Tensor,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-system conditioning features [t, h_y1 ... h_ym (, d)]. [n_systems, F]"""
        features = [self.time_embedding(t), self.property_embedding(batch.properties, generator)]
        if self.step_size is not None:
            d = t.new_zeros(t.shape) if step_size is None else step_size
            features.append(self.step_size(d))
        return torch.cat(features, dim=-1)

    def forward(
        self,
        batch: Batch,
        t: torch.Tensor,
        *,
        step_size: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict the position and element noise of every atom.

        Args:
            batch: noisy systems (positions unwrapped, element features continuous,
                properties normalised with NaN = absent). The elements' width must be
                `n_classes` and the dtype that of the model.
            t: diffusion time of each system, in [0, 1]. [n_systems] (a scalar is broadcast)
            step_size: shortcut step size of each system [n_systems]; only for models with
                `step_size_embedding` (None means d = 0).
            generator: source of the null-embedding draws (and of the random nulling in
                training mode); None uses torch's global generator.

        Returns:
            eps_x: predicted position noise, a displacement (zero mean per system). [N, 3]
            eps_e: predicted element-feature noise. [N, n_classes]
        """
        t, step_size = self._check(batch, t, step_size)
        src, dst, shifts = periodic_edges(
            batch.positions, batch.cell, batch.system_idx, self.config.cutoff
        )
        edge_vec = edge_vectors(batch.positions, batch.cell, batch.system_idx, src, dst, shifts)
        per_system = self.system_features(batch, t, step_size, generator)  # [S, F]
        h0 = torch.cat([per_system[batch.system_idx], batch.elements], dim=-1)
        h, u = self.egnn(self.node_embedding(h0), edge_vec, src, dst)
        eps_x = remove_system_mean(-u[:, 0], batch.system_idx, batch.n_systems)
        eps_e = self.element_head(h)
        return eps_x, eps_e

    def _check(
        self, batch: Batch, t: torch.Tensor, step_size: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        dtype = self.node_embedding.weight.dtype
        if batch.positions.dtype != dtype:
            raise TypeError(
                f"batch dtype {batch.positions.dtype} differs from the model's {dtype}; "
                "use batch.to(dtype=...) or model.to(dtype)"
            )
        if batch.elements.shape != (batch.n_atoms, cfg.n_classes):
            raise ValueError(
                f"elements must have shape [n_atoms, {cfg.n_classes}], "
                f"got {tuple(batch.elements.shape)}"
            )
        n_props = len(cfg.property_names)
        if batch.properties.shape != (batch.n_systems, n_props):
            raise ValueError(
                f"properties must have shape [n_systems, {n_props}] (columns "
                f"{list(cfg.property_names)}), got {tuple(batch.properties.shape)}"
            )
        t = torch.as_tensor(t, dtype=dtype, device=batch.positions.device)
        if t.ndim == 0:
            t = t.expand(batch.n_systems)
        if t.shape != (batch.n_systems,):
            raise ValueError(f"t must have shape [{batch.n_systems}], got {tuple(t.shape)}")
        if step_size is not None:
            if self.step_size is None:
                raise ValueError("step_size given to a model without step_size_embedding")
            step_size = torch.as_tensor(step_size, dtype=dtype, device=t.device)
            if step_size.ndim == 0:
                step_size = step_size.expand(batch.n_systems)
            if step_size.shape != (batch.n_systems,):
                raise ValueError(
                    f"step_size must have shape [{batch.n_systems}], got {tuple(step_size.shape)}"
                )
        return t, step_size


def remove_system_mean(
    vectors: torch.Tensor, system_idx: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """Subtract the per-system mean of per-atom vectors. [N, D] -> [N, D]

    The position noise of the forward process has zero mean per system, so the part of a
    prediction along a rigid translation carries no information.
    """
    counts = torch.bincount(system_idx, minlength=n_systems).clamp_min(1).to(vectors.dtype)
    sums = vectors.new_zeros(n_systems, vectors.shape[1]).index_add_(0, system_idx, vectors)
    return vectors - (sums / counts[:, None])[system_idx]


def with_step_size_embedding(
    state: dict[str, torch.Tensor], config: DenoiserConfig
) -> dict[str, torch.Tensor]:
    """The weights of a model without a step size embedding, widened for a shortcut model.

    The step size features enter H0 only through the node-embedding Linear; their new
    input columns start at zero, so the widened model predicts exactly what the original
    did for every step size d. A trained score model is thereby a shortcut model whose
    jumps are probability-flow Euler steps, and shortcut training can start from it
    (``init_from`` in a training config).

    Args:
        state: state_dict of a model with ``step_size_embedding`` false.
        config: the architecture of the new model (``step_size_embedding`` true).

    Returns:
        A new state_dict; tensors not widened are shared with `state`.
    """
    if not config.step_size_embedding:
        raise ValueError("with_step_size_embedding needs a config with step_size_embedding")
    step_dim = StepSizeEmbedding(config.time_frequencies).dim
    start = (
        TimeEmbedding(config.time_frequencies).dim
        + len(config.property_names) * config.property_dim
    )
    weight = state["node_embedding.weight"]
    expected = start + config.n_classes
    if weight.shape[1] != expected:
        raise ValueError(
            f"node_embedding takes {weight.shape[1]} inputs; a model without a step size "
            f"embedding of this architecture takes {expected}"
        )
    zeros = weight.new_zeros(weight.shape[0], step_dim)
    out = dict(state)
    out["node_embedding.weight"] = torch.cat([weight[:, :start], zeros, weight[:, start:]], 1)
    return out


DENOISERS: dict[str, type[nn.Module]] = {"score": ScoreDenoiser}
"""Denoiser classes by `DenoiserConfig.kind`: "score" (ScoreDenoiser) and "energy"
(`amtoolkit.nn.energy.EnergyDenoiser`, which registers itself; `amtoolkit.nn` imports it)."""


def build_denoiser(config: DenoiserConfig | Mapping[str, Any]) -> nn.Module:
    """Denoiser of `config.kind` from `DENOISERS` (a dict is read with `from_dict`)."""
    if not isinstance(config, DenoiserConfig):
        config = DenoiserConfig.from_dict(config)
    if config.kind not in DENOISERS:
        raise ValueError(f"unknown denoiser kind {config.kind!r}; known: {sorted(DENOISERS)}")
    return DENOISERS[config.kind](config)
