"""Excluded cylinders: generation that leaves a cylindrical pore empty (DM2's porous starts).

A pore is a cylinder of radius R along one lattice vector of the cell, through a point
given in fractional coordinates of the two other lattice vectors. It enters generation
in two places:

- the prior: positions drawn uniformly in the cell, those inside the pore drawn again
  (`prior_outside`), so the start is uniform over the rest of the cell;
- the score: the model's noise prediction is combined with the score of a hard wall
  smoothed by the current noise, log p_t(x) ~ -(R - rho)^2 / (2 sigma_X(t)^2) for an
  atom at distance rho < R from the axis (`wall_score`), which pushes atoms out of the
  pore within about one step at the end of sampling and gently at the start
  (`WalledModel`: eps' = eps - sigma_X s_wall). It is guidance by a constraint, as
  classifier guidance adds the gradient of log p(y | x).

Elements and ghost atoms are treated alike (a ghost in the pore would be a wasted atom
slot).

References:
    DM2 (large cells and porous starts: an excluded cylinder for mesoporous silica);
    Song et al. 2021, "Score-based generative modeling through SDEs" (conditional scores
    as a sum of the model's and a constraint's).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from amtoolkit.data.batch import Batch
from amtoolkit.diffusion.samplers import Model
from amtoolkit.diffusion.schedules import MaterialSDE

AXES = ("x", "y", "z")
"""Names of the lattice vectors a pore can run along (a, b, c)."""

MIN_WALL = 2.0
"""Å: the thinnest wall a pore may leave between itself and its periodic image."""

_MAX_REDRAWS = 1000
"""Rounds of `prior_outside` before it gives up (a pore filling nearly the whole cell)."""


@dataclasses.dataclass(frozen=True)
class Cylinder:
    """A cylindrical pore.

    Attributes:
        radius: Å.
        axis: index of the lattice vector it runs along (0, 1, 2 for a, b, c).
        center: where its axis crosses the plane of the two other lattice vectors, in
            their fractional coordinates (in the order of the vectors).
    """

    radius: float
    axis: int = 2
    center: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"pore radius must be a positive length in Å, got {self.radius}")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"pore axis must be 0, 1 or 2 (x, y or z), got {self.axis!r}")
        center = tuple(float(c) for c in self.center)
        if len(center) != 2 or not all(math.isfinite(c) for c in center):
            raise ValueError(f"pore center must be two fractional coordinates, got {self.center}")
        object.__setattr__(self, "center", center)

    @classmethod
    def parse(cls, text: str) -> Cylinder:
        """``"RADIUS"`` or ``"RADIUS,AXIS"`` (AXIS x, y or z; default z), e.g. ``"6,x"``."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) not in (1, 2):
            raise ValueError(f"pore {text!r} is not RADIUS or RADIUS,AXIS (e.g. 6 or 6,x)")
        try:
            radius = float(parts[0])
        except ValueError:
            raise ValueError(f"pore radius {parts[0]!r} is not a number (Å)") from None
        axis = parts[1].lower() if len(parts) == 2 else "z"
        if axis not in AXES:
            raise ValueError(f"pore axis {parts[1]!r} is not one of x, y, z")
        return cls(radius, AXES.index(axis))

    def to_record(self) -> list[float]:
        """``[radius, axis, center_1, center_2]``, as `atoms.info["pore"]` records it."""
        return [float(self.radius), float(self.axis), *map(float, self.center)]

    def volume(self, cell: np.ndarray) -> float:
        """Volume of the pore inside one cell, Å^3: pi R^2 times the length of the axis
        lattice vector (the cylinder runs through the cell along it)."""
        return math.pi * self.radius**2 * float(np.linalg.norm(np.asarray(cell)[self.axis]))

    def check_fits(self, cell: np.ndarray) -> None:
        """Raise ValueError unless the pore leaves a wall of at least `MIN_WALL` Å between
        itself and its periodic images across the axis."""
        width = cross_section_width(np.asarray(cell, dtype=float), self.axis)
        if 2.0 * self.radius + MIN_WALL > width:
            raise ValueError(
                f"a pore of radius {self.radius:g} Å does not fit a cell {width:.3g} Å wide "
                f"across its axis ({AXES[self.axis]}): it needs at least "
                f"{2 * self.radius + MIN_WALL:.3g} Å (a {MIN_WALL:g} Å wall); give a larger "
                "cell or a smaller radius"
            )


def cross_section_width(cell: np.ndarray, axis: int) -> float:
    """The narrowest width (Å) of the cell's cross-section perpendicular to lattice
    vector `axis`: the smaller of the distances between the faces the axis vector lies
    in (a height of the parallelogram the two other vectors span, seen along the axis)."""
    from amtoolkit.analysis._structures import perpendicular_widths

    widths = perpendicular_widths(cell)
    return float(min(widths[k] for k in range(3) if k != axis))


def radial(
    positions: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor, pore: Cylinder
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of each atom from the pore's axis (nearest periodic image across the
    axis) and the outward unit vector.

    Args:
        positions: Å, unwrapped. [N, 3]
        cell: rows, Å. [S, 3, 3]
        system_idx: [N]
        pore: the cylinder.

    Returns:
        (rho [N] Å, outward [N, 3]); an atom on the axis gets the first in-plane lattice
        direction as its outward vector.
    """
    cells = cell[system_idx]  # [N, 3, 3]
    fractional = torch.einsum("ni,nij->nj", positions, torch.linalg.inv(cell)[system_idx])
    plane = [k for k in range(3) if k != pore.axis]
    center = positions.new_tensor(pore.center)
    offset = fractional[:, plane] - center
    offset = offset - torch.round(offset)  # nearest image across the axis
    d = offset[:, :1] * cells[:, plane[0]] + offset[:, 1:] * cells[:, plane[1]]  # [N, 3]
    u = cells[:, pore.axis]
    u = u / torch.linalg.norm(u, dim=1, keepdim=True)
    d = d - (d * u).sum(dim=1, keepdim=True) * u
    rho = torch.linalg.norm(d, dim=1)
    fallback = cells[:, plane[0]] - (cells[:, plane[0]] * u).sum(dim=1, keepdim=True) * u
    fallback = fallback / torch.linalg.norm(fallback, dim=1, keepdim=True)
    outward = torch.where(rho[:, None] > 1e-9, d / rho.clamp_min(1e-9)[:, None], fallback)
    return rho, outward


def wall_score(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_idx: torch.Tensor,
    pore: Cylinder,
    sigma: torch.Tensor,
) -> torch.Tensor:
    """Score (1/Å) of the pore's hard wall smoothed by noise `sigma`: (R - rho)/sigma^2
    outwards for an atom inside the pore, zero outside.

    Args:
        positions, cell, system_idx: as `radial`.
        pore: the cylinder.
        sigma: position noise of each atom's system, Å. [N]

    Returns:
        [N, 3]
    """
    rho, outward = radial(positions, cell, system_idx, pore)
    depth = (pore.radius - rho).clamp_min(0.0)
    return (depth / sigma**2)[:, None] * outward


def inside(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_idx: torch.Tensor,
    pore: Cylinder,
    margin: float = 0.0,
) -> torch.Tensor:
    """Mask [N] of the atoms nearer than ``radius - margin`` to the pore's axis."""
    rho, _ = radial(positions, cell, system_idx, pore)
    return rho < pore.radius - margin


def prior_outside(batch: Batch, pore: Cylinder, generator: torch.Generator | None = None) -> Batch:
    """`batch` (a prior) with every atom inside the pore drawn again, uniformly in its
    cell, until none is: the start is uniform over the cell outside the pore.

    Raises:
        ValueError: atoms still inside after `_MAX_REDRAWS` rounds (a pore that leaves
            almost no room; `Cylinder.check_fits` refuses those first).
    """
    positions = batch.positions.clone()
    cells = batch.cell[batch.system_idx]
    for _ in range(_MAX_REDRAWS):
        mask = inside(positions, batch.cell, batch.system_idx, pore)
        n = int(mask.sum())
        if not n:
            return batch.replace(positions=positions)
        fractional = torch.rand(
            (n, 3), generator=generator, dtype=positions.dtype, device=positions.device
        )
        positions[mask] = torch.einsum("ni,nij->nj", fractional, cells[mask])
    raise ValueError(f"could not place the start outside the pore of radius {pore.radius:g} Å")


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: holds a model
class WalledModel:
    """A score model whose noise prediction keeps atoms out of a pore (see the module
    docstring): ``eps_x' = eps_x - sigma_X(t) * wall_score``; element predictions pass
    through.

    Attributes:
        model: (Batch, t [S], **kwargs) -> (eps_x [N, 3], eps_e [N, n_classes]).
        pore: the cylinder.
        sde: the process constants (sigma_X of t).
    """

    model: Model
    pore: Cylinder
    sde: MaterialSDE

    def select_systems(self, mask: torch.Tensor) -> WalledModel:
        """This model for the systems where `mask` [S] is True (restarts)."""
        select = getattr(self.model, "select_systems", None)
        return self if select is None else dataclasses.replace(self, model=select(mask))

    def __call__(
        self, batch: Batch, t: torch.Tensor, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps_x, eps_e = self.model(batch, t, **kwargs)
        sigma = self.sde.sigma_x(t).to(batch.positions)[batch.system_idx]  # [N]
        score = wall_score(batch.positions, batch.cell, batch.system_idx, self.pore, sigma)
        return eps_x - sigma[:, None] * score, eps_e
