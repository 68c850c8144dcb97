"""The numba kernels of :mod:`rlrec.sim.fused_attention` (imported only when numba is installed).

Module-level functions, so numba's on-disk cache (``cache=True``) holds their machine code between
processes. Shapes and the algorithm: see :mod:`rlrec.sim.fused_attention`.
"""

# mypy: ignore-errors
# (numba's decorators are untyped; the typed entry points are in rlrec.sim.fused_attention)

from __future__ import annotations

import math

import numba as nb
import numpy as np

from rlrec._fastmath import exp32, fast, wide_vectors
from rlrec.sim.fused_attention import LANE

OVERFLOW = 80.0
"""A new key more than this above a row's reference logit triggers a full recomputation of the row."""
REMOVED_RATIO = 4.0
"""A row is recomputed in full once the mass removed from it exceeds this multiple of what remains."""


@nb.njit(inline="always", **fast)
def key_logits(table, key, q_t, lanes, lo, d, out):
    """``out[t] = Σ_c k_c q_t[lo + c, t]`` over one head's ``d`` columns for the item ``key``,
    all ``lanes`` rows at once. For ``d = 8`` (the reference URM) the eight terms are written out,
    so each row's sum stays in a register instead of passing through memory once per column."""
    f = table.shape[1] // 3
    base = f + lo
    if d == 8:
        k0, k1, k2, k3 = (
            table[key, base],
            table[key, base + 1],
            table[key, base + 2],
            table[key, base + 3],
        )
        k4, k5, k6, k7 = (
            table[key, base + 4],
            table[key, base + 5],
            table[key, base + 6],
            table[key, base + 7],
        )
        q0, q1, q2, q3 = q_t[lo], q_t[lo + 1], q_t[lo + 2], q_t[lo + 3]
        q4, q5, q6, q7 = q_t[lo + 4], q_t[lo + 5], q_t[lo + 6], q_t[lo + 7]
        for t in range(lanes):
            out[t] = (
                k0 * q0[t]
                + k1 * q1[t]
                + k2 * q2[t]
                + k3 * q3[t]
                + k4 * q4[t]
                + k5 * q5[t]
                + k6 * q6[t]
                + k7 * q7[t]
            )
        return
    for t in range(lanes):
        out[t] = 0.0
    for c in range(d):
        kc = table[key, base + c]
        q_c = q_t[lo + c]
        for t in range(lanes):
            out[t] += kc * q_c[t]


@nb.njit(inline="always", **fast)
def weigh_key(table, key, x, ref, sign, lanes, lo, d, num, den):
    """Add ``sign · e_t`` to ``den_t`` and ``sign · e_t v_key`` to ``num[:, t]`` for every row ``t``,
    ``e_t = exp(x_t − ref_t)``. For ``d = 8`` it is one loop over the rows, the eight values of
    ``v_key`` in registers; otherwise ``x`` is overwritten with ``sign · e`` on the way."""
    v0 = 2 * (table.shape[1] // 3) + lo
    if d == 8:
        u0, u1, u2, u3 = table[key, v0], table[key, v0 + 1], table[key, v0 + 2], table[key, v0 + 3]
        u4, u5, u6, u7 = (
            table[key, v0 + 4],
            table[key, v0 + 5],
            table[key, v0 + 6],
            table[key, v0 + 7],
        )
        for t in range(lanes):
            e = exp32(x[t] - ref[t]) * sign
            den[t] += e
            num[0, t] += e * u0
            num[1, t] += e * u1
            num[2, t] += e * u2
            num[3, t] += e * u3
            num[4, t] += e * u4
            num[5, t] += e * u5
            num[6, t] += e * u6
            num[7, t] += e * u7
        return
    for t in range(lanes):
        e = exp32(x[t] - ref[t]) * sign
        x[t] = e
        den[t] += e
    for c in range(d):
        vc = table[key, v0 + c]
        for t in range(lanes):
            num[c, t] += x[t] * vc


@nb.njit(inline="always", **fast)
def full_rows(table, keys, n_keys, q_t, lanes, lo, d, s, num, den, ref):
    """Every row of one head from scratch, vectorised over the rows ``t`` (``lanes`` of them):
    ``S[k, t] = q_t·k_k``, ``ref_t = max_k S``, ``den_t = Σ_k e``, ``num[:, t] = Σ_k e v_k``."""
    for t in range(lanes):
        ref[t] = -3.0e38
        den[t] = 0.0
    for c in range(d):
        for t in range(lanes):
            num[c, t] = 0.0
    for k in range(n_keys):
        key_logits(table, keys[k], q_t, lanes, lo, d, s[k])
        for t in range(lanes):
            ref[t] = max(ref[t], s[k, t])
    for k in range(n_keys):
        weigh_key(table, keys[k], s[k], ref, np.float32(1.0), lanes, lo, d, num, den)


@nb.njit(inline="always", **fast)
def update_rows(table, key, adding, q_t, lanes, lo, d, w, num, den, ref, gone, need):
    """Add (``adding``) or remove one key in every row of one head: removed mass goes to
    ``gone``, an added key far above a row's reference sets ``need``."""
    key_logits(table, key, q_t, lanes, lo, d, w)
    if adding:
        for t in range(lanes):
            need[t] = max(need[t], np.float32(w[t] - ref[t] > OVERFLOW))
    else:
        for t in range(lanes):
            gone[t] += exp32(w[t] - ref[t])
    sign = np.float32(1.0) if adding else np.float32(-1.0)
    weigh_key(table, key, w, ref, sign, lanes, lo, d, num, den)


@nb.njit(inline="always", **fast)
def swap_rows(table, old, new, q_t, lanes, lo, d, w, u, num, den, ref, gone, need):
    """Remove key ``old`` and add key ``new`` in every row of one head (what :func:`update_rows`
    does for each) in one pass over the rows' sums."""
    v0 = 2 * (table.shape[1] // 3) + lo
    key_logits(table, old, q_t, lanes, lo, d, w)
    key_logits(table, new, q_t, lanes, lo, d, u)
    for t in range(lanes):
        y = u[t] - ref[t]
        need[t] = max(need[t], np.float32(y > OVERFLOW))
        eo = exp32(w[t] - ref[t])
        en = exp32(y)
        gone[t] += eo
        den[t] += en - eo
        w[t] = eo
        u[t] = en
    for c in range(d):
        vo = table[old, v0 + c]
        vn = table[new, v0 + c]
        for t in range(lanes):
            num[c, t] += u[t] * vn - w[t] * vo


@nb.njit(parallel=True, **fast)
def refresh(
    table, rows, hist, mask, shift, query, n_heads, slot_item, slot_ok, head, num, den, ref,
    gone, out, n_chunks,
):  # fmt: skip
    n_rows, width = hist.shape
    f = table.shape[1] // 3
    d = f // n_heads
    n_cross = query.shape[1]
    wp = num.shape[3]
    scale = np.float32(1.0 / math.sqrt(d))
    for chunk in nb.prange(n_chunks):
        wide_vectors()
        # one thread's scratch, reused for its users
        keys = np.empty(width, np.int64)
        removed = np.empty(width, np.int64)
        added = np.empty(width, np.int64)
        q_t = np.empty((f, wp), np.float32)
        q_c = np.empty((f, wp), np.float32)  # rows to recompute, compacted
        num_c = np.empty((d, wp), np.float32)
        den_c = np.empty(wp, np.float32)
        ref_c = np.empty(wp, np.float32)
        redo = np.empty(wp, np.int64)
        a_t = np.empty((f, wp), np.float32)
        s = np.empty((width, wp), np.float32)
        w = np.empty(wp, np.float32)
        u = np.empty(wp, np.float32)
        need = np.empty(wp, np.float32)
        ok_f = np.empty(wp, np.float32)
        for i in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            b = rows[i]
            m = shift[i]
            n_rem = 0
            n_add = 0
            fresh = m < 0 or m >= width
            if fresh:  # window position t ↔ slot (t − first real position) mod H
                first = width
                for t in range(width):
                    if mask[i, t]:
                        first = min(first, t)
                head[b] = (width - first) % width
                for t in range(width):
                    slot = (head[b] + t) % width
                    slot_item[b, slot] = hist[i, t] if mask[i, t] else 0
                    slot_ok[b, slot] = mask[i, t]
            elif m > 0:  # the m oldest slots take the m newest items
                for j in range(m):
                    slot = (head[b] + j) % width
                    if slot_ok[b, slot]:
                        removed[n_rem] = slot_item[b, slot]
                        n_rem += 1
                    slot_item[b, slot] = hist[i, width - m + j]
                    slot_ok[b, slot] = mask[i, width - m + j]
                    if slot_ok[b, slot]:
                        added[n_add] = slot
                        n_add += 1
                head[b] = (head[b] + m) % width
            top_slot = -1
            n_keys = 0
            for slot in range(width):
                if slot_ok[b, slot]:
                    top_slot = slot
                    keys[n_keys] = slot_item[b, slot]
                    n_keys += 1
            if n_keys == 0:  # empty history: the caller sets the interest to zero
                for j in range(n_cross):
                    for c in range(f):
                        out[i, j, c] = 0.0
                continue
            lanes = (top_slot + LANE) // LANE * LANE
            for slot in range(lanes):
                ok = slot < width and slot_ok[b, slot]
                ok_f[slot] = np.float32(1.0) if ok else np.float32(0.0)
                item = slot_item[b, slot] if ok else 0
                for c in range(f):
                    q_t[c, slot] = table[item, c] * scale * ok_f[slot]
            # full recomputation when the window is new or when it is cheaper (vector ops:
            # each changed key over all rows, then the new rows, 16 at a time, over all keys)
            n_new_blocks = (n_add + LANE - 1) // LANE
            incremental = (n_rem + n_add) * lanes + n_keys * LANE * n_new_blocks
            full = fresh or incremental >= n_keys * lanes
            if m != 0 and not full:
                for slot in range(lanes):
                    need[slot] = np.float32(0.0)
                for j in range(n_add):
                    need[added[j]] = np.float32(1.0)
            for h in range(n_heads):
                lo = h * d
                nh, dh, rh, gh = num[b, h], den[b, h], ref[b, h], gone[b, h]
                if full:
                    full_rows(table, keys, n_keys, q_t, lanes, lo, d, s, nh, dh, rh)
                    for t in range(lanes):
                        gh[t] = 0.0
                elif m != 0:
                    n_pair = min(n_rem, n_add)
                    for j in range(n_pair):
                        swap_rows(
                            table, removed[j], slot_item[b, added[j]], q_t, lanes, lo, d, w,
                            u, nh, dh, rh, gh, need,
                        )  # fmt: skip
                    for j in range(n_pair, n_rem):
                        update_rows(
                            table, removed[j], False, q_t, lanes, lo, d, w, nh, dh,
                            rh, gh, need,
                        )  # fmt: skip
                    for j in range(n_pair, n_add):
                        update_rows(
                            table, slot_item[b, added[j]], True, q_t, lanes, lo, d,
                            w, nh, dh, rh, gh, need,
                        )  # fmt: skip
                    n_redo = 0
                    for t in range(lanes):
                        if ok_f[t] > 0 and (need[t] > 0 or gh[t] > REMOVED_RATIO * dh[t]):
                            redo[n_redo] = t
                            n_redo += 1
                    if n_redo > 0:  # those rows in full, compacted into blocks of 16
                        n_lanes = (n_redo + LANE - 1) // LANE * LANE
                        for c in range(lo, lo + d):
                            for j in range(n_lanes):
                                q_c[c, j] = q_t[c, redo[j]] if j < n_redo else 0.0
                        full_rows(
                            table, keys, n_keys, q_c, n_lanes, lo, d, s, num_c, den_c, ref_c,
                        )  # fmt: skip
                        for j in range(n_redo):
                            t = redo[j]
                            dh[t] = den_c[j]
                            rh[t] = ref_c[j]
                            gh[t] = 0.0
                            for c in range(d):
                                nh[c, t] = num_c[c, j]
                for t in range(lanes):  # padding rows: finite placeholders
                    if ok_f[t] == 0:
                        dh[t] = 1.0
                        rh[t] = 0.0
                        gh[t] = 0.0
                        for c in range(d):
                            nh[c, t] = 0.0
                for c in range(d):
                    for t in range(lanes):
                        a_t[lo + c, t] = nh[c, t] / dh[t]
            for j in range(n_cross):  # pooled_j = Σ_t softmax_t(r_j · a_t) a_t
                for t in range(lanes):
                    w[t] = 0.0
                for c in range(f):
                    rc = query[i, j, c]
                    for t in range(lanes):
                        w[t] += rc * a_t[c, t]
                top = np.float32(-3.0e38)
                for t in range(lanes):
                    top = max(top, w[t] if ok_f[t] > 0 else np.float32(-3.0e38))
                total = np.float32(0.0)
                for t in range(lanes):
                    w[t] = exp32(w[t] - top) * ok_f[t]
                    total += w[t]
                inv = np.float32(1.0) / total
                for c in range(f):
                    acc = np.float32(0.0)
                    for t in range(lanes):
                        acc += w[t] * a_t[c, t]
                    out[i, j, c] = acc * inv
