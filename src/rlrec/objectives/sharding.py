"""A loss's view of a batch that data-parallel training spreads over several processes.

Under ``torchrun`` each of ``W`` processes computes the loss on its slice of the global batch and the
gradients are averaged (:mod:`rlrec.train.distributed`). That equals the single-process gradient
when every loss term is a mean of per-sample terms over equal slices and every random draw of a
sample does not depend on which process holds it. :class:`BatchShard` supplies the rest:

* :meth:`BatchShard.rows` — this process's rows, for :func:`rlrec.models.dropout.global_rows`
  (dropout masks drawn for the global batch);
* :meth:`BatchShard.mean` — a detached mean over the global batch (SAC's legacy batch-mean weight);
* :meth:`BatchShard.gather` — the global batch's rows of a tensor, for the terms in which samples
  meet (the contrastive losses use the other states of the *global* batch as negatives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from rlrec.data.transitions import TransitionBatch


@dataclass(frozen=True)
class BatchShard:
    """Rows ``[start, stop)`` of the global batch ``full`` are this process's (``rank`` of
    ``world_size``); every process holds the same number of rows."""

    full: TransitionBatch
    start: int
    stop: int
    rank: int
    world_size: int

    @property
    def size(self) -> int:
        """Rows of the global batch."""
        return int(self.full.action.shape[0])

    def rows(self, copies: int = 1) -> torch.Tensor:
        """``[copies·(stop − start)]`` indices of this process's rows in ``copies`` stacked copies of
        the global batch (``[s'; s]`` stacks two), in the order of the local stack."""
        own = torch.arange(self.start, self.stop)
        return torch.cat([own + c * self.size for c in range(copies)])

    def owns(self, mask: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: the rows of the global batch that are this process's and set in ``mask``."""
        mine = torch.zeros_like(mask)
        mine[self.start : self.stop] = True
        return mine & mask

    def counts(self, mask: torch.Tensor) -> list[int]:
        """How many rows set in the global ``[B]`` ``mask`` each process holds, in rank order."""
        return [int(n) for n in mask.view(self.world_size, -1).sum(dim=1)]

    def mean(self, local: torch.Tensor) -> torch.Tensor:
        """The mean over the global batch of a detached per-sample ``[b]`` tensor."""
        total = local.detach().sum().reshape(1).clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[0] / self.size

    def gather(self, local: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Every process's rows of ``local`` (``counts[r]`` rows on process ``r``), concatenated in
        rank order; gradient flows to this process's rows (see :class:`_GatherRows`)."""
        return _GatherRows.apply(local, counts, self.rank, self.world_size)


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 for a loss that every process computes identically on the result.

    The gradient of such a loss with respect to this process's rows is the sum over processes of
    each one's (identical) gradient for them: ``W ×`` the local one. Returning that keeps the
    average of the ``W`` processes' parameter gradients equal to the single-process gradient, with
    one plain ``all_gather`` (rows padded to the largest count) and no collective in the backward.
    """

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, counts: list[int], rank: int, world: int) -> Any:
        width = max(counts)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        parts[rank] = local  # own rows as computed (identical values)
        ctx.span = (sum(counts[:rank]), counts[rank], world)
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        start, n, world = ctx.span
        return grad[start : start + n] * world, None, None, None
