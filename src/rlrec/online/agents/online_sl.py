"""Online SL (P-HAC §3.1.3, A.3): the policy trained only by the per-item BCE of P-HAC Eq. 10 on the
slates and responses it collected itself."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.online.agents.base import Agent, AgentConfig, BehaviorLR, Logs
from rlrec.online.buffer import Batch


class OnlineSLConfig(AgentConfig, BehaviorLR):
    """Online SL: acts as DDPG does (noise σ on ``Z``, top-K, transitions into the replay buffer) and
    learns only ``L_BCE = mean_{b,k} BCE(σ(⟨Φ(x_{a_k}), Z⟩), y_k)`` on replayed slates and responses.

    The reference runs it as ``BehaviorDDPG`` with ``actor_lr 0``, which still trains an unused
    critic; rlrec has no critic. Default behaviour lr 1e-4 (the scripts' grid {1e-4, 5e-5, 5e-4, 1e-5}).
    """

    kind: Literal["online_sl"] = "online_sl"
    behavior_lr: float = Field(1e-4, gt=0.0)


class OnlineSL(Agent):
    """See :class:`OnlineSLConfig`."""

    cfg: OnlineSLConfig

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        self.add_optimizer("behavior", self.actor.parameters(), cfg.behavior_lr, cfg.behavior_decay)

    def update(self, batch: Batch, step: int, gen: torch.Generator) -> Logs:
        opt = self.optimizers["behavior"]
        loss = self.supervised_step(opt, batch.user, batch.history, batch.slate, batch.response)
        return {"behavior_loss": loss}


OnlineSLConfig.AGENT = OnlineSL
