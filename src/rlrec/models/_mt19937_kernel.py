"""The numba kernels of :mod:`rlrec.models.torch_mt19937` (imported only when numba is installed).

Module-level functions, so numba's on-disk cache holds their machine code between processes. The
generator is the 32-bit Mersenne Twister MT19937 (Matsumoto & Nishimura 1998) in the form torch's
CPU generator runs it: ``left`` counts down to the next twist of the whole 624-word state, ``next``
indexes the next untempered word.
"""

# mypy: ignore-errors
# (numba's decorators are untyped; the typed entry point is rlrec.models.torch_mt19937)

from __future__ import annotations

import numba as nb
import numpy as np

from rlrec._fastmath import fast

N, M = 624, 397
"""MT19937's state length and shift."""
UPPER, LOWER, MATRIX = np.uint32(0x80000000), np.uint32(0x7FFFFFFF), np.uint32(0x9908B0DF)


@nb.njit(inline="always", **fast)
def _mixed(u, v):
    """One twist term: the top bit of ``u`` and the low 31 bits of ``v``, shifted, times the matrix."""
    y = (u & UPPER) | (v & LOWER)
    return (y >> np.uint32(1)) ^ (MATRIX * (v & np.uint32(1)))


@nb.njit(**fast)
def twist(p):
    """Regenerate the 624-word state ``p`` (uint32) in place, in three loops that each read only
    words the loop does not write (so the first two vectorise)."""
    for i in range(N - M):
        p[i] = p[i + M] ^ _mixed(p[i], p[i + 1])
    for i in range(N - M, N - 1):
        p[i] = p[i + M - N] ^ _mixed(p[i], p[i + 1])
    p[N - 1] = p[M - 1] ^ _mixed(p[N - 1], p[0])


@nb.njit(inline="always", **fast)
def temper(y):
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    return y ^ (y >> np.uint32(18))


@nb.njit(**fast)
def temper_block(src, dst):
    """``dst[j] = temper(src[j])`` (a separate function, so the loop is compiled on plain slices)."""
    for j in range(src.shape[0]):
        dst[j] = temper(src[j])


@nb.njit(**fast)
def draws(p, pos, out):
    """Fill ``out`` (uint32) with the generator's next ``len(out)`` 32-bit outputs, in order.

    ``p``: the state (uint32 ``(624,)``), ``pos``: int64 ``[left, next]``; both advanced in place.
    A draw decrements ``left``, twists when it reaches 0 (``left = 624``, ``next = 0``) and returns
    the tempered ``p[next]`` (``next += 1``); so ``left − 1`` draws remain before the next twist."""
    left, nxt = pos[0], pos[1]
    need = out.shape[0]
    i = 0
    while i < need:
        take = min(left - 1, need - i)
        temper_block(p[nxt : nxt + take], out[i : i + take])
        i += take
        nxt += take
        left -= take
        if i < need:
            twist(p)
            left, nxt = N, 1
            out[i] = temper(p[0])
            i += 1
    pos[0], pos[1] = left, nxt


@nb.njit(**fast)
def full_range_words(w):
    """Draw pairs to the int64 words of ``random_(−2^63, 2^63 − 1)``, in place: word ``j`` is
    ``(v mod (2^64 − 1)) − 2^63`` for ``v = w[2j] · 2^32 + w[2j+1]`` (the draws in order), written
    back as its low and high halves (``w`` is the uint32 view of the int64 words, little-endian)."""
    for j in range(w.shape[0] // 2):
        hi, lo = w[2 * j], w[2 * j + 1]
        if hi == np.uint32(0xFFFFFFFF) and lo == np.uint32(0xFFFFFFFF):  # v = 2^64 − 1 → 0
            hi, lo = np.uint32(0), np.uint32(0)
        w[2 * j] = lo
        w[2 * j + 1] = hi ^ UPPER
