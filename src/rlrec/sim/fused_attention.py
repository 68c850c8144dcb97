"""A fused CPU kernel for the URM's history attention, compiled with numba when it is installed.

The simulator recomputes the user interest of every user whose history changed, at every step. For
1,024 users and the reference window ``H = 50`` that is 4,096 (user, head) self-attention problems of
``50 × 50 × 8`` and a ``4 × 50`` cross-attention each; PyTorch spends most of the step on the
per-problem overhead of its attention kernel and on memory traffic between the separate operations
(``benchmarks/README.md``, "Simulator throughput"). This kernel computes the same function in one
pass per user, everything in cache, in float32:

1. gather the ``[q | k | v]`` rows of the user's real history items (padding skipped: a masked key
   has weight exactly 0 in :func:`rlrec.sim.functional.self_attention` as well);
2. per head ``j``: ``a_t = Σ_k softmax_k(q_t·k_k / √d) v_k`` (the self-attention before its output
   projection, P-HAC A.2), with the softmax's row maximum subtracted, as PyTorch does;
3. per cross head: ``pooled = Σ_t softmax_t(r·a_t) a_t`` with the folded query ``r``
   (:func:`rlrec.sim.functional.fold_cross_query`).

The result is :func:`rlrec.sim.functional.cross_pool` of the same inputs up to float rounding (the
sums run in another order and ``exp`` is a degree-7 polynomial, ≈ 2 ulp): ``tests/test_sim_fused.py``
checks it to 1e-5 and that whole simulator trajectories are unchanged. Users are independent, each is
computed by one thread, so the result does not depend on the thread count.

numba is optional (``pip install "rlrec[fast]"``); without it, or with
``EnvConfig.attention_kernel = "torch"``, the simulator uses the PyTorch path.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import torch


def available() -> bool:
    """Whether numba can be imported (the kernel compiles on first use, about a second)."""
    return importlib.util.find_spec("numba") is not None


@cache
def _kernel() -> tuple[Callable[..., None], Callable[[float], tuple[float, int]]]:
    """Compile (once per process; numba caches the machine code on disk) and return the kernel and
    its ``exp``."""
    import numba as nb

    @nb.njit(fastmath=True, inline="always", error_model="numpy", cache=True)
    def exp_parts(x: float) -> tuple[float, int]:
        """``exp(x)`` for ``x ≤ 0`` as a mantissa polynomial and the bits of ``2^n`` (the caller
        multiplies them through an int32 → float32 view, which keeps the loops vectorised).
        Cody–Waite reduction ``x = n ln2 + y``, ``|y| ≤ ln2/2``, then Cephes' ``expf`` polynomial."""
        x = max(x, np.float32(-87.0))
        n = np.int32(x * np.float32(1.44269504) - np.float32(0.5))  # round(x/ln2) for x ≤ 0
        z = np.float32(n)
        y = x - z * np.float32(0.693359375) - z * np.float32(-2.12194440e-4)
        p = np.float32(1.9875691500e-4)
        p = p * y + np.float32(1.3981999507e-3)
        p = p * y + np.float32(8.3334519073e-3)
        p = p * y + np.float32(4.1665795894e-2)
        p = p * y + np.float32(1.6666665459e-1)
        p = p * y + np.float32(5.0000001201e-1)
        p = p * y * y + y + np.float32(1.0)
        return p, (n + np.int32(127)) << np.int32(23)

    @nb.njit(fastmath=True, boundscheck=False, error_model="numpy", parallel=True, cache=True)
    def pooled(
        table: Any, hist: Any, mask: Any, query: Any, n_heads: int, out: Any, n_chunks: int
    ) -> None:
        b_total, width = hist.shape
        f = table.shape[1] // 3
        d = f // n_heads
        n_cross = query.shape[1]
        scale = np.float32(1.0 / math.sqrt(d))
        for chunk in nb.prange(n_chunks):
            # scratch of one thread, reused for its users: ids, q (transposed), a (transposed),
            # logits/weights S[key, query], exponent bits, row max, row sum, cross weights
            wp = (width + 15) // 16 * 16
            ids = np.empty(width, np.int64)
            q_t = np.empty((f, wp), np.float32)
            a_t = np.empty((f, wp), np.float32)
            s = np.empty((width, wp), np.float32)
            s_bits = np.empty((width, wp), np.int32)
            s_two = s_bits.view(np.float32)
            row_max = np.empty(wp, np.float32)
            row_sum = np.empty(wp, np.float32)
            w = np.empty(width, np.float32)
            w_bits = np.empty(width, np.int32)
            w_two = w_bits.view(np.float32)
            for b in range(chunk * b_total // n_chunks, (chunk + 1) * b_total // n_chunks):
                n = 0
                for t in range(width):
                    if mask[b, t]:
                        ids[n] = hist[b, t]
                        n += 1
                if n == 0:  # empty history: the caller sets the interest to zero
                    for j in range(n_cross):
                        for c in range(f):
                            out[b, j, c] = 0.0
                    continue
                npad = (n + 15) // 16 * 16
                for t in range(n):
                    for c in range(f):
                        q_t[c, t] = table[ids[t], c] * scale
                for c in range(f):
                    for t in range(n, npad):
                        q_t[c, t] = 0.0
                for c in range(f):
                    for t in range(npad):
                        a_t[c, t] = 0.0
                for h in range(n_heads):
                    lo = h * d
                    for t in range(npad):
                        row_max[t] = -3.0e38
                        row_sum[t] = 0.0
                    for k in range(n):  # S[k, t] = q_t · k_k / √d
                        key = ids[k]
                        for t in range(npad):
                            s[k, t] = 0.0
                        for c in range(lo, lo + d):
                            kc = table[key, f + c]
                            for t in range(npad):
                                s[k, t] += kc * q_t[c, t]
                        for t in range(npad):
                            row_max[t] = max(row_max[t], s[k, t])
                    for k in range(n):
                        for t in range(npad):
                            p, e = exp_parts(s[k, t] - row_max[t])
                            s[k, t] = p
                            s_bits[k, t] = e
                    for k in range(n):
                        for t in range(npad):
                            e = s[k, t] * s_two[k, t]
                            s[k, t] = e
                            row_sum[t] += e
                    for k in range(n):  # a_t += e[k, t] v_k
                        key = ids[k]
                        for c in range(lo, lo + d):
                            vc = table[key, 2 * f + c]
                            for t in range(npad):
                                a_t[c, t] += s[k, t] * vc
                    for c in range(lo, lo + d):
                        for t in range(npad):
                            a_t[c, t] /= row_sum[t]
                for j in range(n_cross):  # pooled_j = Σ_t softmax_t(r_j · a_t) a_t
                    for t in range(n):
                        w[t] = 0.0
                    for c in range(f):
                        rc = query[b, j, c]
                        for t in range(n):
                            w[t] += rc * a_t[c, t]
                    top = w[0]
                    for t in range(1, n):
                        top = max(top, w[t])
                    for t in range(n):
                        p, e = exp_parts(w[t] - top)
                        w[t] = p
                        w_bits[t] = e
                    total = np.float32(0.0)
                    for t in range(n):
                        w[t] = w[t] * w_two[t]
                        total += w[t]
                    inv = np.float32(1.0) / total
                    for c in range(f):
                        acc = np.float32(0.0)
                        for t in range(n):
                            acc += w[t] * a_t[c, t]
                        out[b, j, c] = acc * inv

    return pooled, exp_parts


def exp(x: np.ndarray) -> np.ndarray:
    """The kernel's ``exp`` on ``x ≤ 0`` (float32 array), for tests: mantissa × ``2^n``."""
    exp_parts = _kernel()[1]
    out = np.empty(x.shape, np.float32)
    for i, v in enumerate(x.astype(np.float32)):
        p, bits = exp_parts(v)
        out[i] = np.float32(p) * np.array([bits], np.int32).view(np.float32)[0]
    return out


def pooled_history(
    qkv_table: torch.Tensor,
    history: torch.Tensor,
    mask: torch.Tensor,
    query: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """The cross-attention's pooled self-attention output ``(B, h, f)``, as
    :func:`rlrec.sim.functional.cross_pool` of the history's self-attention.

    ``qkv_table``: per-item ``[q | k | v]`` rows ``(N+1, 3f)`` float32; ``history``: ``(B, H)`` ids;
    ``mask``: ``(B, H)`` bool, True for the keys that take part (all True reproduces an unmasked
    URM); ``query``: the folded cross query ``(B, h, f)``; ``n_heads``: the self-attention's heads. CPU
    tensors; rows with no key give zeros.
    """
    import numba

    table = qkv_table.detach().contiguous().numpy()
    q = query.detach().to(torch.float32).contiguous()
    out = torch.empty(q.shape, dtype=torch.float32)
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    threads = max(1, min(torch.get_num_threads(), most))
    numba.set_num_threads(threads)
    _kernel()[0](
        table,
        history.contiguous().numpy(),
        mask.contiguous().numpy(),
        q.numpy(),
        n_heads,
        out.numpy(),
        threads,
    )
    return out
