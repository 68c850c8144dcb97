"""Building blocks of the online networks: the reference's MLP block and a post-norm Transformer
layer that takes one additive attention mask per sequence (causal + padding).

Dropout uses the cheap CPU masks of :mod:`rlrec.models.dropout`. In training, the attention with
dropout on its weights is one autograd function (:class:`DroppedAttention`) with a hand-written
backward: with batches of 64 histories of 51 tokens the ``(B, h, L, L)`` weight tensors dominate a
HAC update on CPU, and every pass over them is memory-bound, so the function makes as few passes as
possible (the ``1/√d`` scale on the queries, the mask added in place, the softmax backward fused).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from rlrec.models.dropout import dropout, dropout_mask, dropout_words
from rlrec.online.fused_attention import fused_attention, unpack

NEG = -1e9
"""Additive attention bias of a forbidden key (finite: a row keeps at least its diagonal)."""


class DroppedAttention(torch.autograd.Function):
    """``(softmax(q kᵀ + bias) ⊙ m) v`` for pre-scaled queries ``q`` ``(B, h, Lq, dh)``, keys and
    values ``(B, h, L, dh)``, an additive ``bias`` broadcastable to ``(B, h, Lq, L)`` and a dropout
    multiplier ``m`` ``(B, h, Lq, L)`` (no gradient to ``bias`` or ``m``).

    Backward, with ``W = softmax(·)`` and ``W_d = W ⊙ m``: ``dv = W_dᵀ g``, ``dS = (g vᵀ) ⊙ m``,
    ``dA = W ⊙ (dS − Σ_j dS W)`` (softmax backward), ``dq = dA k``, ``dk = dAᵀ q``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor,
        m: torch.Tensor,
    ) -> torch.Tensor:
        w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)).add_(bias), dim=-1)
        w_dropped = w * m
        ctx.save_for_backward(q, k, v, w, w_dropped, m)
        return torch.matmul(w_dropped, v)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, g: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
        q, k, v, w, w_dropped, m = ctx.saved_tensors  # type: ignore[attr-defined]
        dv = torch.matmul(w_dropped.transpose(-1, -2), g)
        ds = torch.matmul(g, v.transpose(-1, -2)).mul_(m)
        da = torch._softmax_backward_data(ds, w, -1, w.dtype)  # W ⊙ (dS − rowsum(dS ⊙ W)), fused
        return torch.matmul(da, k), torch.matmul(da.transpose(-1, -2), q), dv, None, None


class Dropout(nn.Module):
    """``nn.Dropout`` with the cheaper masks of :func:`rlrec.models.dropout.dropout_mask`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def mlp(
    in_dim: int, hidden: list[int], out_dim: int, p_drop: float = 0.0, norm: bool = False
) -> nn.Sequential:
    """The reference's ``DNN`` block (the MLPs of P-HAC A.3): per hidden width ``Linear → ReLU →
    Dropout (if p > 0) → LayerNorm (if norm)``, then a final ``Linear`` to ``out_dim``."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if p_drop > 0:
            layers.append(Dropout(p_drop))
        if norm:
            layers.append(nn.LayerNorm(h))
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def attention_bias(mask: torch.Tensor | None, length: int, device: torch.device) -> torch.Tensor:
    """Causal additive bias ``(L, L)``, or ``(B, 1, L, L)`` that also hides padded keys when ``mask``
    ``(B, L)`` (True = real token) is given. The diagonal is always open, so no row is empty.
    Built with float ops (bool ones are slow on CPU): ``min(causal, key padding)``, diagonal zeroed."""
    causal = torch.full((length, length), NEG, device=device).triu_(1)
    if mask is None:
        return causal
    keys = torch.zeros(mask.shape, device=device).masked_fill_(~mask, NEG)  # (B, L)
    bias = torch.minimum(causal[None], keys[:, None, :])
    bias.diagonal(dim1=1, dim2=2).zero_()
    return bias[:, None]


class TransformerLayer(nn.Module):
    """Post-norm encoder layer as ``torch.nn.TransformerEncoderLayer`` (ReLU, dropout on the attention
    weights, after attention and inside the feed-forward), with an additive mask ``(B, 1, L, L)``.

    ``fused``: float32 CPU attention with dropout (training, ``p_drop > 0``) runs the numba kernel of
    :mod:`rlrec.online.fused_attention` (the same function and dropout draws; float rounding apart)
    instead of PyTorch's operators. Without dropout PyTorch's ``scaled_dot_product_attention`` is
    used either way: it is faster there (``benchmarks/README.md``, HAC training time)."""

    def __init__(
        self, dim: int, n_heads: int, ff_dim: int, p_drop: float, fused: bool = False
    ) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"policy dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.p, self.fused = n_heads, p_drop, fused
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop, self.drop1, self.drop2 = Dropout(p_drop), Dropout(p_drop), Dropout(p_drop)

    def _attend(
        self, q_src: torch.Tensor, kv_src: torch.Tensor | None, bias: torch.Tensor
    ) -> torch.Tensor:
        """Heads ``(B, Lq, h, d/h)`` of packed projections (:func:`~rlrec.online.fused_attention.
        unpack`) with an additive ``bias``; dropout on the weights in training."""
        q, k, v = unpack(q_src, kv_src)
        dropping = self.training and self.p > 0
        shape = (q.shape[0], q.shape[2], q.shape[1], k.shape[1])  # (B, h, Lq, L)
        if dropping and self.fused and q.device.type == "cpu" and q.dtype == torch.float32:
            return fused_attention(q_src, kv_src, bias, dropout_words(shape), self.p)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if dropping:  # dropout on the attention weights, as torch's layer
            m = dropout_mask(shape, self.p, q.dtype, q.device)
            out = DroppedAttention.apply(q * (1.0 / math.sqrt(q.shape[-1])), k, v, bias, m)
            return cast(torch.Tensor, out).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2)

    def _finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Residual + norm around the attention output ``a`` (``x``'s shape), then the feed-forward."""
        x = self.norm1(x + self.drop1(self.out(a)))
        return self.norm2(x + self.drop2(self.ff2(self.drop(F.relu(self.ff1(x))))))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, d)`` → ``(B, L, d)``."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads)
        return self._finish(x, self._attend(qkv, None, bias).reshape(b, n, d))

    def forward_last(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The output at the last position only, ``(B, L, d)`` → ``(B, d)``; exact.

        Everything after the attention is position-wise, and the last query's attention needs the
        keys and values of every position but only its own query row: the query projection, the
        attention row, the norms and the feed-forward run for one position instead of ``L``.
        ``bias``: the full ``(L, L)`` or ``(B, 1, L, L)`` mask (its last row is used).
        """
        b, n, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        w, bq = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, -1], w[:d], bq[:d]).view(b, 1, 1, h, dh)
        kv = F.linear(x, w[d:], bq[d:]).view(b, n, 2, h, dh)
        a = self._attend(q, kv, bias[..., -1:, :]).reshape(b, d)
        return self._finish(x[:, -1], a)
