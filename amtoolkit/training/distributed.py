"""Data-parallel training with torch.distributed (``torchrun``), detected from the environment.

``torchrun --nproc_per_node=4 -m amtoolkit.training CONFIG.yaml`` sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; with ``WORLD_SIZE`` > 1 the
trainer joins the process group (NCCL on CUDA, Gloo on CPU), wraps the model in
DistributedDataParallel and only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel run.

    Attributes:
        rank: global rank (0 writes files and logs).
        world_size: number of processes (1 = not distributed).
        local_rank: rank on this node (selects the CUDA device).
        owns_group: whether this context created the process group (and destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> DistributedContext:
    """Join the process group described by the environment (no-op for a single process).

    Args:
        device_type: ``"cuda"`` (NCCL backend) or ``"cpu"`` (Gloo).
    """
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, True)


def teardown_distributed(context: DistributedContext) -> None:
    """Leave the process group if `setup_distributed` created it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum of `values` over all processes (the tensor itself when not distributed)."""
    if context.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op when not distributed)."""
    if context.enabled:
        dist.barrier()
