"""The user-response model (URM, P-HAC §3.1.2, A.2): per-item click probabilities for a slate.

Inputs per user: static features ``u`` ``(d_u,)``, the history's item features ``(H, d_i)`` with a
mask, and the ``K`` exposed items' features ``(K, d_i)``.

1. user encoder ``e = g(u)``: MLP ``d_u → hidden_dims → f`` (Linear, ReLU, Dropout; no norm);
2. item embedding ``E(x) = W x + b`` shared by history and exposure;
3. history self-attention (``n_heads``) over ``E(X_h)``;
4. user→history cross-attention with query ``e`` → interest ``z``;
5. ``fuse_user = concat_linear`` (ML-1M/KuaiRand reference): ``z ← Linear_{2f→f}([z; e])``;
   ``none`` (RL4RS reference): ``z`` as is;
6. logits ``s_j = ⟨E(x_j), z⟩``, probabilities ``σ(s)``.

``key_padding_mask`` (default) keeps padded history slots out of both attentions and returns a zero
cross-attention output for an empty history; the reference has no mask (padding enters as ``E(0)``).
``item_ids`` adds a learnable per-item embedding to ``E(x)`` (off in the reference, whose items are
known only through fixed random codes). Two more options, off in the paper's architecture, let the
model say what the simplest baselines know (:mod:`rlrec.sim.baselines`): ``item_bias`` adds a
learnable offset per item and a global one, ``s_j = ⟨E(x_j), z⟩ + b_j + b₀`` (item popularity need
not be coded into the dot product), and ``user_ids`` adds a learnable per-user embedding to the
encoded user, ``e = g(u) + U_u`` (a user's own tendency, for the users the records hold).
``engagement`` adds ``w · (logit r_u − logit p̄)`` with the user's positive rate so far smoothed
towards the training rate ``p̄``, ``r_u = (positives + α p̄) / (seen + α)`` (α =
:data:`ENGAGEMENT_PRIOR`): the positive-only history does not tell a user who likes most of what
they are shown from one who likes little, the counts do. The simulator keeps both counts per user
(:class:`rlrec.sim.env.ListRecSimulator`), so training and simulation see the same feature.
The attention math lives in :mod:`rlrec.sim.functional`; the simulator reuses it with per-item tables
(:meth:`URM.item_tables`), so training and simulation compute the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from rlrec.config import StrictModel
from rlrec.sim import functional as Fn

ENGAGEMENT_PRIOR = 10.0


def engagement_rate(
    seen: torch.Tensor, positives: torch.Tensor, prior: torch.Tensor | float
) -> torch.Tensor:
    """The user's positive rate so far, smoothed towards ``prior`` by :data:`ENGAGEMENT_PRIOR`
    pseudo-exposures: ``(positives + α p̄) / (seen + α)``, shape of ``seen``."""
    return (positives + ENGAGEMENT_PRIOR * prior) / (seen + ENGAGEMENT_PRIOR)


@dataclass(frozen=True)
class PooledInterest:
    """The user interest ``z = 1[keys]·(p M + m) + e U + u`` (:meth:`URM.interest_from_pooled`
    folded): ``p`` the pooled rows flattened ``(B, h·f)``, ``M`` ``matrix`` ``(h·f, f)``, ``m``
    ``offset`` ``(f,)``, ``e`` the user embedding ``(B, f)``, ``U`` ``user`` ``(f, f)`` (``None``
    without the ``concat_linear`` fusion), ``u`` ``user_offset`` ``(f,)``; with the padding mask a
    user without history keys gets ``e U + u`` only. Products of ``O(B·h·f²)`` instead of the
    per-head value maps, the output projection and the fusion one after the other."""

    matrix: torch.Tensor
    offset: torch.Tensor
    user: torch.Tensor | None
    user_offset: torch.Tensor
    masked: bool

    def __call__(
        self, pooled: torch.Tensor, e_user: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``z`` ``(B, f)`` of pooled rows ``(B, h, f)``, user embeddings ``(B, f)``, mask ``(B, H)``."""
        z = torch.addmm(self.offset, pooled.reshape(pooled.shape[0], -1), self.matrix)
        if self.masked:
            z = torch.where(mask.any(1, keepdim=True), z, 0.0)
        if self.user is not None:
            z = torch.addmm(z, e_user, self.user)
        return z + self.user_offset


def _affine(
    fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matrix ``(n_in, n_out)`` and offset ``(n_out,)`` of an affine ``fn`` of inputs
    ``(B, *in_shape)``, read off in float64 from its values at 0 and at the unit vectors."""
    n_in = math.prod(in_shape)
    probes = torch.eye(n_in, dtype=torch.float64, device=device).view(n_in, *in_shape)
    base = fn(torch.zeros(1, *in_shape, dtype=torch.float64, device=device)).reshape(-1)
    return fn(probes).reshape(n_in, -1) - base, base


class URMConfig(StrictModel):
    """Architecture of the user-response model (reference defaults for ML-1M/KuaiRand)."""

    dim: int = Field(32, ge=1)
    hidden_dims: list[int] = Field(default_factory=lambda: [128])
    n_heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    fuse_user: Literal["concat_linear", "none"] = "concat_linear"
    key_padding_mask: bool = True
    max_history: int = Field(50, ge=1)
    item_ids: bool = False
    item_bias: bool = False
    user_ids: bool = False
    engagement: bool = False

    @model_validator(mode="after")
    def _heads_divide(self) -> URMConfig:
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        return self


class Attention(nn.Module):
    """Parameters of one multi-head attention (``in_proj``: ``f → 3f`` for q|k|v, ``out_proj``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)


class URM(nn.Module):
    """The user-response model; ``forward`` returns slate logits ``(B, K)``."""

    prior_rate: torch.Tensor  # () the training positive rate, a buffer when cfg.engagement is on

    def __init__(
        self, cfg: URMConfig, user_dim: int, item_dim: int, n_items: int = 0, n_users: int = 0
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.user_dim, self.item_dim = user_dim, item_dim
        self.n_items, self.n_users = n_items, n_users
        layers: list[nn.Module] = []
        width = user_dim
        for hidden in cfg.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = hidden
        layers.append(nn.Linear(width, cfg.dim))
        self.user_encoder = nn.Sequential(*layers)
        self.item_embed = nn.Linear(item_dim, cfg.dim)
        self.item_id_embed: nn.Embedding | None = None
        if cfg.item_ids:
            if n_items < 1:
                raise ValueError("item_ids needs the catalogue size (n_items)")
            self.item_id_embed = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.item_offset: nn.Embedding | None = None
        self.global_offset: nn.Parameter | None = None
        if cfg.item_bias:
            if n_items < 1:
                raise ValueError("item_bias needs the catalogue size (n_items)")
            self.item_offset = nn.Embedding(n_items + 1, 1, padding_idx=0)
            nn.init.zeros_(self.item_offset.weight)
            self.global_offset = nn.Parameter(torch.zeros(()))
        self.user_id_embed: nn.Embedding | None = None
        if cfg.user_ids:
            if n_users < 1:
                raise ValueError("user_ids needs the number of users (n_users)")
            self.user_id_embed = nn.Embedding(n_users, cfg.dim)
            nn.init.zeros_(self.user_id_embed.weight)
        self.engagement_weight: nn.Parameter | None = None
        if cfg.engagement:
            self.engagement_weight = nn.Parameter(torch.zeros(()))
            self.register_buffer("prior_rate", torch.tensor(0.5))  # set from the training labels
        self.self_attn = Attention(cfg.dim)
        self.cross_attn = Attention(cfg.dim)
        self.fuse = nn.Linear(2 * cfg.dim, cfg.dim) if cfg.fuse_user == "concat_linear" else None

    # -- pieces (shared with the simulator) --------------------------------------------------

    def regularised(self) -> list[torch.Tensor]:
        """Parameters under the L2 term: user encoder, item embedding, both attentions (not fuse)."""
        mods = [self.user_encoder, self.item_embed, self.self_attn, self.cross_attn]
        for extra in (self.item_id_embed, self.item_offset, self.user_id_embed):
            if extra is not None:
                mods.append(extra)
        return [p for m in mods for p in m.parameters()]

    def encode_user(self, features: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """``e = g(u)`` ``(B, f)`` of user features ``(B, d_u)`` (plus ``U_u`` if enabled)."""
        e = self.user_encoder(features)
        if self.user_id_embed is not None:
            if ids is None:
                raise ValueError("this URM embeds user ids: pass them along with the features")
            e = e + self.user_id_embed(ids)
        return e

    def score(
        self,
        item_repr: torch.Tensor,
        z: torch.Tensor,
        ids: torch.Tensor | None = None,
        seen: torch.Tensor | None = None,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, K)`` of items ``E(x)`` ``(B, K, f)`` for interests ``z`` ``(B, f)``, plus
        the item and global offsets when ``item_bias`` is on (``ids`` ``(B, K)`` then needed) and
        the engagement term when ``engagement`` is (``seen``, ``positives`` ``(B,)``)."""
        logits = Fn.slate_logits(item_repr, z)
        if self.item_offset is not None and self.global_offset is not None:
            if ids is None:
                raise ValueError("this URM has item offsets: pass the item ids")
            logits = logits + self.item_offset(ids).squeeze(-1) + self.global_offset
        if self.engagement_weight is not None:
            if seen is None or positives is None:
                raise ValueError("this URM reads the users' response counts: pass seen/positives")
            p = self.prior_rate
            lift = torch.logit(engagement_rate(seen, positives, p)) - torch.logit(p)
            logits = logits + (self.engagement_weight * lift)[:, None]
        return logits

    def item_repr(self, features: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """``E(x)`` ``(..., f)`` of item features ``(..., d_i)`` (plus the id embedding if enabled)."""
        out = self.item_embed(features)
        if self.item_id_embed is not None:
            if ids is None:
                raise ValueError("this URM embeds item ids: pass them along with the features")
            out = out + self.item_id_embed(ids)
        return out

    def cross_query(self, e_user: torch.Tensor) -> torch.Tensor:
        """``(B, f)`` user embedding → folded cross-attention query ``(B, h, f)`` (same dtype)."""
        weights = (self.cross_attn.in_proj.weight, self.cross_attn.in_proj.bias)
        w, b = (x.to(e_user.dtype) for x in weights)
        out_weight = self.self_attn.out_proj.weight.to(e_user.dtype)
        return Fn.fold_cross_query(e_user, w, b, out_weight, self.cfg.n_heads)

    @torch.no_grad()
    def query_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`cross_query` as one affine map ``e ↦ (e W + b).view(B, h, f)``, its ``W``
        ``(f, h·f)`` and ``b`` ``(h·f,)`` read off in float64 (the simulator's path)."""
        matrix, offset = _affine(self.cross_query, (self.cfg.dim,), self.item_embed.weight.device)
        return matrix.float(), offset.float()

    def interest(
        self,
        e_user: torch.Tensor,
        query: torch.Tensor,
        qkv: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The user interest ``z`` ``(B, f)`` from the user embedding ``(B, f)``, its folded query
        ``(B, h, f)``, the history's ``[q|k|v]`` rows ``(B, H, 3f)`` and mask ``(B, H)``."""
        bias = Fn.key_bias(mask) if self.cfg.key_padding_mask else None
        a = Fn.self_attention(qkv, bias, self.cfg.n_heads)
        return self.interest_from_pooled(e_user, Fn.cross_pool(query, a, bias), mask)

    def interest_from_pooled(
        self, e_user: torch.Tensor, pooled: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``z`` ``(B, f)`` from the cross-attention's pooled rows ``(B, h, f)`` (what
        :meth:`interest` computes, or the simulator's fused kernel), the user embedding and mask."""
        z = self._cross_output(pooled)
        if self.cfg.key_padding_mask and mask is not None:
            z = torch.where(mask.any(1, keepdim=True), z, torch.zeros_like(z))
        if self.fuse is not None:
            z = self.fuse(torch.cat([z, e_user], dim=-1))
        return z

    def _cross_output(self, pooled: torch.Tensor) -> torch.Tensor:
        """The cross-attention's output ``(B, f)`` from its pooled rows ``(B, h, f)`` (same dtype)."""
        so, ca = self.self_attn.out_proj, self.cross_attn
        weights = [
            ca.in_proj.weight,
            ca.in_proj.bias,
            so.weight,
            so.bias,
            ca.out_proj.weight,
            ca.out_proj.bias,
        ]
        return Fn.cross_output(pooled, *(w.to(pooled.dtype) for w in weights))

    @torch.no_grad()
    def pooled_interest(self) -> PooledInterest:
        """:meth:`interest_from_pooled` as one affine map (it is affine in the pooled rows and the
        user embedding), its matrices read off in float64: the simulator's fused path."""
        h, f = self.cfg.n_heads, self.cfg.dim
        dev = self.item_embed.weight.device
        matrix, base = _affine(self._cross_output, (h, f), dev)  # (h·f, f), (f,)
        user, user_offset = None, torch.zeros(f, dtype=torch.float64, device=dev)
        if self.fuse is not None:
            w = self.fuse.weight.double()
            matrix, base = matrix @ w[:, :f].T, base @ w[:, :f].T
            user, user_offset = w[:, f:].T.float(), self.fuse.bias.double()
        return PooledInterest(
            matrix.float(), base.float(), user, user_offset.float(), self.cfg.key_padding_mask
        )

    def item_tables(self, item_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-item ``(E(x_i), [q|k|v]_i)`` for all items: ``(N+1, f)`` and ``(N+1, 3f)``."""
        ids = torch.arange(item_features.shape[0], device=item_features.device)
        emb = self.item_repr(item_features, ids)
        return emb, self.self_attn.in_proj(emb)

    # -- the model ---------------------------------------------------------------------------

    def forward(
        self,
        user_features: torch.Tensor,
        history_features: torch.Tensor,
        history_mask: torch.Tensor,
        exposure_features: torch.Tensor,
        history_ids: torch.Tensor | None = None,
        exposure_ids: torch.Tensor | None = None,
        user_ids: torch.Tensor | None = None,
        seen: torch.Tensor | None = None,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, K)`` from ``u`` ``(B, d_u)``, ``X_h`` ``(B, H, d_i)``, mask ``(B, H)`` and
        ``X_a`` ``(B, K, d_i)`` (and the item ids ``(B, H)``, ``(B, K)`` when ``item_ids`` or
        ``item_bias`` is on, the user ids ``(B,)`` when ``user_ids`` is, the response counts
        ``(B,)`` when ``engagement`` is)."""
        e = self.encode_user(user_features, user_ids)
        qkv = self.self_attn.in_proj(self.item_repr(history_features, history_ids))
        z = self.interest(e, self.cross_query(e), qkv, history_mask)
        items = self.item_repr(exposure_features, exposure_ids)
        return self.score(items, z, exposure_ids, seen, positives)
