"""Critics and PG-RA's inverse model (P-HAC A.3, Table 3), each an MLP block on given vectors.

* :class:`QCritic` ``Q(s, a)``: ``[s ; a]`` → hidden [256, 64] → scalar (dropout 0.2, LayerNorm);
  ``a`` is the hyper-action ``Z`` (DDPG, TD3) or the pooled slate embedding ``Ẑ_a`` (HAC).
* :class:`VCritic` ``V(s)``: ``s`` → [256, 64] → scalar (A2C).
* :class:`InverseModel` ``g([s_t ; s_{t+1}])`` → ``d_Z`` (PG-RA's action-representation model).

Critics have no encoder of their own: the state ``s`` comes from the actor.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from rlrec.config import StrictModel
from rlrec.online.layers import mlp


class CriticConfig(StrictModel):
    """The MLP of a critic (reference ``GeneralCritic``/``ValueCritic`` defaults)."""

    hidden: list[int] = Field(default_factory=lambda: [256, 64])
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    layer_norm: bool = True


class QCritic(nn.Module):
    """``Q(s, a)`` ``(B,)`` from ``s`` ``(B, d)`` and ``a`` ``(B, d_a)``."""

    def __init__(self, cfg: CriticConfig, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.net = mlp(state_dim + action_dim, cfg.hidden, 1, cfg.dropout, cfg.layer_norm)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], dim=-1)).squeeze(-1)


class VCritic(nn.Module):
    """``V(s)`` ``(B,)`` from ``s`` ``(B, d)``."""

    def __init__(self, cfg: CriticConfig, state_dim: int) -> None:
        super().__init__()
        self.net = mlp(state_dim, cfg.hidden, 1, cfg.dropout, cfg.layer_norm)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)


class InverseModel(nn.Module):
    """``Ẑ_inv = g([s_t ; s_{t+1}])`` ``(B, d_Z)`` (reference: hidden [256], dropout 0.1, LayerNorm)."""

    def __init__(self, state_dim: int, hyper_dim: int, hidden: list[int], p_drop: float) -> None:
        super().__init__()
        self.net = mlp(2 * state_dim, hidden, hyper_dim, p_drop, norm=True)

    def forward(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, next_state], dim=-1))
