"""Data-parallel training across ranks (torchrun): joining the group, and the reductions the loop needs."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def init_distributed(device: torch.device) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def all_finite(device: torch.device, world_size: int, *values: torch.Tensor) -> bool:
    """True on every rank only if every value is finite on every rank (all ranks stop together)."""
    flag = torch.tensor([float(all(torch.isfinite(v).all() for v in values))], device=device)
    if world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def mean_over_ranks(value: torch.Tensor, world_size: int) -> float:
    value = value.detach().clone()
    if world_size > 1:
        dist.all_reduce(value)
        value /= world_size
    return float(value)
