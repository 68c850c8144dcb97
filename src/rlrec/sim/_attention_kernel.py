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
from rlrec._simd import above, exp, hmax, hsum, load, select, splat, store, vmax
from rlrec.sim.fused_attention import LANE

OVERFLOW = 80.0
"""A new key more than this above a row's reference logit triggers a full recomputation of the row."""
REMOVED_RATIO = 4.0
"""A row is recomputed in full once the mass removed from it exceeds this multiple of what remains."""


@nb.njit(inline="always", **fast)
def key_logits(table, key, q_t, lanes, lo, d, out):
    """``out[t] = Σ_c k_c q_t[lo + c, t]`` over one head's ``d`` columns for the item ``key``,
    all ``lanes`` rows at once."""
    base = table.shape[1] // 3 + lo
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
    ``e_t = exp(x_t − ref_t)``; ``x`` is overwritten with ``sign · e`` on the way."""
    v0 = 2 * (table.shape[1] // 3) + lo
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


# The reference URM's heads of d = 8, 16 rows at a time: a block's queries (8 vectors), the
# softmax sums (8 + 1) and its references stay in registers while the keys stream past, so each
# (row, key) pair costs its arithmetic only (rlrec._simd says why numba's own vectorising cannot).


@nb.njit(inline="always", **fast)
def block8(rows, lo, t0):
    """Columns ``lo … lo + 7`` of rows ``t0 … t0 + 15`` (``rows`` is column-major ``(f, lanes)``)."""
    return (
        load(rows, (lo, t0)),
        load(rows, (lo + 1, t0)),
        load(rows, (lo + 2, t0)),
        load(rows, (lo + 3, t0)),
        load(rows, (lo + 4, t0)),
        load(rows, (lo + 5, t0)),
        load(rows, (lo + 6, t0)),
        load(rows, (lo + 7, t0)),
    )


@nb.njit(inline="always", **fast)
def store8(rows, t0, n):
    """Write the 8 column vectors ``n`` to columns 0 … 7 of rows ``t0 … t0 + 15``."""
    store(rows, (0, t0), n[0])
    store(rows, (1, t0), n[1])
    store(rows, (2, t0), n[2])
    store(rows, (3, t0), n[3])
    store(rows, (4, t0), n[4])
    store(rows, (5, t0), n[5])
    store(rows, (6, t0), n[6])
    store(rows, (7, t0), n[7])


@nb.njit(inline="always", **fast)
def logit8(table, key, base, q):
    """``q·k`` of 16 rows with the key ``table[key, base : base + 8]``."""
    return (
        q[0] * table[key, base]
        + q[1] * table[key, base + 1]
        + q[2] * table[key, base + 2]
        + q[3] * table[key, base + 3]
        + q[4] * table[key, base + 4]
        + q[5] * table[key, base + 5]
        + q[6] * table[key, base + 6]
        + q[7] * table[key, base + 7]
    )


@nb.njit(inline="always", **fast)
def weigh8(table, key, base, e, n):
    """``n + e · v`` for the value ``v = table[key, base : base + 8]``, column by column."""
    return (
        n[0] + e * table[key, base],
        n[1] + e * table[key, base + 1],
        n[2] + e * table[key, base + 2],
        n[3] + e * table[key, base + 3],
        n[4] + e * table[key, base + 4],
        n[5] + e * table[key, base + 5],
        n[6] + e * table[key, base + 6],
        n[7] + e * table[key, base + 7],
    )


@nb.njit(inline="always", **fast)
def full_rows8(table, keys, n_keys, q_t, lanes, lo, s, num, den, ref):
    """:func:`full_rows` for d = 8: per block, the logits against every key (kept in ``s``) and
    their maximum, then the softmax sums."""
    f = table.shape[1] // 3
    for t0 in range(0, lanes, LANE):
        q = block8(q_t, lo, t0)
        r = splat(np.float32(-3.0e38))
        for k in range(n_keys):
            x = logit8(table, keys[k], f + lo, q)
            store(s, (k, 0), x)
            r = vmax(r, x)
        dn = splat(np.float32(0.0))
        n = (dn, dn, dn, dn, dn, dn, dn, dn)
        for k in range(n_keys):
            e = exp(load(s, (k, 0)) - r)
            dn = dn + e
            n = weigh8(table, keys[k], 2 * f + lo, e, n)
        store8(num, t0, n)
        store(den, t0, dn)
        store(ref, t0, r)


@nb.njit(inline="always", **fast)
def change_rows8(table, removed, n_rem, new, n_new, q_t, lanes, lo, m, num, den, ref, gone, need):
    """:func:`update_rows` for d = 8 and all the changed keys of a step at once, block by block:
    each row's state moves from ``t + m`` to ``t`` on the way, the keys ``removed[:n_rem]`` leave
    and ``new[:n_new]`` join every row. ``need`` gets 1 for the rows to recompute (a key far above
    the reference, or the removed mass past :data:`REMOVED_RATIO`); returns whether there is one."""
    f = table.shape[1] // 3
    overflow = splat(np.float32(OVERFLOW))
    flagged = splat(np.float32(0.0))
    for t0 in range(0, lanes, LANE):
        q = block8(q_t, lo, t0)
        n = block8(num, 0, t0 + m)
        dn, r, g = load(den, t0 + m), load(ref, t0 + m), load(gone, t0 + m)
        nd = splat(np.float32(0.0))
        for j in range(n_rem):
            e = exp(logit8(table, removed[j], f + lo, q) - r)
            g = g + e
            dn = dn - e
            n = weigh8(table, removed[j], 2 * f + lo, e * np.float32(-1.0), n)
        for j in range(n_new):
            y = logit8(table, new[j], f + lo, q) - r
            nd = vmax(nd, above(y, overflow))
            e = exp(y)
            dn = dn + e
            n = weigh8(table, new[j], 2 * f + lo, e, n)
        nd = vmax(nd, above(g, dn * np.float32(REMOVED_RATIO)))
        flagged = vmax(flagged, nd)
        store8(num, t0, n)
        store(den, t0, dn)
        store(ref, t0, r)
        store(gone, t0, g)
        store(need, t0, nd)
    return hmax(flagged) > 0


@nb.njit(inline="always", **fast)
def any_rows(table, keys, n_keys, q_t, lanes, lo, d, s, num, den, ref):
    """:func:`full_rows`, by way of :func:`full_rows8` where d = 8."""
    if d == 8:
        full_rows8(table, keys, n_keys, q_t, lanes, lo, s, num, den, ref)
    else:
        full_rows(table, keys, n_keys, q_t, lanes, lo, d, s, num, den, ref)


@nb.njit(inline="always", **fast)
def change_rows(
    table, removed, n_rem, new, n_new, q_t, lanes, lo, d, m, kept, w, num, den, ref, gone, need
):  # fmt: skip
    """Move the ``kept`` rows of one head from ``t + m`` to ``t``, then remove the keys
    ``removed[:n_rem]`` and add ``new[:n_new]`` in rows ``0 … lanes − 1`` (:func:`change_rows8`)."""
    if d == 8:
        return change_rows8(
            table, removed, n_rem, new, n_new, q_t, lanes, lo, m, num, den, ref, gone, need
        )  # fmt: skip
    shift_rows(num, den, ref, gone, m, kept)
    for t in range(lanes):
        need[t] = np.float32(0.0)
    for j in range(n_rem):
        update_rows(table, removed[j], False, q_t, lanes, lo, d, w, num, den, ref, gone, need)
    for j in range(n_new):
        update_rows(table, new[j], True, q_t, lanes, lo, d, w, num, den, ref, gone, need)
    flagged = False
    for t in range(lanes):
        if gone[t] > REMOVED_RATIO * den[t]:
            need[t] = np.float32(1.0)
        flagged = flagged or need[t] > 0
    return flagged


@nb.njit(inline="always", **fast)
def shift_rows(num, den, ref, gone, m, count):
    """Move rows ``m … m + count − 1`` of one head's state to ``0 … count − 1`` (the window
    dropped its ``m`` oldest rows)."""
    for c in range(num.shape[0]):
        for t in range(count):
            num[c, t] = num[c, t + m]
    for t in range(count):
        den[t] = den[t + m]
        ref[t] = ref[t + m]
        gone[t] = gone[t + m]


@nb.njit(inline="always", **fast)
def finish_rows(num, den, ref, gone, ok_f, lanes, lo, a_t):
    """One head's self-attention output ``a_t[lo + c, t] = num[c, t] / den[t]`` for the rows with
    ``ok_f`` 1; the others (padding) get the finite placeholders ``num = 0, den = 1, ref = 0``."""
    for t0 in range(0, lanes, LANE):
        ok = load(ok_f, t0)
        dn = select(ok, load(den, t0), np.float32(1.0))
        store(den, t0, dn)
        store(ref, t0, select(ok, load(ref, t0), np.float32(0.0)))
        store(gone, t0, select(ok, load(gone, t0), np.float32(0.0)))
        inv = np.float32(1.0) / dn
        for c in range(num.shape[0]):
            n = select(ok, load(num, (c, t0)), np.float32(0.0))
            store(num, (c, t0), n)
            store(a_t, (lo + c, t0), n * inv)


@nb.njit(parallel=True, **fast)
def refresh(
    table, rows, hist, mask, shift, query, n_heads, slot_item, slot_ok, num, den, ref, gone, out,
    n_chunks,
):  # fmt: skip
    n_rows, width = hist.shape
    f = table.shape[1] // 3
    d = f // n_heads
    n_cross = query.shape[1]
    wp = num.shape[3]
    scale = np.float32(1.0 / math.sqrt(d))
    for chunk in nb.prange(n_chunks):
        wide_vectors()
        # one thread's scratch, reused for its users; rows past the window stay zero
        keys = np.empty(width, np.int64)
        removed = np.empty(width, np.int64)
        new = np.empty(width, np.int64)  # the items that entered the window
        q_t = np.zeros((f, wp), np.float32)
        q_c = np.empty((f, wp), np.float32)  # rows to recompute, compacted
        num_c = np.empty((d, wp), np.float32)
        den_c = np.empty(wp, np.float32)
        ref_c = np.empty(wp, np.float32)
        redo = np.empty(wp, np.int64)
        a_t = np.empty((f, wp), np.float32)
        s = np.empty((width, wp), np.float32)
        w = np.empty(wp, np.float32)
        need = np.zeros(wp, np.float32)
        ok_f = np.zeros(wp, np.float32)
        for i in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            b = rows[i]
            m = shift[i]
            fresh = m < 0 or m >= width
            n_rem = 0
            n_add = 0
            if not fresh:  # the m oldest rows leave, the m newest enter at the end
                for j in range(m):
                    if slot_ok[b, j]:
                        removed[n_rem] = slot_item[b, j]
                        n_rem += 1
                    if mask[i, width - m + j]:
                        new[n_add] = hist[i, width - m + j]
                        n_add += 1
            n_keys = 0
            top = -1
            for t in range(width):
                slot_item[b, t] = hist[i, t] if mask[i, t] else 0
                slot_ok[b, t] = mask[i, t]
                ok_f[t] = np.float32(1.0) if mask[i, t] else np.float32(0.0)
                if mask[i, t]:
                    keys[n_keys] = hist[i, t]
                    n_keys += 1
                    top = t
            if n_keys == 0:  # empty history: the caller sets the interest to zero
                for j in range(n_cross):
                    for c in range(f):
                        out[i, j, c] = 0.0
                continue
            lanes = (top + LANE) // LANE * LANE
            for t in range(width):
                item = slot_item[b, t]
                for c in range(f):
                    q_t[c, t] = table[item, c] * scale * ok_f[t]
            # full recomputation when the window is new or when it is cheaper (vector ops: each
            # changed key over the kept rows, then the entering rows, 16 at a time, over all keys)
            kept = width - m
            kept_lanes = (kept + LANE - 1) // LANE * LANE
            entering = (m + LANE - 1) // LANE * LANE
            incremental = (n_rem + n_add) * kept_lanes + n_keys * entering
            full = fresh or incremental >= n_keys * lanes
            for h in range(n_heads):
                lo = h * d
                nh, dh, rh, gh = num[b, h], den[b, h], ref[b, h], gone[b, h]
                if full:
                    any_rows(table, keys, n_keys, q_t, lanes, lo, d, s, nh, dh, rh)
                    for t in range(lanes):
                        gh[t] = 0.0
                elif m != 0:
                    flagged = change_rows(
                        table, removed, n_rem, new, n_add, q_t, kept_lanes, lo, d, m, kept, w, nh,
                        dh, rh, gh, need,
                    )  # fmt: skip
                    any_rows(  # the entering rows (and the zero rows after them)
                        table, keys, n_keys, q_t[:, kept:], entering, lo, d, s, nh[:, kept:],
                        dh[kept:], rh[kept:],
                    )  # fmt: skip
                    for t in range(kept, kept + entering):
                        gh[t] = 0.0
                    n_redo = 0
                    for t in range(kept if flagged else 0):
                        if ok_f[t] > 0 and need[t] > 0:
                            redo[n_redo] = t
                            n_redo += 1
                    if n_redo > 0:  # those rows in full, compacted into blocks of 16
                        n_lanes = (n_redo + LANE - 1) // LANE * LANE
                        for c in range(lo, lo + d):
                            for j in range(n_lanes):
                                q_c[c, j] = q_t[c, redo[j]] if j < n_redo else 0.0
                        any_rows(
                            table, keys, n_keys, q_c, n_lanes, lo, d, s, num_c, den_c, ref_c,
                        )  # fmt: skip
                        for j in range(n_redo):
                            t = redo[j]
                            dh[t] = den_c[j]
                            rh[t] = ref_c[j]
                            gh[t] = 0.0
                            for c in range(d):
                                nh[c, t] = num_c[c, j]
                finish_rows(nh, dh, rh, gh, ok_f, lanes, lo, a_t)
            for j in range(n_cross):  # pooled_j = Σ_t softmax_t(r_j · a_t) a_t, in vectors over t
                peak = splat(np.float32(-3.0e38))
                for t0 in range(0, lanes, LANE):
                    acc = splat(np.float32(0.0))
                    for c in range(f):
                        acc = acc + query[i, j, c] * load(a_t, (c, t0))
                    acc = select(load(ok_f, t0), acc, np.float32(-3.0e38))
                    store(w, t0, acc)
                    peak = vmax(peak, acc)
                top = hmax(peak)
                total = splat(np.float32(0.0))
                for t0 in range(0, lanes, LANE):
                    e = exp(load(w, t0) - top)  # padding: exp(−87) against ≥ 1, and a_t = 0
                    store(w, t0, e)
                    total = total + e
                inv = np.float32(1.0) / hsum(total)
                for c in range(f):
                    acc = splat(np.float32(0.0))
                    for t0 in range(0, lanes, LANE):
                        acc = acc + load(w, t0) * load(a_t, (c, t0))
                    out[i, j, c] = hsum(acc) * inv
