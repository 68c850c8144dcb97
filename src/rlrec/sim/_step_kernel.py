"""numba versions of two per-step operations of the simulator (imported only when numba is installed).

Both are integer operations, so they give exactly what their PyTorch versions in
:mod:`rlrec.sim.functional` give (``tests/test_sim_step_kernel.py``); on the CPU they replace a dozen
small tensor operations each, whose fixed costs dominated the step once the URM's attention was fast
(``benchmarks/README.md``, "Simulator throughput"). :mod:`rlrec.sim.functional` chooses them.
"""

# mypy: ignore-errors
# (numba's decorators are untyped; the typed entry points are in rlrec.sim.functional)

from __future__ import annotations

import numba as nb

M32 = 0xFFFFFFFF


@nb.njit(inline="always", cache=True)
def mix32(x):
    """MurmurHash3's 32-bit finaliser of ``x`` in ``[0, 2³²)`` (int64; products wrap, and only
    their low 32 bits are kept)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & M32
    return x ^ (x >> 16)


@nb.vectorize(["int64(int64, int64)"], cache=True)
def hash_combine(a, b):
    """The 32-bit hash of the pair ``(a, b)`` (a numpy ufunc: broadcasts)."""
    salted = (((b & M32) * 0x9E3779B1) & M32) + 0x7F4A7C15
    return mix32((a & M32) ^ mix32(salted & M32))


@nb.njit(cache=True)
def append_positives(history, mask, slate, response, new_hist, new_mask):
    """``new ← (history ++ positives of the slate, in slate order)[-H:]``, per row; every existing
    slot (padding too) is kept, so ``p`` positives shift the ``p`` oldest slots out."""
    b, width = history.shape
    k = slate.shape[1]
    for i in range(b):
        p = 0
        for j in range(k):
            p += response[i, j]
        kept = max(width - p, 0)  # old slots that stay, moved to the front
        for t in range(kept):
            new_hist[i, t] = history[i, t + p]
            new_mask[i, t] = mask[i, t + p]
        skip = max(p - width, 0)  # positives beyond the window's width drop out first
        t = kept
        for j in range(k):
            if response[i, j]:
                if skip > 0:
                    skip -= 1
                else:
                    new_hist[i, t] = slate[i, j]
                    new_mask[i, t] = True
                    t += 1
