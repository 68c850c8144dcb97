"""DDPG in the hyper-action space (P-HAC §3.1.3, Table 3; the reference ``BehaviorDDPG``)."""

from __future__ import annotations

from typing import Literal

import torch

from rlrec.online.agents.base import ActorLR, AgentConfig, BehaviorLR, Logs, TDAgent, TDSettings
from rlrec.online.buffer import Batch
from rlrec.online.critics import QCritic


class DDPGConfig(AgentConfig, ActorLR, BehaviorLR, TDSettings):
    """DDPG: the critic and the actor both work on the hyper-action ``Z``.

    Per update (P-HAC Table 3 / Eq. 7–8, Lillicrap et al. 2016):

    1. critic: ``L_TD = mean (Q(s_t, Z_buf) − y)²`` on the **stored noisy** ``Z``, with
       ``y = r + γ (1 − d) Q'(π'(u, h'))`` (target actor and critic, no noise);
    2. actor: ``L_QMax = −mean Q(s, Z)`` from a fresh noise-free forward;
    3. optional supervision ``L_BCE`` (``behavior_lr > 0``: the reference's "superDDPG");
    4. Polyak ``τ`` on both targets.

    Defaults: the reference scripts (actor lr 1e-4 of their grid, critic lr 1e-3, σ 0.1, decay 1e-5).
    """

    kind: Literal["ddpg"] = "ddpg"


class DDPG(TDAgent):
    """See :class:`DDPGConfig`; subclasses change the critic's action (HAC) or add steps (PG-RA)."""

    cfg: DDPGConfig

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        d = cfg.policy.dim
        self.critic = QCritic(cfg.critic, d, d).to(self.device)
        self.critic_target = self.add_target("critic", self.critic)
        self.add_optimizer("critic", self.critic.parameters(), cfg.critic_lr, cfg.critic_decay)
        self.add_optimizer("actor", self.actor.parameters(), cfg.actor_lr, cfg.actor_decay)
        self.add_optimizer("behavior", self.actor.parameters(), cfg.behavior_lr, cfg.behavior_decay)

    @torch.no_grad()
    def critic_action(self, batch: Batch) -> torch.Tensor:
        """The action the critic is trained on: the stored hyper-action ``(B, d_Z)``."""
        return batch.hyper

    def td_update(self, batch: Batch) -> Logs:
        """Step 1: the critic's TD regression."""
        s_next, z_next = self.next_target(batch)
        with self.acting(self.critic_target):
            y = self.td_target(batch, self.critic_target(s_next, z_next))
        state, action = self.critic_state(batch), self.critic_action(batch)
        return self.critic_step(self.optimizers["critic"], self.critic, state, action, y)

    def alignment_step(self, batch: Batch) -> Logs:
        """Between the actor and the supervision steps: nothing for DDPG (HAC, PG-RA align here)."""
        return {}

    def update(self, batch: Batch, step: int, gen: torch.Generator) -> Logs:
        logs = self.td_update(batch)
        if "actor" in self.optimizers:
            logs["actor_loss"] = self.actor_q_step(self.optimizers["actor"], self.critic, batch)
        logs.update(self.alignment_step(batch))
        if "behavior" in self.optimizers:
            logs["behavior_loss"] = self.supervised_step(
                self.optimizers["behavior"], batch.user, batch.history, batch.slate, batch.response
            )
        self.soft_update()
        return logs


DDPGConfig.AGENT = DDPG
