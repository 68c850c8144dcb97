"""SASRec state encoder in the two flavours of the reference code (docs/offline.md).

``sasrec_variant="xin_tf"`` follows the TF SNQN/SA2C code (``SASRecModules.py``); ``"ccql_torch"``
follows the CCQL PyTorch code (``SASRecnetwork`` + ``utils.MultiheadAttention``). Both share one
block structure; the variant switches four things:

============================  ==========================  ===============================
                              ``xin_tf``                  ``ccql_torch``
============================  ==========================  ===============================
item-embedding scale          1                           √d
query residual weight         1 (``Attn + LN1(x)``)       2 (``2·LN1(x) + Attn``)
heads                         ``cfg.sasrec_heads``        always 1 (``num_heads`` ignored)
linear weights / biases       Glorot-uniform / 0 (TF)     normal(0, 0.01) / 0
============================  ==========================  ===============================

Embedding: ``x = scale·E[item] + P[pos]``, dropout, pads zeroed. One block, with ``q = LN1(x)``::

    Q = q W_Q + b_Q,  K = x W_K + b_K,  V = x W_V + b_V        # K, V from the *un-normalised* x
    A = softmax(mask(Q K^T / √(d/h))) per head (key + causal masking), dropout on A
    out = A V + c·q                                            # c = 1 (xin_tf) or 2 (ccql_torch)
    f = LN2(out);  y = f + dropout(W_2 dropout(relu(W_1 f + b_1)) + b_2)
    x ← y · pad_mask

then a final LN and the gather at ``len_state − 1``. All layer norms use ε = 1e-8; the scores are
divided by √(d/h) in both variants (CCQL divides by √d with its single head — the same thing).

Masking. A key is attendable iff it is *real* (``Encoder.real_mask``: before ``len_state`` and not
the pad). The reference tests "key vector sums to exactly 0", which singles out the zeroed pads
(a real embedding summing to exactly 0 has probability zero), so the two agree. The reference's
query masking (zeroing the attention rows of pad queries) is not applied separately: a pad query
row is zeroed by the pad mask at the end of the same block, and nothing between the attention and
that mask mixes positions, so query masking cannot change any output.

Empty history (all pad, ``len_state = 1``). Every key of the query of interest is masked; masked
scores are *filled* with the dtype's most negative finite value, so such a row has all scores
equal and gets uniform weights (what the reference's finite ``−2^32+1`` gives) — finite,
deterministic, never NaN. Its block output is then zeroed by the pad mask, so the state of an
empty history is ``LN_final(0) = β_final`` in both variants, exactly as in the reference.

Speed (the state is needed at ``len_state − 1`` only; all rewrites below are exact):

* Causal masking makes that position's last-block output depend on the other positions only
  through the last block's keys and values, so the last block runs its query side (LN1, Q,
  attention, FFN, LN2, final LN) for the gathered row only. Earlier blocks (``sasrec_blocks > 1``)
  run on all positions.
* In that last block the key/value projections are folded onto the single query instead of being
  applied to all ``L`` positions: ``Q·(x_j W_K + b_K) = (Q W_K^T)·x_j + const`` (a per-row constant
  that softmax ignores) and ``Σ_j a_j (x_j W_V + b_V) = (Σ_j a_j x_j) W_V + (Σ_j a_j) b_V`` (valid
  with dropped-out weights too). This turns two ``[B·L, d] × [d, d]`` matmuls into ``[B, d]``
  ones. ``b_K`` has zero gradient — as it mathematically has in the plain computation.
* Dropout masks on CPU come from 16-bit uniform integers (:mod:`rlrec.models.dropout`).

:meth:`SASRecEncoder.encode_sequence` is the plain all-positions computation (for checking, and
for a per-position "sequence mode").
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rlrec.models.dropout import dropout, dropout_mask
from rlrec.models.encoders.base import Encoder, EncoderConfig

LN_EPS = 1e-8


class SASRecBlock(nn.Module):
    """One self-attention block on ``[B, L, d]`` (the formulas of the module docstring).

    :meth:`forward` computes every position; :meth:`forward_last` computes one query row per
    sequence (keys/values from the whole window, projections folded onto the query).
    """

    def __init__(self, d: int, n_heads: int, dropout: float, query_residual: float) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"hidden size {d} is not divisible by sasrec_heads={n_heads}")
        self.d = d
        self.n_heads = n_heads
        self.head_dim = d // n_heads
        self.p_drop = dropout
        self.query_residual = query_residual
        self.ln_attn = nn.LayerNorm(d, eps=LN_EPS)
        self.w_q = nn.Linear(d, d)
        self.w_kv = nn.Linear(d, 2 * d)  # K and V projections in one matrix: rows [W_K; W_V]
        self.ln_ffn = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn1 = nn.Linear(d, d)
        self.ffn2 = nn.Linear(d, d)

    def reset_parameters(self, variant: str) -> None:
        """TF defaults (Glorot-uniform, zero bias) for ``xin_tf``; normal(0, 0.01) for ``ccql_torch``."""
        d = self.d
        with torch.no_grad():
            for weight in (
                self.w_q.weight,
                self.w_kv.weight[:d],
                self.w_kv.weight[d:],
                self.ffn1.weight,
                self.ffn2.weight,
            ):
                if variant == "xin_tf":
                    nn.init.xavier_uniform_(weight)  # each [d, d] matrix on its own, as TF
                else:
                    nn.init.normal_(weight, 0.0, 0.01)
            for layer in (self.w_q, self.w_kv, self.ffn1, self.ffn2):
                nn.init.zeros_(layer.bias)
        self.ln_attn.reset_parameters()
        self.ln_ffn.reset_parameters()

    def _ffn(self, out: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """``LN2`` → FFN with residual → pad mask (shape-agnostic over leading dims)."""
        f = self.ln_ffn(out)
        hidden = dropout(F.relu(self.ffn1(f)), self.p_drop, self.training)
        return (dropout(self.ffn2(hidden), self.p_drop, self.training) + f) * pad

    def forward(self, x: torch.Tensor, blocked: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """All positions: ``x [B, L, d]``, ``blocked [B, 1, L, L]`` (True = may not attend),
        ``pad [B, L, 1]`` (1.0 real, 0.0 pad) → ``[B, L, d]``."""
        batch, length, d = x.shape
        h, dh = self.n_heads, self.head_dim
        q = self.ln_attn(x)
        queries = self.w_q(q).view(batch, length, h, dh).transpose(1, 2)  # [B, h, L, dh]
        keys, values = self.w_kv(x).view(batch, length, 2, h, dh).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(queries, keys.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        weights = dropout(torch.softmax(scores, dim=-1), self.p_drop, self.training)
        attended = torch.matmul(weights, values).transpose(1, 2).reshape(batch, length, d)
        return self._ffn(attended + self.query_residual * q, pad)

    def forward_last(
        self,
        x_last: torch.Tensor,
        x: torch.Tensor,
        blocked: torch.Tensor,
        pad_last: torch.Tensor,
    ) -> torch.Tensor:
        """One query row per sequence: ``x_last [B, d]`` (block input at the query position),
        ``x [B, L, d]`` (all block inputs, for keys/values), ``blocked [B, 1, L]`` (True = key may
        not be attended by that query), ``pad_last [B, 1]`` → ``[B, d]``."""
        batch, d = x_last.shape
        h, dh = self.n_heads, self.head_dim
        w_k, w_v = self.w_kv.weight[:d], self.w_kv.weight[d:]
        b_v = self.w_kv.bias[d:]
        q = self.ln_attn(x_last)
        queries = self.w_q(q) * (1.0 / math.sqrt(dh))
        # Fold W_K onto the query: per head h, Q_h W_K[h] (W_K[h] = that head's [dh, d] rows of
        # the weight) maps the query to input space, [B, h, d]; Q_h·b_K[h] is a softmax-invariant constant.
        query_in = torch.bmm(queries.view(batch, h, dh).transpose(0, 1), w_k.view(h, dh, d))
        query_in = query_in.transpose(0, 1)
        scores = (x.unsqueeze(1) * query_in.unsqueeze(2)).sum(-1)  # [B, h, L]
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        weights = dropout(torch.softmax(scores, dim=-1), self.p_drop, self.training)
        context = (weights.unsqueeze(-1) * x.unsqueeze(1)).sum(2)  # [B, h, d] = Σ_j a_j x_j
        weight_sum = weights.sum(-1, keepdim=True)  # [B, h, 1]; 1 unless dropout hit
        # Per head: context_h W_V,h + (Σ_j a_j) b_V,h → [B, h, dh] → [B, d]
        attended = torch.bmm(context.transpose(0, 1), w_v.view(h, dh, d).transpose(1, 2))
        attended = (attended.transpose(0, 1) + weight_sum * b_v.view(h, dh)).reshape(batch, d)
        return self._ffn(attended + self.query_residual * q, pad_last)


class SASRecEncoder(Encoder):
    """SASRec over the last ``L`` items → state ``[B, d]`` (``xin_tf`` or ``ccql_torch``).

    Parameters: ``item_emb`` ``(n_items + 1) × d`` and ``pos_emb`` ``L × d`` (both normal(0, 0.01)),
    ``cfg.sasrec_blocks`` :class:`SASRecBlock`, a final LayerNorm ``ln_final``.
    ``out_dim = cfg.hidden``. Dropout ``cfg.dropout`` on the embeddings, the attention weights and
    twice in the FFN, active only in training mode.
    """

    def __init__(
        self, n_items: int, state_size: int, cfg: EncoderConfig, *, mask_token: bool = False
    ) -> None:
        super().__init__(n_items, state_size, cfg, mask_token=mask_token)
        d = cfg.hidden
        self.variant = cfg.sasrec_variant
        ccql = self.variant == "ccql_torch"
        self.out_dim = d
        self.emb_scale = math.sqrt(d) if ccql else 1.0
        n_heads = 1 if ccql else cfg.sasrec_heads
        self.item_emb = nn.Embedding(self.n_embeddings, d)
        self.pos_emb = nn.Parameter(torch.empty(state_size, d))
        self.blocks = nn.ModuleList(
            SASRecBlock(d, n_heads, cfg.dropout, 2.0 if ccql else 1.0)
            for _ in range(cfg.sasrec_blocks)
        )
        self.ln_final = nn.LayerNorm(d, eps=LN_EPS)
        self.causal_blocked: torch.Tensor  # [L, L] bool, True above the diagonal (future keys)
        self.register_buffer(
            "causal_blocked",
            torch.ones(state_size, state_size, dtype=torch.bool).triu(diagonal=1),
            persistent=False,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_emb.weight, 0.0, 0.01)
        nn.init.normal_(self.pos_emb, 0.0, 0.01)
        for block in self._blocks():
            block.reset_parameters(self.variant)
        self.ln_final.reset_parameters()

    def _blocks(self) -> list[SASRecBlock]:
        return cast(list[SASRecBlock], list(self.blocks))

    def _embed(self, state: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``[B, L, d]``: ``scale·E[item] + P``, dropout, pads zeroed."""
        x = torch.add(self.pos_emb, self.item_emb(state), alpha=self.emb_scale)
        keep = real.unsqueeze(-1).to(x.dtype)
        if self.training and self.cfg.dropout > 0.0:  # one multiply for dropout and pad mask
            keep = dropout_mask(tuple(x.shape), self.cfg.dropout, x.dtype, x.device) * keep
        return x * keep

    def _full_blocks(
        self, x: torch.Tensor, real: torch.Tensor, blocks: list[SASRecBlock]
    ) -> torch.Tensor:
        """Run ``blocks`` on all positions with causal + key masking: ``[B, L, d] → [B, L, d]``."""
        if not blocks:
            return x
        blocked = (self.causal_blocked | ~real[:, None, :]).unsqueeze(1)  # [B, 1, L, L]
        pad = real.unsqueeze(-1).to(x.dtype)
        for block in blocks:
            x = block(x, blocked, pad)
        return x

    def encode_sequence(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """Plain computation, every block on every position, final LN: ``[B, L] → [B, L, d]``.

        ``forward`` equals this gathered at ``len_state − 1`` (up to float rounding).
        """
        real = self.real_mask(state, len_state)
        x = self._full_blocks(self._embed(state, real), real, self._blocks())
        return self.ln_final(x)

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """``state [B, L]`` int64, ``len_state [B]`` int64 → ``[B, d]``."""
        real = self.real_mask(state, len_state)
        blocks = self._blocks()
        x = self._full_blocks(self._embed(state, real), real, blocks[:-1])
        batch, _, d = x.shape
        last = (len_state - 1).view(batch, 1)
        x_last = x.gather(1, last.unsqueeze(-1).expand(batch, 1, d)).squeeze(1)  # [B, d]
        pad_last = real.gather(1, last).to(x.dtype)  # [B, 1]; 0 only for the empty history
        # Real keys lie before len_state, so for the query at len_state − 1 the causal mask adds
        # nothing to key masking.
        blocked = (~real).unsqueeze(1)  # [B, 1, L]
        return self.ln_final(blocks[-1].forward_last(x_last, x, blocked, pad_last))
