"""Data parallelism under ``torchrun``: gloo on CPU, NCCL on GPU.

Each rank trains on its slice of every global batch; gradients are averaged across ranks before the
optimiser step with one all-reduce of the network's flattened gradients, as DDP's buckets do. (The
double-Q pair updates one of two networks per step and the methods leave a head unused, which DDP's
hooks handle poorly; the explicit all-reduce keeps the semantics plain.) Rank 0 alone evaluates, logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place in the job (``size == 1`` when not launched by torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device_type: str) -> World:
    """Join the process group when ``torchrun`` set ``WORLD_SIZE > 1``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(module: nn.Module, world: World) -> None:
    """Average the gradients of ``module`` across ranks with one all-reduce over all of them,
    flattened into a single buffer (a parameter without a gradient on this rank counts as zero)."""
    if world.size == 1:
        return
    params = list(module.parameters())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world.size)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
