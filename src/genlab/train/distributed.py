"""Data-parallel training with PyTorch's own DistributedDataParallel, launched by torchrun
(gloo on CPU, nccl on CUDA). Rank 0 writes; every rank reads its slice of each global batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as set by taskset, cgroups or a scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        dist.all_reduce(t)
        t /= info.world_size
    return t


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (stop signals, non-finite losses)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo, *, together: bool = True) -> None:
    """Leave the process group together: a rank that tears gloo down while another is still
    working (rank 0 writing the final samples) can abort in C++ ("terminate called without an
    active exception"). After an error on one rank the others may never arrive: leave at once."""
    if info.enabled and dist.is_initialized():
        try:
            if together:
                dist.barrier()
        finally:
            dist.destroy_process_group()
