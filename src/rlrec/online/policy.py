"""The hyper-actor (P-HAC §2.3–§2.4, A.3): item kernel Φ, SASRec state encoder, hyper-action head,
scoring, slate selection and exploration.

``HyperActor(u, h) → (s, Z)``:

1. history tokens ``Φ(x_{h_t}) + P_t`` (learned positions, left padding), then LayerNorm(Dropout(·));
2. ``sasrec_paper`` (default, P-HAC §2.3/A.3): a user token ``g_u(u)`` (MLP ``d_u → 128 → d``) is
   appended last, and padded history slots are masked; ``sasrec_hac_code`` (the reference code):
   no user token, no padding mask;
3. a causal post-norm Transformer (2 layers, 4 heads, ff 64, dropout 0.1); ``s`` = last output;
4. ``Z = W_Z s + b_Z`` (``linear``) or ``Z = s`` (``identity``, the reference).

Scores ``⟨Φ(x_i), Z⟩`` over all ``N`` items; the slate is the greedy top-K (ties: lower id first) or
K items drawn without replacement from ``softmax(score)`` (Gumbel top-K, draw order kept).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from pydantic import Field, model_validator
from torch import nn

from rlrec import numba_support
from rlrec.config import StrictModel
from rlrec.errors import ConfigError
from rlrec.models.gather import table_rows
from rlrec.online.layers import Dropout, TransformerLayer, attention_bias, mlp

Coin = Literal["per_user", "per_batch"]


class PolicyConfig(StrictModel):
    """Hyper-actor architecture. ``encoder`` picks the defaults of ``use_user_token``, ``hyper_head``
    and ``padding_mask`` (explicit values win): ``sasrec_paper`` → True, linear, True;
    ``sasrec_hac_code`` → False, identity, False (the reference)."""

    encoder: Literal["sasrec_paper", "sasrec_hac_code"] = "sasrec_paper"
    use_user_token: bool = True
    hyper_head: Literal["linear", "identity"] = "linear"
    padding_mask: bool = True
    dim: int = Field(32, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    ff_dim: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_history: int = Field(50, ge=1)
    user_hidden: list[int] = Field(default_factory=lambda: [128])
    user_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    kernel: Literal["linear", "mlp"] = "linear"
    kernel_hidden: list[int] = Field(default_factory=lambda: [128])
    mask_history_items: bool = False
    attention_kernel: Literal["auto", "torch", "numba"] = "auto"
    """How the Transformer's attention with dropout is computed on CPU: ``numba`` the fused kernel
    of :mod:`rlrec.online.fused_attention` (same function and dropout draws up to float rounding),
    ``torch`` PyTorch's operators, ``auto`` the kernel when numba is installed. Attention without
    dropout (acting, targets) uses PyTorch's fused ``scaled_dot_product_attention`` either way."""

    @model_validator(mode="before")
    @classmethod
    def _encoder_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            paper = data.get("encoder", "sasrec_paper") == "sasrec_paper"
            preset = {
                "use_user_token": paper,
                "hyper_head": "linear" if paper else "identity",
                "padding_mask": paper,
            }
            data = {**preset, **data}
        return data


class ExplorationConfig(StrictModel):
    """How an agent explores while it collects data (P-HAC §2.3, §2.7).

    ``hyper_noise``: ``gaussian`` adds ``N(0, noise_std²)`` to ``Z`` (P-HAC); ``hac_uniform`` adds
    ``clip(U·noise_std, −1, 1)``, ``U ~ Uniform[0, 1)`` (the reference: biased positive).
    With probability ε (linear from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_steps``
    iterations) ``Z`` is replaced by the noise alone. ``topk_rate``: probability of the greedy top-K
    slate, otherwise a categorical draw. ``coin``: one coin per user (rlrec) or per batch (reference).
    """

    hyper_noise: Literal["gaussian", "hac_uniform"] = "gaussian"
    noise_std: float = Field(0.1, ge=0.0)
    noise_clip: float | None = Field(None, gt=0.0)
    epsilon_start: float = Field(0.0, ge=0.0, le=1.0)
    epsilon_end: float = Field(0.0, ge=0.0, le=1.0)
    epsilon_steps: int = Field(1, ge=1)
    topk_rate: float = Field(1.0, ge=0.0, le=1.0)
    coin: Coin = "per_user"

    def epsilon(self, iteration: int) -> float:
        frac = min(1.0, iteration / self.epsilon_steps)
        return self.epsilon_start + frac * (self.epsilon_end - self.epsilon_start)


class HyperActor(nn.Module):
    """``(user features, history) → (state s, hyper-action Z)``; see the module docstring.

    ``item_x``: raw item features ``(N+1, d_i)`` (row 0 = padding), kept as a non-persistent buffer;
    ``user_dim``: ``d_u``.
    """

    item_x: torch.Tensor  # (N+1, d_i), a non-persistent buffer

    def __init__(self, cfg: PolicyConfig, item_x: torch.Tensor, user_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.register_buffer("item_x", item_x.detach().clone(), persistent=False)
        self.kernel = (
            nn.Linear(item_x.shape[1], d)
            if cfg.kernel == "linear"
            else mlp(item_x.shape[1], cfg.kernel_hidden, d)
        )
        self.position = nn.Embedding(cfg.max_history, d)
        self.emb_dropout, self.emb_norm = Dropout(cfg.dropout), nn.LayerNorm(d)
        self.user_encoder = (
            mlp(user_dim, cfg.user_hidden, d, p_drop=cfg.user_dropout)
            if cfg.use_user_token
            else None
        )
        fused = cfg.attention_kernel != "torch" and numba_support.available()
        if cfg.attention_kernel == "numba" and not fused:
            raise ConfigError(
                "policy.attention_kernel 'numba' needs numba (pip install 'rlrec[fast]')"
            )
        self.layers = nn.ModuleList(
            TransformerLayer(d, cfg.n_heads, cfg.ff_dim, cfg.dropout, fused)
            for _ in range(cfg.n_layers)
        )
        self.head = nn.Linear(d, d) if cfg.hyper_head == "linear" else nn.Identity()

    @property
    def n_items(self) -> int:
        return self.item_x.shape[0] - 1

    def kernel_table(self) -> torch.Tensor:
        """``Φ(x_i)`` for every item, ``(N+1, d)`` (row 0: the padding features' image)."""
        return self.kernel(self.item_x)

    def forward(
        self, user_x: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, phi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, Z)`` ``(B, d)`` each from user features ``(B, d_u)``, the history's lookup ids
        ``(B, H)`` (left-padded), its mask ``(B, H)`` (True = real item) and the kernel table."""
        h = self.cfg.max_history
        ids, mask = ids[:, -h:], mask[:, -h:]
        x = table_rows(phi, ids) + self.position.weight[-ids.shape[1] :]
        x = self.emb_norm(self.emb_dropout(x))
        if self.user_encoder is not None:
            x = torch.cat([x, self.user_encoder(user_x)[:, None, :]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        bias = attention_bias(mask if self.cfg.padding_mask else None, x.shape[1], x.device)
        *first, last = self.layers
        for layer in first:
            x = layer(x, bias)
        # only the last position is the state
        s = cast(TransformerLayer, last).forward_last(x, bias)
        return s, self.head(s)


def scores(phi: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``⟨Φ(x_i), Z⟩`` for items ``1..N``: kernel table ``(N+1, d)``, ``Z`` ``(B, d)`` → ``(B, N)``."""
    return z @ phi[1:].T


def mask_items(score: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """``score`` ``(B, N)`` with the items of ``history`` ``(B, H)`` (ids, 0 = padding) set to −∞."""
    seen = torch.zeros(score.shape[0], score.shape[1] + 1, dtype=torch.bool, device=score.device)
    seen.scatter_(1, history, True)
    return score.masked_fill(seen[:, 1:], -torch.inf)


def greedy_slate(score: torch.Tensor, k: int) -> torch.Tensor:
    """Top-``k`` item ids ``(B, k)`` by descending score, ties broken by the lower id.

    ``topk`` (partial selection) does the work; rows with a tie at the cut-off, where ``topk`` may
    pick either item, are redone with a stable full sort, and equal scores inside the slate are put
    in id order.
    """
    n = score.shape[1]
    width = min(k + 1, n)
    values, index = torch.topk(score, width, dim=1)
    tied = (
        values[:, k - 1] == values[:, k]
        if width > k
        else torch.zeros_like(values[:, 0], dtype=torch.bool)
    )
    values, index = values[:, :k], index[:, :k]
    if bool(tied.any()):
        rows = torch.nonzero(tied).flatten()
        full = torch.sort(score[rows], dim=1, descending=True, stable=True)
        values[rows], index[rows] = full.values[:, :k], full.indices[:, :k]
    by_id = torch.argsort(index, dim=1)  # ids ascending, then a stable sort by descending score
    index, values = index.gather(1, by_id), values.gather(1, by_id)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return index.gather(1, order) + 1


def sample_slate(score: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` distinct ids ``(B, k)`` drawn without replacement from ``softmax(score)``, in draw order
    (Gumbel top-K: the order of ``score + Gumbel`` noise is a Plackett–Luce sample)."""
    u = torch.rand(score.shape, generator=gen).to(score.device).clamp_(1e-12, 1 - 1e-7)
    return greedy_slate(score - torch.log(-torch.log(u)), k)


def coins(n: int, p: float, how: Coin, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(n,)`` bool, each True with probability ``p``: independent per user, or one for all."""
    if p <= 0.0:
        return torch.zeros(n, dtype=torch.bool, device=device)
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    draws = torch.rand(n if how == "per_user" else 1, generator=gen) < p
    return draws.expand(n).to(device)


def perturb(
    z: torch.Tensor, cfg: ExplorationConfig, epsilon: float, gen: torch.Generator
) -> torch.Tensor:
    """The exploring hyper-action ``(B, d)``: ``Z + noise``, or the noise alone where the ε coin
    says so."""
    if cfg.hyper_noise == "hac_uniform":
        noise = (torch.rand(z.shape, generator=gen) * cfg.noise_std).clamp(-1.0, 1.0)
    else:
        noise = torch.randn(z.shape, generator=gen) * cfg.noise_std
        if cfg.noise_clip is not None:
            noise = noise.clamp(-cfg.noise_clip, cfg.noise_clip)
    noise = noise.to(z.device)
    replace = coins(z.shape[0], epsilon, cfg.coin, gen, z.device)
    return torch.where(replace[:, None], noise, z + noise)


def choose_slate(
    score: torch.Tensor, k: int, topk_rate: float, how: Coin, gen: torch.Generator
) -> torch.Tensor:
    """Greedy top-K with probability ``topk_rate`` (per user or per batch), else a categorical draw."""
    greedy = greedy_slate(score, k)
    if topk_rate >= 1.0:
        return greedy
    sample = coins(score.shape[0], 1.0 - topk_rate, how, gen, score.device)
    return torch.where(sample[:, None], sample_slate(score, k, gen), greedy)
