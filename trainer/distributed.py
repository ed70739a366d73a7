"""torch.distributed set-up under ``torchrun`` (env:// rendezvous), and the helpers the engine needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


def init_distributed(device: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1): NCCL on CUDA with one GPU
    per LOCAL_RANK, gloo on CPU. A plain ``python`` launch is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, pick_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    base = pick_device(device)
    if base.type == "cuda":
        torch.cuda.set_device(local_rank)
        base = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if base.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), base)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over processes (the tensor itself in a world of one)."""
    if not info.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / info.world_size


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
