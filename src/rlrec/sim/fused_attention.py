"""A fused, incremental CPU kernel for the URM's history attention, compiled with numba when installed.

The simulator recomputes the user interest of every user whose history changed, at every step. For
1,024 users and the reference window ``H = 50`` that is 4,096 (user, head) self-attention problems of
``50 × 50 × 8`` and a ``4 × 50`` cross-attention each; PyTorch spends most of the step on the
per-problem overhead of its attention kernel and on memory traffic between the separate operations
(``benchmarks/README.md``, "Simulator throughput"). This kernel computes the same function per user in
one pass, everything in cache, in float32, and keeps each user's self-attention between steps.

The function (P-HAC A.2; :meth:`rlrec.sim.urm.URM.interest`): per head ``j`` and history row ``t``,
``a_t = Σ_k softmax_k(q_t·k_k / √d) v_k`` (the self-attention before its output projection; padding
keys take no part), then per cross head ``pooled = Σ_t softmax_t(r·a_t) a_t`` with the folded query
``r`` (:func:`rlrec.sim.functional.fold_cross_query`).

**Incremental update.** The URM's self-attention has no positions, so row ``t`` depends only on its
own item and the *set* of history items. When ``m`` positives arrive, the window drops its ``m``
oldest slots and gains ``m`` new ones: the kernel keeps, per user, head and row, the softmax's
numerator ``Σ_k e_tk v_k``, denominator ``Σ_k e_tk`` and reference ``c_t`` (``e_tk = exp(q_t·k_k/√d
− c_t)``), subtracts the dropped keys, adds the new ones and computes only the new rows in full —
about half the work of a full recomputation at the reference sizes. The state is kept in window
order (oldest row first): the kept rows move ``m`` places towards the front as they are updated
(inside the update's loads), so they fill the first ``⌈(H − m)/16⌉`` blocks of 16 rows and the
entering rows one contiguous block after them. For heads of width 8 (the reference URM) a block's
queries and softmax sums stay in registers while the step's changed keys stream past
(:mod:`rlrec._simd`). A row is recomputed in full (new reference) when a new key would overflow
(``q·k/√d − c_t > 80``) or when the mass removed since its last full computation exceeds 4× what
remains, which bounds the cancellation error of the running sums to a few float32 ulps (relative,
≲ 1e-6). Users whose window is new (a reset or refill), or
shifted by ``H`` or more, are computed in full; so is a user whenever that is cheaper.

The result is :func:`rlrec.sim.functional.cross_pool` of the same inputs up to float rounding (sums in
another order, ``exp`` a degree-7 polynomial of ≈ 2 ulp): ``tests/test_sim_fused.py`` checks it to
1e-5 and that whole simulator trajectories are unchanged. Users are independent and each is computed
by one thread, so the result does not depend on the thread count.

numba is optional (``pip install "rlrec[fast]"``); without it, or with
``EnvConfig.attention_kernel = "torch"``, the simulator uses the PyTorch path.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from rlrec.numba_support import available, match_torch_threads

__all__ = ["LANE", "HistoryAttention", "available", "exp", "pooled_history"]

LANE = 16
"""Query rows are processed in blocks of 16 (the kernel's vector width, float32)."""


def _kernels() -> ModuleType:
    """The compiled kernels (numba compiles them on first use and caches them on disk)."""
    from rlrec.sim import _attention_kernel

    return _attention_kernel


def exp(x: np.ndarray) -> np.ndarray:
    """The kernel's ``exp`` (float32 array), for tests."""
    from rlrec._fastmath import exp32

    return np.array([exp32(v) for v in x.astype(np.float32)], np.float32)


class HistoryAttention:
    """Per-slot state of the incremental kernel for ``num_slots`` users, windows of ``width``.

    :meth:`refresh` returns the pooled cross-attention rows of the given slots after their window
    changed: ``shift`` is how many items each window gained (0: unchanged, only the query moved;
    −1: a new window). Every slot starts as "new", and :meth:`forget` makes them so again.
    """

    def __init__(self, num_slots: int, width: int, dim: int, n_heads: int) -> None:
        self.width, self.n_heads = width, n_heads
        lanes = (
            width + LANE - 1
        ) // LANE * LANE + LANE  # a block of entering rows may start at H − 1
        d = dim // n_heads
        self.slot_item = np.zeros((num_slots, width), np.int64)
        self.slot_ok = np.zeros((num_slots, width), np.bool_)
        self.num = np.zeros((num_slots, n_heads, d, lanes), np.float32)
        self.den = np.ones((num_slots, n_heads, lanes), np.float32)
        self.ref = np.zeros((num_slots, n_heads, lanes), np.float32)
        self.gone = np.zeros((num_slots, n_heads, lanes), np.float32)
        self.ready = torch.zeros(num_slots, dtype=torch.bool)  # slots with a state to update

    def forget(self) -> None:
        """Treat every slot's next window as new (after its history was set from elsewhere)."""
        self.ready.zero_()

    def refresh(
        self,
        qkv_table: torch.Tensor,
        rows: torch.Tensor,
        history: torch.Tensor,
        mask: torch.Tensor,
        shift: torch.Tensor,
        query: torch.Tensor,
    ) -> torch.Tensor:
        """Pooled rows ``(R, h, f)`` of slots ``rows`` ``(R,)`` whose windows are now ``history``
        ``(R, H)`` with ``mask`` ``(R, H)`` (True: the key takes part), shifted by ``shift`` ``(R,)``
        since the last call, for folded queries ``query`` ``(R, h, f)``. CPU tensors."""
        shift = torch.where(self.ready[rows], shift.to(torch.int64), -1)
        self.ready[rows] = True
        q = query.detach().to(torch.float32).contiguous()
        out = torch.empty(q.shape, dtype=torch.float32)
        threads = match_torch_threads()
        _kernels().refresh(
            qkv_table.detach().contiguous().numpy(),
            rows.to(torch.int64).contiguous().numpy(),
            history.contiguous().numpy(),
            mask.contiguous().numpy(),
            shift.to(torch.int64).contiguous().numpy(),
            q.numpy(),
            self.n_heads,
            self.slot_item,
            self.slot_ok,
            self.num,
            self.den,
            self.ref,
            self.gone,
            out.numpy(),
            threads,
        )
        return out


def pooled_history(
    qkv_table: torch.Tensor,
    history: torch.Tensor,
    mask: torch.Tensor,
    query: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """The cross-attention's pooled self-attention output ``(B, h, f)`` of new windows, as
    :func:`rlrec.sim.functional.cross_pool` of the history's self-attention.

    ``qkv_table``: per-item ``[q | k | v]`` rows ``(N+1, 3f)`` float32; ``history``: ``(B, H)`` ids;
    ``mask``: ``(B, H)`` bool, True for the keys that take part (all True reproduces an unmasked
    URM); ``query``: the folded cross query ``(B, h, f)``; ``n_heads``: the self-attention's heads. CPU
    tensors; rows with no key give zeros.
    """
    b, width = history.shape
    state = HistoryAttention(b, width, query.shape[2], n_heads)
    rows = torch.arange(b)
    return state.refresh(qkv_table, rows, history, mask, torch.full((b,), -1), query)
