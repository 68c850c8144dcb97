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
    owns_group: bool = False  # joined the process group itself (and so leaves it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device_type: str) -> World:
    """Join the process group when ``torchrun`` set ``WORLD_SIZE > 1`` (or use the caller's, when
    it already initialised one)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return World(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def average_gradients(module: nn.Module, world: World, loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of ``module`` across ranks with one all-reduce over all of them,
    flattened into a single buffer (a parameter without a gradient on this rank counts as zero).

    ``loss`` (this rank's detached scalar) rides in the same buffer; returns its mean over ranks,
    which is non-finite on every rank as soon as it is on one (so all stop together).
    """
    if world.size == 1:
        return loss
    params = list(module.parameters())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([*(g.reshape(-1) for g in grads), loss.reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world.size)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    return flat[-1]


def window_across(
    window: dict[str, float], world: World, maxima: frozenset[str]
) -> dict[str, float]:
    """A log window's values over all ranks: the mean of the ranks' values (each rank averages its
    equal slice, so a mean of per-sample terms is the global one), the largest for keys in
    ``maxima`` (a window mean of per-step maxima: at most the single-process value, as each step's
    maximum is taken per rank). Every rank logs the same keys."""
    if world.size == 1:
        return window
    keys = sorted(window)
    values = torch.tensor([window[k] for k in keys], dtype=torch.float64)
    means, tops = values.clone(), values.clone()
    dist.all_reduce(means, op=dist.ReduceOp.SUM)
    dist.all_reduce(tops, op=dist.ReduceOp.MAX)
    return {
        k: float(tops[i]) if k in maxima else float(means[i]) / world.size
        for i, k in enumerate(keys)
    }


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()
