"""Transitions cut from flat per-session arrays at batch time (the MDP of P-SA2C §3.1).

For the event at flat position ``p`` of a session occupying ``[s0, s1)``:

* ``state`` — the last ``min(p - s0, L)`` items before ``p``, in order, **right-padded** with the pad id
  ``n`` (real items first), or left-padded with ``padding="left"``;
* ``len_state`` — the number of real items, but **1 for an empty history** (the reference's rule; the
  empty state is told apart only by the pad at position 0);
* ``action``/``is_buy`` — the event itself; ``next_state``/``len_next_state`` — the same from ``p + 1``;
* ``done`` — ``p + 1 == s1`` (last event of the session).

Nothing is materialised per transition: a batch of positions becomes ``[B, L]`` tensors by index
arithmetic and one gather, so memory grows with the number of events only. The same code serves
training (train split) and evaluation (every event of val/test, including empty-history ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import torch

from rlrec.data.dataset import SessionLog

Padding = Literal["right", "left"]


@dataclass(frozen=True)
class TransitionBatch:
    """A batch of ``B`` transitions; ``state``/``next_state`` are ``[B, L]`` item ids (pad = n)."""

    state: torch.Tensor
    len_state: torch.Tensor
    action: torch.Tensor
    is_buy: torch.Tensor
    next_state: torch.Tensor
    len_next_state: torch.Tensor
    done: torch.Tensor

    def reward(self, r_click: float, r_buy: float) -> torch.Tensor:
        """``[B]`` float rewards: ``r_buy`` for purchases, ``r_click`` for clicks."""
        return torch.where(self.is_buy.bool(), r_buy, r_click).to(torch.float32)


def history_window(
    items: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    size: int,
    pad_id: int,
    padding: Padding = "right",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``size`` items of ``items[start:end]`` per row: ``([B, size] ids, [B] len_state)``."""
    hist = (end - start).clamp(max=size)
    offsets = torch.arange(size, device=items.device)
    if padding == "right":
        pos = (end - hist).unsqueeze(1) + offsets
        valid = offsets < hist.unsqueeze(1)
    else:
        pos = end.unsqueeze(1) - size + offsets
        valid = offsets >= (size - hist).unsqueeze(1)
    values = items[pos.clamp(0, max(len(items) - 1, 0))]
    state = torch.where(valid, values, torch.full_like(values, pad_id))
    return state, hist.clamp(min=1)


class Transitions:
    """Every transition of a :class:`SessionLog`, cut on demand by flat event position."""

    def __init__(
        self,
        log: SessionLog,
        state_size: int,
        pad_id: int,
        *,
        padding: Padding = "right",
        device: torch.device | str = "cpu",
    ) -> None:
        self.state_size = state_size
        self.pad_id = pad_id
        self.padding: Padding = padding
        self.items = torch.from_numpy(log.items).to(device)
        self.is_buy = torch.from_numpy(log.is_buy).to(device)
        starts = torch.from_numpy(log.starts).to(device)
        lengths = starts[1:] - starts[:-1]
        session = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
        self.start = starts[:-1][session]
        self.end = starts[1:][session]

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, pos: torch.Tensor) -> TransitionBatch:
        """The transitions at flat positions ``pos`` (``[B]`` int64)."""
        start, end = self.start[pos], self.end[pos]
        state, len_state = history_window(
            self.items, start, pos, self.state_size, self.pad_id, self.padding
        )
        next_state, len_next = history_window(
            self.items, start, pos + 1, self.state_size, self.pad_id, self.padding
        )
        return TransitionBatch(
            state=state,
            len_state=len_state,
            action=self.items[pos],
            is_buy=self.is_buy[pos],
            next_state=next_state,
            len_next_state=len_next,
            done=pos + 1 == end,
        )

    def iter_batches(
        self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[TransitionBatch]:
        """One pass over all transitions in batches (a seeded permutation when ``shuffle``)."""
        n = len(self)
        order = (
            torch.randperm(n, generator=generator).to(self.items.device)
            if shuffle
            else torch.arange(n, device=self.items.device)
        )
        for i in range(0, n, batch_size):
            yield self.batch(order[i : i + batch_size])

    def to_frame(self) -> pl.DataFrame:
        """All transitions as a table with the reference replay buffer's columns (for inspection)."""
        b = self.batch(torch.arange(len(self), device=self.items.device))
        return pl.DataFrame(
            {
                "state": b.state.cpu().numpy(),
                "len_state": b.len_state.cpu().numpy(),
                "action": b.action.cpu().numpy(),
                "is_buy": b.is_buy.cpu().numpy().astype(np.int8),
                "next_state": b.next_state.cpu().numpy(),
                "len_next_states": b.len_next_state.cpu().numpy(),
                "is_done": b.done.cpu().numpy(),
            }
        )
