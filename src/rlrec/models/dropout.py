"""Inverted dropout with cheap CPU masks, shared by the offline encoders and the online policy.

On CPU the mask comes from 16-bit uniform integers, four per 64-bit draw of torch's default
generator (``torch.manual_seed`` makes it reproducible), about 3× cheaper than ``F.dropout``'s
Bernoulli sampling, and drawn another 4–6× faster by :mod:`rlrec.models.torch_mt19937` when numba
is installed (the same words). The drop probability is rounded to a multiple of 2^-16
(0.1 → 0.100006) and the kept values are scaled by the exact ``1 / (1 − p)`` of that rounded
probability. The integers are compared as float32 (exact: |value| ≤ 2^15), so the mask is built
without a bool tensor, whose conversions and mixed-dtype products take a slow, unvectorised path on
CPU.

Data-parallel training (:func:`global_rows`): when a process holds some rows of a batch that is
spread over several processes, every mask is drawn for the *whole* batch and the process keeps its
rows. Each sample then gets the mask it would get in a single-process run with the same seed, at the
price of drawing the other processes' masks too (cheap next to the forward pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F

from rlrec.models.torch_mt19937 import int64_words, torch_draw

INT16_LEVELS = 1 << 16

# (rows of the whole batch, this process's rows as indices into it) while a sharded forward runs
_ROWS: ContextVar[tuple[int, torch.Tensor] | None] = ContextVar("rlrec_dropout_rows", default=None)


@contextmanager
def global_rows(total: int, rows: torch.Tensor) -> Iterator[None]:
    """Inside the block, the first dimension of every dropout mask is a batch of ``total`` rows of
    which this process computes ``rows`` (``[r]`` int64 indices, in the order of its local batch).

    Masks are drawn for ``total`` rows from torch's generator and the ``rows`` kept, so the draws do
    not depend on how the batch is split. Every forward inside must run on exactly ``len(rows)`` rows.
    """
    token = _ROWS.set((total, rows))
    try:
        yield
    finally:
        _ROWS.reset(token)


def _draw(shape: tuple[int, ...], draw: Callable[[tuple[int, ...]], torch.Tensor]) -> torch.Tensor:
    """``draw(shape)``, or this process's rows of ``draw`` on the whole batch (:func:`global_rows`)."""
    spec = _ROWS.get()
    if spec is None:
        return draw(shape)
    total, rows = spec
    if shape[0] != rows.numel():
        raise RuntimeError(
            f"dropout on {shape[0]} rows inside global_rows() with {rows.numel()} local rows"
        )
    full = draw((total, *shape[1:]))
    return full.index_select(0, rows.to(full.device))


def dropout_mask(
    shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Inverted-dropout multiplier of ``shape``: 0 with probability ``p``, else ``1 / (1 − p)``
    (``p`` rounded to 2^-16 on CPU; an ordinary Bernoulli draw on other devices)."""
    if device.type != "cpu":
        return _draw(shape, lambda full: _bernoulli_mask(full, p, dtype, device))
    words = dropout_words(shape)
    threshold, scale = word_threshold(p)
    keep = words.to(torch.float32).ge_(threshold)  # 1.0 kept, 0.0 dropped
    return keep.to(dtype).mul_(scale)


def dropout_words(shape: tuple[int, ...]) -> torch.Tensor:
    """The CPU mask's raw draws: int16 ``shape``, uniform on ``[−2^15, 2^15)``, four per 64-bit draw
    of torch's default generator (what :func:`dropout_mask` compares; kernels that apply dropout
    themselves take these and :func:`word_threshold`, and drop the same elements)."""
    return _draw(shape, _local_words)


def word_threshold(p: float) -> tuple[int, float]:
    """``(threshold, scale)`` for the draws of :func:`dropout_words`: an element is kept when its
    draw is ≥ ``threshold`` and then scaled by ``scale`` (``p`` rounded to 2^-16)."""
    n_drop = min(round(p * INT16_LEVELS), INT16_LEVELS - 1)
    return n_drop - INT16_LEVELS // 2, INT16_LEVELS / (INT16_LEVELS - n_drop)


def _local_words(shape: tuple[int, ...]) -> torch.Tensor:
    n = math.prod(shape)
    n_words = (n + 3) // 4
    # the same words, faster, where numba reproduces torch's stream
    words = int64_words(n_words)
    if words is None:
        words = torch_draw(n_words)
    return words.view(torch.int16)[:n].view(shape)


def _bernoulli_mask(
    shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    keep = torch.empty(shape, dtype=dtype, device=device).bernoulli_(1.0 - p)
    return keep.mul_(1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with masks from :func:`dropout_mask`; identity unless training and ``p > 0``."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask(tuple(x.shape), p, x.dtype, x.device)


def bernoulli_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` itself (its Bernoulli draws, for encoders whose published numbers used them),
    made batch-split invariant under :func:`global_rows` like :func:`dropout`."""
    if not training or p == 0.0 or _ROWS.get() is None:
        return F.dropout(x, p, training)
    ones = torch.ones((), dtype=x.dtype, device=x.device)
    mask = _draw(tuple(x.shape), lambda full: F.dropout(ones.expand(full).clone(), p, True))
    return x * mask
