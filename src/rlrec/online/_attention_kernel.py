"""The numba kernels of :mod:`rlrec.online.fused_attention` (imported only when numba is installed).

One task per (sequence, head) problem, ``prange`` over them. Per problem the keys and values are
copied once into ``(d, Lp)`` tiles (``Lp``: the keys padded to whole blocks of 16, padding keys zero
with bias ``PAD``), and each query row is processed with loops over 1-D views of whole blocks, which
LLVM vectorises without remainder loops. Per row only the blocks from its first to its last open
key are visited (for the causal mask, about half). The backward pass recomputes each row's softmax
from ``q`` and ``k`` with the same code as the forward (:func:`row_softmax`), so it sees the same
weights, and keeps ``dk``/``dv`` of the problem in tiles that are written out once.

Shapes and the function: see :mod:`rlrec.online.fused_attention`.
"""

# mypy: ignore-errors
# (numba's decorators are untyped; the typed entry points are in rlrec.online.fused_attention)

from __future__ import annotations

import numba as nb
import numpy as np

from rlrec._fastmath import exp32, fast

BLOCK = 16
"""Keys are visited in whole blocks of 16 (no remainder loops); tiles are padded to a multiple."""
PAD = np.float32(-3.0e38)
"""The bias of a padding key (below any real logit; also the start of a running maximum)."""
CLOSED = np.float32(-1.0e8)
"""A key whose bias is at or below this takes no part (``NEG`` = −1e9 of the layers)."""
UNDERFLOW = np.float32(-87.0)
"""Logits this far below the row's maximum get weight 0 (float32 ``exp`` underflows near here)."""


@nb.njit(inline="always", **fast)
def load_tiles(k, v, b, hh, kt, vt):
    """Keys and values of problem ``(b, hh)`` into ``(d, Lp)`` tiles; the padding keys are zero."""
    n_keys, d = k.shape[1], k.shape[3]
    kt[:, :] = 0.0
    vt[:, :] = 0.0
    for j in range(n_keys):
        for c in range(d):
            kt[c, j] = k[b, j, hh, c]
            vt[c, j] = v[b, j, hh, c]


@nb.njit(inline="always", **fast)
def open_blocks(brow, n_keys):
    """``[lo, hi)``: the 16-key blocks from the first to the last open key of a bias row (keys
    outside get weight 0)."""
    first, last = n_keys, -1
    for j in range(n_keys):
        if brow[j] > CLOSED:
            first = min(first, j)
            last = j
    if last < 0:  # no open key: torch's finite bias gives every key about equal weight
        first, last = 0, n_keys - 1
    return first // BLOCK * BLOCK, (last // BLOCK + 1) * BLOCK


@nb.njit(inline="always", **fast)
def load_row(bias, bb, i, words, b, hh, threshold, keep_scale, brow, m):
    """Row ``i``'s bias into ``brow[:L]`` (its padding keeps ``PAD``) and, with dropout ``words``,
    its multipliers into ``m[:L]`` (``keep_scale`` where the draw ≥ ``threshold``; padding 0)."""
    n_keys = bias.shape[2]
    src = bias[bb, i]
    for t in range(n_keys):
        brow[t] = src[t]
    if words.shape[0] > 0:
        draws = words[b, hh, i]
        for t in range(n_keys):
            m[t] = keep_scale * np.float32(draws[t] >= threshold)


@nb.njit(inline="always", **fast)
def row_logits(qrow, kt, brow, lo, hi, w):
    """``w[lo:hi] = brow + qrow·k_j`` (``qrow`` pre-scaled); the 8 terms written out for ``d = 8``.

    Every loop runs from 0 over 1-D views: numba then emits no negative-index code and LLVM
    vectorises the loop."""
    n = hi - lo
    wv, bv = w[lo:hi], brow[lo:hi]
    if kt.shape[0] == 8:
        k0, k1, k2, k3 = kt[0, lo:hi], kt[1, lo:hi], kt[2, lo:hi], kt[3, lo:hi]
        k4, k5, k6, k7 = kt[4, lo:hi], kt[5, lo:hi], kt[6, lo:hi], kt[7, lo:hi]
        q0, q1, q2, q3, q4, q5, q6, q7 = (
            qrow[0],
            qrow[1],
            qrow[2],
            qrow[3],
            qrow[4],
            qrow[5],
            qrow[6],
            qrow[7],
        )
        for t in range(n):
            wv[t] = (
                bv[t] + q0 * k0[t] + q1 * k1[t] + q2 * k2[t] + q3 * k3[t]
                + q4 * k4[t] + q5 * k5[t] + q6 * k6[t] + q7 * k7[t]
            )  # fmt: skip
        return
    for t in range(n):
        wv[t] = bv[t]
    for c in range(kt.shape[0]):
        qc, kr = qrow[c], kt[c, lo:hi]
        for t in range(n):
            wv[t] += qc * kr[t]


@nb.njit(inline="always", **fast)
def row_exp(w, lo, hi):
    """``w[lo:hi] ← exp(w − max w)`` (0 where that underflows); returns their sum. The maximum is
    its own loop (LLVM does not vectorise a max reduction inside another loop)."""
    n = hi - lo
    wv = w[lo:hi]
    top = PAD
    for t in range(n):
        top = max(top, wv[t])
    total = np.float32(0.0)
    for t in range(n):
        x = wv[t] - top
        e = exp32(x) * np.float32(x > UNDERFLOW)
        wv[t] = e
        total += e
    return total


@nb.njit(inline="always", **fast)
def row_dot(a, b, lo, hi):
    """``Σ_j a[j] b[j]`` over ``[lo, hi)``."""
    av, bv = a[lo:hi], b[lo:hi]
    total = np.float32(0.0)
    for t in range(hi - lo):
        total += av[t] * bv[t]
    return total


@nb.njit(inline="always", **fast)
def row_axpy(y, alpha, x, lo, hi):
    """``y[lo:hi] += alpha · x[lo:hi]``."""
    yv, xv = y[lo:hi], x[lo:hi]
    for t in range(hi - lo):
        yv[t] += alpha * xv[t]


@nb.njit(inline="always", **fast)
def row_scaled(w, m, inv, lo, hi):
    """``w[lo:hi] ← w · m · inv`` (the normalised, dropped weights)."""
    wv, mv = w[lo:hi], m[lo:hi]
    for t in range(hi - lo):
        wv[t] *= mv[t] * inv


@nb.njit(inline="always", **fast)
def row_softmax(q, b, i, hh, scale, kt, bias, bb, words, threshold, keep_scale, brow, m, qrow, w):
    """Row ``i`` of problem ``(b, hh)``, the part forward and backward share: its bias and dropout
    multipliers loaded, the scaled query ``qrow``, ``w ← exp(logit − max)`` on its open blocks.
    Returns ``(lo, hi, Σ w)``."""
    load_row(bias, bb, i, words, b, hh, threshold, keep_scale, brow, m)
    lo, hi = open_blocks(brow, bias.shape[2])
    for c in range(qrow.shape[0]):
        qrow[c] = q[b, i, hh, c] * scale
    row_logits(qrow, kt, brow, lo, hi, w)
    return lo, hi, row_exp(w, lo, hi)


@nb.njit(inline="always", **fast)
def lanes_of(n_keys):
    """``Lp``: ``n_keys`` rounded up to whole blocks."""
    return (n_keys + BLOCK - 1) // BLOCK * BLOCK


@nb.njit(parallel=True, **fast)
def forward(q, k, v, bias, words, threshold, keep_scale, scale, out):
    """``out[b, i, h] = Σ_j (softmax_j(scale q·k + bias) ⊙ m)_ij v_j`` (``m`` = 1 without words)."""
    n_seq, n_rows, n_heads, d = q.shape
    n_keys = k.shape[1]
    lanes = lanes_of(n_keys)
    shared_bias = bias.shape[0] == 1
    for task in nb.prange(n_seq * n_heads):
        b, hh = task // n_heads, task % n_heads
        bb = 0 if shared_bias else b
        kt = np.empty((d, lanes), np.float32)
        vt = np.empty((d, lanes), np.float32)
        w = np.empty(lanes, np.float32)
        brow = np.full(lanes, PAD, np.float32)
        m = np.zeros(lanes, np.float32)
        m[:n_keys] = 1.0
        qrow = np.empty(d, np.float32)
        load_tiles(k, v, b, hh, kt, vt)
        for i in range(n_rows):
            lo, hi, total = row_softmax(
                q,
                b,
                i,
                hh,
                scale,
                kt,
                bias,
                bb,
                words,
                threshold,
                keep_scale,
                brow,
                m,
                qrow,
                w,
            )
            row_scaled(w, m, np.float32(1.0) / total, lo, hi)
            for c in range(d):
                out[b, i, hh, c] = row_dot(w, vt[c], lo, hi)


@nb.njit(parallel=True, **fast)
def backward(q, k, v, bias, words, threshold, keep_scale, scale, g, dq, dk, dv):
    """Gradients of :func:`forward` for the output gradient ``g`` (``q``'s shape): ``dv = W_dᵀ g``,
    ``dW = (g vᵀ) ⊙ m``, ``dA = W ⊙ (dW − Σ_j dW W)``, ``dq = scale dA k``, ``dk = scale dAᵀ q``."""
    n_seq, n_rows, n_heads, d = q.shape
    n_keys = k.shape[1]
    lanes = lanes_of(n_keys)
    shared_bias = bias.shape[0] == 1
    for task in nb.prange(n_seq * n_heads):
        b, hh = task // n_heads, task % n_heads
        bb = 0 if shared_bias else b
        kt = np.empty((d, lanes), np.float32)
        vt = np.empty((d, lanes), np.float32)
        dkt = np.zeros((d, lanes), np.float32)
        dvt = np.zeros((d, lanes), np.float32)
        w = np.empty(lanes, np.float32)
        wd = np.empty(lanes, np.float32)
        brow = np.full(lanes, PAD, np.float32)
        m = np.zeros(lanes, np.float32)
        m[:n_keys] = 1.0
        da = np.empty(lanes, np.float32)
        zero = np.zeros(lanes, np.float32)
        qrow = np.empty(d, np.float32)
        grow = np.empty(d, np.float32)
        load_tiles(k, v, b, hh, kt, vt)
        for i in range(n_rows):
            lo, hi, total = row_softmax(
                q,
                b,
                i,
                hh,
                scale,
                kt,
                bias,
                bb,
                words,
                threshold,
                keep_scale,
                brow,
                m,
                qrow,
                w,
            )
            n = hi - lo
            for c in range(d):
                grow[c] = g[b, i, hh, c]
            row_logits(grow, vt, zero, lo, hi, da)  # g vᵀ
            inv = np.float32(1.0) / total
            wv, wdv, mv, dav = w[lo:hi], wd[lo:hi], m[lo:hi], da[lo:hi]
            dot = np.float32(0.0)
            for t in range(n):
                wv[t] *= inv  # W
                wdv[t] = wv[t] * mv[t]  # W ⊙ m
                dav[t] *= mv[t]  # dW
                dot += dav[t] * wv[t]
            for t in range(n):
                dav[t] = wv[t] * (dav[t] - dot)  # dA
            for c in range(d):
                row_axpy(dvt[c], grow[c], wd, lo, hi)
                dq[b, i, hh, c] = row_dot(da, kt[c], lo, hi) * scale
                row_axpy(dkt[c], qrow[c], da, lo, hi)
        for j in range(n_keys):
            for c in range(d):
                dk[b, j, hh, c] = dkt[c, j]
                dv[b, j, hh, c] = dvt[c, j]
