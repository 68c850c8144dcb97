"""A fused CPU kernel for the hyper-actor's attention, forward and backward, compiled with numba.

Every HAC update runs the actor's Transformer (P-HAC §2.3, A.3) forward and backward three times
(actor, alignment and supervision steps) over 64 histories of 51 tokens, with dropout on the
attention weights as ``torch.nn.TransformerEncoderLayer`` (the passes this kernel serves; the three
forward passes without dropout use ``scaled_dot_product_attention``, faster there). With
PyTorch's operators each of these builds several ``(B, h, L, L)`` tensors — logits, weights, dropout
mask, dropped weights and their gradients — and every pass over one of them goes through memory;
together that was about half of an iteration on 2 CPU cores (``benchmarks/README.md``, "HAC training
time"). This kernel computes each (sequence, head) problem — ``51 × 51`` weights of 8-dimensional
heads — in cache and never stores the weights: the backward pass recomputes them from ``q`` and
``k``.

The function, for queries ``q`` ``(B, Lq, h, d)``, keys and values ``(B, L, h, d)``, an additive
``bias`` ``(1 or B, Lq, L)`` (shared by the heads) and a dropout multiplier ``m``::

    out_i = Σ_j (softmax_j(q_i·k_j / √d + bias_ij) · m_ij) v_j

``m`` comes from the same draws as :func:`rlrec.models.dropout.dropout_mask` (the 16-bit words of
:func:`rlrec.models.dropout.dropout_words`, drawn by the caller at the same point of torch's
generator), so the kernel drops exactly the elements PyTorch's path drops. Keys whose bias is
``≤ −1e8`` (the layers' ``NEG``) get weight 0, as their ``exp`` underflows in PyTorch too.

The result equals :class:`rlrec.online.layers.DroppedAttention` (and, without dropout,
``scaled_dot_product_attention``) up to float rounding — sums in another order, ``exp`` a polynomial
of ≈ 2 ulp; ``tests/test_online_fused.py`` checks outputs and gradients to 1e-5. Problems are
independent and each is computed by one thread, so the result does not depend on the thread count.

numba is optional (``pip install "rlrec[fast]"``); without it, or with
``PolicyConfig.attention_kernel = "torch"``, the layers use PyTorch's operators.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, cast

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from rlrec.models.dropout import word_threshold
from rlrec.numba_support import match_torch_threads

NO_WORDS = torch.empty((0, 0, 0, 0), dtype=torch.int16)
"""The ``words`` of a call without dropout."""


def _kernels() -> ModuleType:
    """The compiled kernels (numba compiles them on first use and caches them on disk)."""
    from rlrec.online import _attention_kernel

    return _attention_kernel


def unpack(
    q_src: torch.Tensor, kv_src: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q``, ``k``, ``v`` views ``(B, ·, h, d)`` of packed projections: ``[q | k | v]``
    ``(B, L, 3, h, d)`` (``kv_src`` None), or queries ``(B, Lq, 1, h, d)`` and ``[k | v]``
    ``(B, L, 2, h, d)``."""
    if kv_src is None:
        return q_src[:, :, 0], q_src[:, :, 1], q_src[:, :, 2]
    return q_src[:, :, 0], kv_src[:, :, 0], kv_src[:, :, 1]


def _arrays(*tensors: torch.Tensor) -> list[Any]:
    """numpy views of the tensors (no copy; strides kept)."""
    return [t.detach().numpy() for t in tensors]


class FusedAttention(torch.autograd.Function):
    """The attention of the module docstring on packed projections, as one autograd function.

    ``q_src``: ``(B, L, 3, h, d)`` ``[q | k | v]`` of a self-attention (``kv_src`` None), or
    ``(B, Lq, 1, h, d)`` queries with ``kv_src`` ``(B, L, 2, h, d)`` ``[k | v]``; ``bias``
    ``(1 or B, Lq, L)``; ``words`` the int16 draws ``(B, h, Lq, L)`` of the dropout mask or
    :data:`NO_WORDS`; ``p`` the drop probability. Returns ``(B, Lq, h, d)``. float32 CPU tensors;
    gradients flow to ``q_src`` and ``kv_src`` only.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        q_src: torch.Tensor,
        kv_src: torch.Tensor | None,
        bias: torch.Tensor,
        words: torch.Tensor,
        p: float,
    ) -> torch.Tensor:
        q, k, v = unpack(q_src, kv_src)
        threshold, keep_scale = word_threshold(p)
        scale = 1.0 / math.sqrt(q.shape[-1])
        out = torch.empty(q.shape, dtype=torch.float32)
        match_torch_threads()
        _kernels().forward(
            *_arrays(q, k, v, bias, words), threshold, keep_scale, scale, out.numpy(),
        )  # fmt: skip
        ctx.save_for_backward(q_src, kv_src, bias, words)  # type: ignore[arg-type]
        ctx.p, ctx.packed = p, kv_src is None  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, g: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, None, None, None]:
        q_src, kv_src, bias, words = ctx.saved_tensors  # type: ignore[attr-defined]
        q, k, v = unpack(q_src, kv_src)
        threshold, keep_scale = word_threshold(ctx.p)  # type: ignore[attr-defined]
        scale = 1.0 / math.sqrt(q.shape[-1])
        d_q_src = torch.empty(q_src.shape, dtype=torch.float32)
        d_kv_src = None if kv_src is None else torch.empty(kv_src.shape, dtype=torch.float32)
        dq, dk, dv = unpack(d_q_src, d_kv_src)
        match_torch_threads()
        _kernels().backward(
            *_arrays(q, k, v, bias, words), threshold, keep_scale, scale,
            *_arrays(g.contiguous(), dq, dk, dv),
        )  # fmt: skip
        return d_q_src, d_kv_src, None, None, None


def fused_attention(
    q_src: torch.Tensor,
    kv_src: torch.Tensor | None,
    bias: torch.Tensor,
    words: torch.Tensor | None,
    p: float,
) -> torch.Tensor:
    """:class:`FusedAttention` with ``bias`` as the layers build it — ``(L, L)``, ``(B, 1, L, L)``
    or their last rows ``(1, L)``, ``(B, 1, 1, L)`` — and the dropout draws ``words``
    ``(B, h, Lq, L)`` or None (no dropout)."""
    flat = bias.detach().to(torch.float32).reshape(-1, *bias.shape[-2:]).contiguous()  # one layout
    draws = NO_WORDS if words is None else words.contiguous()
    return cast(torch.Tensor, FusedAttention.apply(q_src, kv_src, flat, draws, p))
