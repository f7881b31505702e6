"""Classifier-free guidance for the material diffusion.

See docs/diffusion.md, *Classifier-free guidance*.

References:
    Ho & Salimans 2022, "Classifier-free diffusion guidance", eq. 6
    (eps' = (1 + w) eps(y) - w eps(null)); Sadat et al. 2024, "No training, no problem:
    rethinking classifier-free guidance" (independent condition guidance, ICG); AMDEN
    (w = 1.0 for SiO2, 0.25 with ICG for MEG).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion._batch_ops import concat_batches
from amtoolkit.diffusion.samplers import Model
from amtoolkit.diffusion.streams import Streams, integers, select_streams


def null_properties(properties: torch.Tensor) -> torch.Tensor:
    """All-null property rows (NaN), the unconditional input. Same shape as `properties`."""
    return torch.full_like(properties, math.nan)


def icg_properties_draw(
    icg_properties: torch.Tensor, n_systems: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random rows of a (normalised) training-set property table, one per system.

    Args:
        icg_properties: training-set property rows. [K, m]
        n_systems: number of rows to draw (with replacement).
        generator: random source on the device of `icg_properties`.

    Returns:
        [n_systems, m]
    """
    rows = integers(icg_properties.shape[0], n_systems, generator, icg_properties.device)
    return icg_properties[rows]


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: tensor fields
class GuidedModel:
    """Model wrapper with classifier-free guidance; see `guided`.

    Attributes:
        model: the conditional model (Batch, t) -> (eps_x, eps_e) (its properties
            column holds the targets y).
        w: guidance weight (0 = plain conditional model).
        icg_properties: training-set property rows [K, m] for ICG, or None for the
            all-null unconditional branch.
        generator: random source for the ICG rows, also passed to the model as
            ``generator=`` (ScoreDenoiser's null-embedding draws) when not None.
    """

    model: Model
    w: float
    icg_properties: torch.Tensor | None = None
    generator: torch.Generator | Streams | None = None

    def select_systems(self, mask: torch.Tensor) -> GuidedModel:
        """This model for the systems where `mask` [S] is True (their streams, when the
        generator is one stream per system; restarts re-run such a subset)."""
        return dataclasses.replace(self, generator=select_streams(self.generator, mask))

    def _call_model(
        self, batch: Batch, t: torch.Tensor, step_size: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        generator = self.generator
        if isinstance(generator, Streams) and batch.n_systems == 2 * len(generator):
            generator = generator + generator  # [conditional; unconditional] copies
        kwargs: dict[str, Any] = {} if generator is None else {"generator": generator}
        if step_size is not None:  # only shortcut models take it
            kwargs["step_size"] = step_size
        return self.model(batch, t, **kwargs)  # type: ignore[call-arg]

    def __call__(
        self, batch: Batch, t: torch.Tensor, *, step_size: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Guided prediction; `step_size` [S] (shortcut models) is passed on to the model."""
        if self.w == 0.0:
            return self._call_model(batch, t, step_size)
        if self.icg_properties is None:
            null = null_properties(batch.properties)
        else:
            table = self.icg_properties.to(
                device=batch.properties.device, dtype=batch.properties.dtype
            )
            if table.shape[1] != batch.properties.shape[1]:
                raise ValueError(
                    f"icg_properties has {table.shape[1]} property columns, the batch "
                    f"{batch.properties.shape[1]}"
                )
            null = icg_properties_draw(table, batch.n_systems, self.generator)
        # one model call on [conditional systems; unconditional systems]
        both = concat_batches(batch, batch.replace(properties=null))
        both_steps = None if step_size is None else torch.cat([step_size, step_size])
        eps_x, eps_e = self._call_model(both, torch.cat([t, t]), both_steps)
        n = batch.n_atoms
        w = self.w
        return (1.0 + w) * eps_x[:n] - w * eps_x[n:], (1.0 + w) * eps_e[:n] - w * eps_e[n:]


def guided(
    model: Model,
    w: float,
    icg_properties: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> GuidedModel:
    """Wrap `model` with classifier-free guidance: eps' = (1 + w) eps(y) - w eps(null).

    eps(y) is the model on the batch as given (its ``properties`` are the targets y);
    eps(null) is the model on the same batch with all properties null (NaN), or, for
    independent condition guidance (ICG), with properties drawn at random from the
    training-set rows `icg_properties` (the model needs no unconditional training).
    Both branches run as one model call on a doubled batch; with w = 0 the model is
    called once, unchanged. The result has the model signature (Batch, t) and can be
    passed to any sampler.

    Args:
        model: (Batch, t [S]) -> (eps_x [N, 3], eps_e [N, n_classes]).
        w: guidance weight (AMDEN: 1.0 for SiO2, 0.25 with ICG for MEG).
        icg_properties: normalised training-set property rows [K, m] (ICG) or None.
        generator: random source for the ICG draws; when given it is also passed to the
            model as ``model(batch, t, generator=generator)`` so that the model's own
            draws (ScoreDenoiser null embeddings) are reproducible.

    Returns:
        A callable with the model signature.

    References:
        Ho & Salimans 2022, eq. 6; Sadat et al. 2024 (ICG); AMDEN; docs/diffusion.md,
        *Classifier-free guidance*.
    """
    w = float(w)
    if not math.isfinite(w):
        raise ValueError(f"guidance weight w must be finite, got {w}")
    if icg_properties is not None:
        icg_properties = torch.as_tensor(icg_properties)
        if icg_properties.ndim != 2 or icg_properties.shape[0] == 0:
            raise ValueError(
                f"icg_properties must be a non-empty table [K, m], got {list(icg_properties.shape)}"
            )
    return GuidedModel(model=model, w=w, icg_properties=icg_properties, generator=generator)
