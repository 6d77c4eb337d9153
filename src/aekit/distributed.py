"""Multi-process data-parallel training with PyTorch's own engine (DDP, launched by ``torchrun``).

Every process holds the data, draws the same global batch order from the shared seed and trains on
its slice of each global batch; DistributedDataParallel averages the gradients. Losses are scaled
so that the average equals the loss of the whole global batch, so N processes with a global batch B
follow the same trajectory as one process with batch B (up to floating-point summation order).

Launch on one machine with 4 processes::

    torchrun --standalone --nproc_per_node 4 -m aekit.cli train --distributed --family vae ...

and across machines with ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint`` (see
``torchrun --help``); CPU processes talk over gloo, GPU processes over NCCL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import AekitError


@dataclass(frozen=True)
class Topology:
    """Where this process sits: ``rank`` of ``world`` processes, training on ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def current() -> Topology:
    """The topology of an initialised process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return Topology(dist.get_rank(), dist.get_world_size())
    return Topology()


def init_from_env(backend: str | None = None) -> Topology:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...).

    The backend is NCCL when CUDA is available, else gloo. Each process trains on
    ``cuda:LOCAL_RANK`` when there are GPUs, else on the CPU.
    """
    missing = [key for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if key not in os.environ]
    if missing:
        raise AekitError(
            "--distributed needs the process-group environment",
            f"{', '.join(missing)} not set (they are set by torchrun)",
            "launch with: torchrun --standalone --nproc_per_node N -m aekit.cli train --distributed ...",
        )
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    return Topology(dist.get_rank(), dist.get_world_size(), device)


def all_reduce_sum(tensor: torch.Tensor, topology: Topology) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place and returned); a no-op for one process."""
    if topology.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shard(count: int, topology: Topology) -> slice:
    """This process's contiguous part of ``count`` items: sizes differ by at most one."""
    start = count * topology.rank // topology.world
    stop = count * (topology.rank + 1) // topology.world
    return slice(start, stop)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
