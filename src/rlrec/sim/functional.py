"""Tensor math of the user-response model and the simulator, apart from any class.

Shapes: ``B`` users, ``H`` history window, ``K`` slate size, ``f`` URM width, ``h`` heads (``f = h·d``).

The URM's two attentions are written so the simulator can reuse per-item projections: the history
self-attention takes ready-made ``[q | k | v]`` rows (one Linear of the item embedding, so they can be
tabulated per item), and the user→history cross-attention is *folded* through the linear maps around
it (the self-attention's output projection and the cross-attention's key/value projections), which is
exact algebra: ``q·(W_k(W_o a + b_o) + b_k) = (W_oᵀ W_kᵀ q)·a + const`` and the constant cancels in
the softmax; the values are a convex combination, so ``W_v(W_o ā + b_o) + b_v`` is applied once to
the attention-pooled ``ā``. The cross-attention then costs ``O(B·h·H·f)`` instead of projecting all
``H`` positions.

Masked keys get a large finite negative bias (not ``-inf``): a row whose keys are all masked (an empty
history) stays finite, and its cross-attention output is set to zero by the caller.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from rlrec.numba_support import available

NEG = -1e9
"""Additive attention bias of a masked key: exp underflows to exactly 0 next to any real key."""


# ----------------------------------------------------------------------------------------- URM


def key_bias(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, H)`` bool (True = real item) → ``(B, H)`` float bias (0 or NEG); ``None`` passes through."""
    if mask is None:
        return None
    return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(~mask, NEG)


def self_attention(qkv: torch.Tensor, bias: torch.Tensor | None, n_heads: int) -> torch.Tensor:
    """Multi-head self-attention before the output projection.

    ``qkv``: ``(B, H, 3f)`` rows ``[q | k | v]``; ``bias``: ``(B, H)`` key bias or ``None``.
    Returns ``(B, H, f)``, heads concatenated.
    """
    b, n, three_f = qkv.shape
    f = three_f // 3
    d = f // n_heads
    q, k, v = qkv.view(b, n, 3, n_heads, d).permute(2, 0, 3, 1, 4)
    mask = None if bias is None else bias.view(b, 1, 1, n).to(qkv.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, f)


def fold_cross_query(
    e_user: torch.Tensor,
    in_weight: torch.Tensor,
    in_bias: torch.Tensor,
    self_out_weight: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """Per-head query folded into the self-attention's output space: ``(B, f) → (B, h, f)``.

    ``r_j = W_oᵀ W_{k,j}ᵀ (W_{q,j} e + b_{q,j}) / sqrt(d)`` for head ``j``, so that the attention logit
    of history position ``t`` is ``r_j · a_t`` (plus a constant that the softmax ignores).
    """
    f = e_user.shape[-1]
    d = f // n_heads
    wq, wk = in_weight[:f], in_weight[f : 2 * f]
    q = (e_user @ wq.T + in_bias[:f]).view(-1, n_heads, 1, d)  # (B, h, 1, d)
    m = (wk @ self_out_weight).view(n_heads, d, f)  # (h, d, f): W_{k,j} W_o
    return (q @ m).squeeze(2) / math.sqrt(d)  # (B, h, f)


def cross_pool(r: torch.Tensor, a: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """User→history attention pooling: ``softmax_t(r_j · a_t) a`` per head ``j``, from the folded
    query ``r`` ``(B, h, f)`` and the self-attention ``a`` ``(B, H, f)``; returns ``(B, h, f)``."""
    logits = r @ a.transpose(1, 2)  # (B, h, H)
    if bias is not None:
        logits = logits + bias[:, None, :]
    return torch.softmax(logits, dim=-1) @ a


def cross_output(
    pooled: torch.Tensor,
    in_weight: torch.Tensor,
    in_bias: torch.Tensor,
    self_out_weight: torch.Tensor,
    self_out_bias: torch.Tensor,
    out_weight: torch.Tensor,
    out_bias: torch.Tensor,
) -> torch.Tensor:
    """The cross-attention's output ``(B, f)`` from its pooled rows ``(B, h, f)``: the folded value
    map ``W_{v,j}(W_o ā_j + b_o) + b_{v,j}`` per head, heads concatenated, then the output projection."""
    b, n_heads, f = pooled.shape
    d = f // n_heads
    wv, bv = in_weight[2 * f :], in_bias[2 * f :]
    wv_o = (wv @ self_out_weight).view(n_heads, d, f)  # W_{v,j} W_o
    bv_o = (wv @ self_out_bias + bv).view(n_heads, d)
    heads = torch.einsum("bjf,jdf->bjd", pooled, wv_o) + bv_o  # (B, h, d)
    return heads.reshape(b, f) @ out_weight.T + out_bias


def slate_logits(item_repr: torch.Tensor, interest: torch.Tensor) -> torch.Tensor:
    """Dot-product scores ``(B, K)`` of exposed items ``(B, K, f)`` against the interest ``(B, f)``."""
    return (item_repr * interest[:, None, :]).sum(-1)


def urm_bce(
    logits: torch.Tensor, labels: torch.Tensor, legacy_double_sigmoid: bool
) -> torch.Tensor:
    """Mean per-item binary cross-entropy over all ``B·K`` items.

    Corrected (default): ``BCEWithLogits(s, y)``. ``legacy_double_sigmoid`` reproduces the reference,
    which applies the logits-BCE to already-sigmoided scores, i.e. fits ``σ(σ(s))``.
    """
    scores = torch.sigmoid(logits) if legacy_double_sigmoid else logits
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))


def mean_square_sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``Ω = Σ_P mean(P²)`` over parameter tensors (the URM's L2 term)."""
    return torch.stack([(p * p).mean() for p in tensors]).sum()


# ----------------------------------------------------------------------------------- simulator


def list_reward(response: torch.Tensor, cost: float) -> torch.Tensor:
    """``(B, K)`` {0,1} → ``(B,)`` mean item reward: +1 per positive, ``-cost`` per negative."""
    k = response.shape[-1]
    n_pos = response.sum(-1, dtype=torch.float64)
    return (n_pos - cost * (k - n_pos)) / k


def sweet_point(reward: torch.Tensor, point: float) -> torch.Tensor:
    """RL4RS reshaping of the reference GPU env: ``1 - |r - point|`` (docs/online.md)."""
    return 1.0 - (reward - point).abs()


def temper_decrement(reward: torch.Tensor, response: torch.Tensor, formula: str) -> torch.Tensor:
    """How much a step lowers the temper (P-HAC A.2's leave model), ``(B,)`` float64.

    ``hac_gpu`` (the envs every script uses): ``(1 - r̃)·K + 1`` with ``r̃`` the returned reward;
    ``hac_cpu`` (older envs): ``n_neg + 1``.
    """
    k = response.shape[-1]
    if formula == "hac_cpu":
        return (k - response.sum(-1, dtype=torch.float64)) + 1.0
    return (1.0 - reward) * k + 1.0


def append_positives(
    history: torch.Tensor, mask: torch.Tensor, slate: torch.Tensor, response: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``history ← (history ++ positives of the slate, in slate order)[-H:]`` (P-HAC A.2).

    ``history``: ``(B, H)`` left-padded ids; ``mask``: ``(B, H)`` bool; ``slate``: ``(B, K)``;
    ``response``: ``(B, K)`` {0,1}. Every existing slot (padding included) is kept, so padding is
    shifted out as positives arrive, as in the reference. One scatter, no Python loop.
    """
    kernels = _step_kernels(history)
    if kernels is not None:
        new_hist, new_mask = torch.empty_like(history), torch.empty_like(mask)
        kernels.append_positives(
            history.numpy(),
            mask.numpy(),
            slate.to(history.dtype).numpy(),
            response.bool().numpy(),
            new_hist.numpy(),
            new_mask.numpy(),
        )
        return new_hist, new_mask
    b, n = history.shape
    keep = torch.cat([torch.ones_like(mask), response.bool()], dim=1)  # (B, H+K)
    values = torch.cat([history, slate.to(history.dtype)], dim=1)
    flags = torch.cat([mask, response.bool()], dim=1)
    from_end = keep.flip(1).cumsum(1).flip(1)  # kept elements at or after each position
    target = n - from_end  # destination column of each kept element
    target = torch.where(keep & (target >= 0), target, n)  # dropped → dump column n
    new_hist = torch.zeros((b, n + 1), dtype=history.dtype, device=history.device)
    new_mask = torch.zeros((b, n + 1), dtype=torch.bool, device=mask.device)
    new_hist.scatter_(1, target, values)
    new_mask.scatter_(1, target, flags)
    return new_hist[:, :n], new_mask[:, :n]


@functools.cache
def _numba_kernels() -> ModuleType | None:
    if not available():
        return None
    from rlrec.sim import _step_kernel

    return _step_kernel


def _step_kernels(x: torch.Tensor) -> ModuleType | None:
    """The numba versions of :func:`append_positives` and :func:`hash_combine` (same results, a
    single pass instead of a dozen tensor operations) for CPU tensors when numba is installed."""
    return _numba_kernels() if x.device.type == "cpu" else None


# --------------------------------------------------------------- counter-based random numbers

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x · c) mod 2³²`` for int64 ``x`` in ``[0, 2³²)``, without signed overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser on int64 tensors holding values in ``[0, 2³²)``."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def hash_combine(a: torch.Tensor, b: torch.Tensor | int) -> torch.Tensor:
    """A 32-bit hash of the pair ``(a, b)`` (int64 tensors or ints, broadcast)."""
    kernels = _step_kernels(a)
    if kernels is not None:
        other = b.to(torch.int64).numpy() if isinstance(b, torch.Tensor) else np.int64(b)
        return torch.from_numpy(np.asarray(kernels.hash_combine(a.to(torch.int64).numpy(), other)))
    b_t = torch.as_tensor(b, dtype=torch.int64, device=a.device) & _M32
    return mix32(a ^ mix32(_mul32(b_t, 0x9E3779B1) + 0x7F4A7C15))


def seed_key(seed: int | torch.Tensor) -> torch.Tensor:
    """A 32-bit stream key from a (possibly 64-bit, non-negative) integer seed."""
    s = torch.as_tensor(seed, dtype=torch.int64)
    return hash_combine(mix32(s & _M32), (s >> 32) & _M32)


def hash_uniform(*keys: torch.Tensor | int) -> torch.Tensor:
    """Uniform ``[0, 1)`` float32 (24 random bits) that is a pure function of the integer keys.

    The simulator's response noise is ``hash_uniform(episode_key, step, item_id)``: it depends on
    *which* item is shown to *which* episode at *which* step, never on the slate's order, the batch
    size or the other users — common random numbers for comparing policies.
    """
    h = torch.as_tensor(keys[0], dtype=torch.int64)
    for k in keys[1:]:
        h = hash_combine(h, k)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))
