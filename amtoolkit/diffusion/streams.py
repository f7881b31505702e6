"""One random stream per system of a batch, so that a structure's draws do not depend on
which other structures share its sampler call.

Samplers and models take ``generator=``: a `torch.Generator` (one stream for the whole
batch, as in training) or `Streams` (one generator per system). The draw functions here
accept either: with `Streams`, system s's rows come from generator s, in the same order
whatever the batch, so structure k of a generation run is the same with any
``batch_size`` and any ``n`` (`Generator.generate`).

A batch whose systems are a subset of another's (the restarts of rejected structures)
draws from ``streams.select(mask)``; a model called on a doubled batch (classifier-free
guidance: conditional systems, then the same systems unconditioned) from
``streams + streams``, each system's generator serving both of its copies in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["Streams", "random_rows", "integers", "select_streams"]


class Streams:
    """A torch.Generator per system of a batch.

    Attributes:
        generators: one generator per system, in system order, all on one device.
    """

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = tuple(generators)
        devices = {str(g.device) for g in self.generators}
        if len(devices) > 1:
            raise ValueError(f"the streams' generators lie on several devices: {sorted(devices)}")

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], device: torch.device | str = "cpu") -> Streams:
        """Streams seeded with `seeds`, one per system, on `device`."""
        return cls([torch.Generator(device=device).manual_seed(int(s)) for s in seeds])

    def __len__(self) -> int:
        return len(self.generators)

    def __add__(self, other: Streams) -> Streams:
        return Streams(self.generators + other.generators)

    @property
    def device(self) -> torch.device:
        return self.generators[0].device if self.generators else torch.device("cpu")

    def select(self, mask: torch.Tensor) -> Streams:
        """The streams of the systems where `mask` [S] (bool) is True, in order."""
        keep = torch.as_tensor(mask, dtype=torch.bool).cpu().tolist()
        if len(keep) != len(self):
            raise ValueError(f"mask of {len(keep)} systems for {len(self)} streams")
        return Streams([g for g, k in zip(self.generators, keep, strict=True) if k])


Generator = torch.Generator | Streams | None
"""What a draw takes: one generator, a stream per system, or None (torch's global one)."""


def select_streams(generator: Generator, mask: torch.Tensor) -> Generator:
    """`generator` for the systems where `mask` is True: their streams, or the same
    generator when it is one for the whole batch."""
    return generator.select(mask) if isinstance(generator, Streams) else generator


def _check(streams: Streams, n_systems: int) -> None:
    if len(streams) != n_systems:
        raise ValueError(f"{len(streams)} random streams for a batch of {n_systems} systems")


def _per_system(
    draw: str,
    rows: torch.Tensor,
    tail: tuple[int, ...],
    streams: Streams,
    dtype: torch.dtype,
    device: torch.device,
    system_idx: torch.Tensor | None,
) -> torch.Tensor:
    """Rows drawn system by system, placed where each system's rows are."""
    counts = rows.tolist()
    _check(streams, len(counts))
    function = torch.randn if draw == "normal" else torch.rand
    parts = [
        function((int(n), *tail), generator=g, dtype=dtype, device=g.device)
        for g, n in zip(streams.generators, counts, strict=True)
    ]
    drawn = torch.cat(parts).to(device) if parts else torch.zeros((0, *tail), dtype=dtype)
    if system_idx is None:  # one row per system, in system order
        return drawn.to(device)
    out = torch.empty((len(system_idx), *tail), dtype=dtype, device=device)
    out[torch.argsort(system_idx, stable=True)] = drawn  # a system's rows in atom order
    return out


def random_rows(
    shape: tuple[int, ...],
    generator: Generator,
    *,
    dtype: torch.dtype,
    device: torch.device,
    draw: str = "normal",
    system_idx: torch.Tensor | None = None,
    n_systems: int | None = None,
) -> torch.Tensor:
    """Standard normals (`draw` "normal") or uniforms in [0, 1) ("uniform") of `shape`,
    whose first axis is per atom (`system_idx` given, with `n_systems`) or per system
    (neither given).

    With `Streams` each system's rows come from its own generator; otherwise the whole
    tensor is one draw from `generator` on its device.
    """
    if isinstance(generator, Streams):
        if system_idx is None:
            rows = torch.ones(shape[0], dtype=torch.long)
        else:
            rows = torch.bincount(system_idx.cpu(), minlength=int(n_systems or 0))
        return _per_system(draw, rows, tuple(shape[1:]), generator, dtype, device, system_idx)
    where = generator.device if generator is not None else device
    function = torch.randn if draw == "normal" else torch.rand
    return function(shape, generator=generator, dtype=dtype, device=where).to(device)


def integers(high: int, n_systems: int, generator: Generator, device: torch.device) -> torch.Tensor:
    """One integer in [0, high) per system. [n_systems] long"""
    if isinstance(generator, Streams):
        _check(generator, n_systems)
        drawn = [
            torch.randint(high, (1,), generator=g, device=g.device) for g in generator.generators
        ]
        return torch.cat(drawn).to(device) if drawn else torch.zeros(0, dtype=torch.long)
    where = generator.device if generator is not None else device
    return torch.randint(high, (n_systems,), generator=generator, device=where).to(device)
