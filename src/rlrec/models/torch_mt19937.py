"""torch's CPU random stream, drawn faster: the same int64 words as ``random_`` from the same state.

Dropout masks on CPU come from ``torch.empty(n, dtype=torch.int64).random_(−2^63, 2^63 − 1)`` on the
default generator (:mod:`rlrec.models.dropout`). torch draws those one element at a time through
a locked, generic kernel (≈ 7 ns per word on this project's 2-core machine, about a tenth of a HAC
update); :func:`int64_words` computes the *same* words from the generator's Mersenne Twister state
with vectorised numba loops (≈ 1 ns per word) and advances the generator exactly as torch would, so
seeded results do not change. It reads and writes the state through ``torch.get_rng_state`` /
``set_rng_state``, whose byte layout (torch's legacy ``THGeneratorState``: seed, ``left``,
``seeded``, ``next``, 624 state words as uint64, then the Box–Muller caches) it checks once per
process against torch itself; if the check fails (another torch, another layout) or numba is not
installed, :func:`int64_words` returns ``None`` and the caller draws with torch.

Not thread-safe against other threads drawing from torch's default generator at the same moment
(torch's own kernel holds the generator's lock; this reads and writes the state in two steps).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np
import torch

from rlrec import numba_support

STATE_BYTES = 5056
"""Size of torch's CPU generator state: the legacy struct (5048 bytes) + the float normal cache."""
_N = 624
_verified: bool | None = None  # the once-per-process comparison with torch's own draws
_enabled = True


def _kernels() -> ModuleType:
    from rlrec.models import _mt19937_kernel

    return _mt19937_kernel


def torch_draw(n: int) -> torch.Tensor:
    """The words drawn by torch itself: ``random_(−2^63, 2^63 − 1)`` on ``n`` fresh int64."""
    return torch.empty(n, dtype=torch.int64).random_(-(2**63), 2**63 - 1)


def _draw(n: int) -> torch.Tensor | None:
    """``n`` words from the default generator's state, which is advanced past them; ``None`` (and
    the state untouched) if the state does not have the expected layout."""
    raw = torch.get_rng_state().numpy().copy()
    if raw.size != STATE_BYTES:
        return None
    left, nxt = int(raw[8:12].view(np.int32)[0]), int(raw[16:24].view(np.uint64)[0])
    if not (1 <= left <= _N and 0 <= nxt <= _N):
        return None
    state = raw[24 : 24 + 8 * _N].view(np.uint64).astype(np.uint32)
    pos = np.array([left, nxt], np.int64)
    out = torch.empty(n, dtype=torch.int64)  # torch's allocator: fresh numpy buffers page-fault
    halves = out.numpy().view(np.uint32)
    kernels = _kernels()
    kernels.draws(state, pos, halves)
    kernels.full_range_words(halves)
    raw[8:12].view(np.int32)[0] = pos[0]
    raw[16:24].view(np.uint64)[0] = pos[1]
    raw[24 : 24 + 8 * _N].view(np.uint64)[:] = state
    torch.set_rng_state(torch.from_numpy(raw))
    return out


def _matches_torch() -> bool:
    """Draw 1,000 words (across a twist) both ways from the current state, compare the words and
    the states after, and put the state back as it was."""
    before = torch.get_rng_state()
    if before.numel() != STATE_BYTES:
        return False
    try:
        expected = torch_draw(1000)
        after = torch.get_rng_state()
        torch.set_rng_state(before)
        got = _draw(1000)
        return (
            got is not None
            and torch.equal(got, expected)
            and torch.equal(torch.get_rng_state(), after)
        )
    finally:
        torch.set_rng_state(before)


@contextmanager
def disabled() -> Iterator[None]:
    """Inside the block :func:`int64_words` returns ``None`` (torch draws itself): for comparisons."""
    global _enabled
    saved, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = saved


def int64_words(n: int) -> torch.Tensor | None:
    """:func:`torch_draw` on torch's default CPU generator: the same words and the same generator
    state after, or ``None`` where this module cannot reproduce torch's stream (then call
    :func:`torch_draw`)."""
    global _verified
    if not _enabled:
        return None
    if _verified is None:
        _verified = sys.byteorder == "little" and numba_support.available() and _matches_torch()
    return _draw(n) if _verified else None
