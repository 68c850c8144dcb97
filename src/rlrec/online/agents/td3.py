"""TD3 in the hyper-action space (P-HAC §3.1.3, Table 3; Fujimoto et al. 2018).
Not in the reference code: written from the paper."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.online import functional as Fn
from rlrec.online.agents.base import ActorLR, AgentConfig, Logs, TDAgent, TDSettings
from rlrec.online.buffer import Batch
from rlrec.online.critics import QCritic


class TD3Config(AgentConfig, ActorLR, TDSettings):
    """TD3: two critics on ``(s, Z)``, clipped double-Q targets, target smoothing, delayed actor.

    * target ``Z' = Z_{π'}(u, h') + clip(ε, −c_T, c_T)``, ``ε ~ N(0, σ_T²)``;
      ``y = r + γ (1 − d) min(Q1'(s', Z'), Q2'(s', Z'))``;
    * both critics regress to ``y`` on the stored ``Z`` (one Adam each);
    * every ``policy_delay``-th update: actor on ``−mean min(Q1, Q2)(s, Z)`` (P-HAC Table 3,
      ``actor_objective: min``) or ``−mean Q1`` (Fujimoto), then Polyak on all targets.

    rlrec choices for what the paper leaves open (docs/online.md): ``σ_T = 0.2``, ``c_T = 0.5``,
    ``policy_delay = 2``; the rest as DDPG.
    """

    kind: Literal["td3"] = "td3"
    target_noise: float = Field(0.2, ge=0.0)
    target_noise_clip: float = Field(0.5, ge=0.0)
    policy_delay: int = Field(2, ge=1)
    actor_objective: Literal["min", "q1"] = "min"


class TD3(TDAgent):
    """See :class:`TD3Config`."""

    cfg: TD3Config

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        d = cfg.policy.dim
        self.critics = [QCritic(cfg.critic, d, d).to(self.device) for _ in range(2)]
        self.critic_targets = [
            self.add_target(f"critic{i + 1}", q) for i, q in enumerate(self.critics)
        ]
        for i, q in enumerate(self.critics):
            self.add_optimizer(f"critic{i + 1}", q.parameters(), cfg.critic_lr, cfg.critic_decay)
        self.add_optimizer("actor", self.actor.parameters(), cfg.actor_lr, cfg.actor_decay)

    def min_q(
        self, critics: list[QCritic], state: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        return torch.minimum(critics[0](state, action), critics[1](state, action))

    def update(self, batch: Batch, step: int, gen: torch.Generator) -> Logs:
        cfg = self.cfg
        s_next, z_next = self.next_target(batch)
        with torch.no_grad(), self.acting(*self.critic_targets):
            z_next = Fn.smoothed_action(z_next, cfg.target_noise, cfg.target_noise_clip, gen)
            y = self.td_target(batch, self.min_q(self.critic_targets, s_next, z_next))
        state = self.critic_state(batch)
        logs: Logs = {}
        for i, q in enumerate(self.critics, start=1):
            out = self.critic_step(self.optimizers[f"critic{i}"], q, state, batch.hyper, y)
            logs.update({f"{k}{'' if i == 1 else '2'}": v for k, v in out.items()})
        if (step + 1) % cfg.policy_delay == 0:
            if "actor" in self.optimizers:
                phi = self.actor.kernel_table()
                s, z = self.encode(self.actor, batch.user, batch.history, phi)
                value = (
                    self.min_q(self.critics, s, z)
                    if cfg.actor_objective == "min"
                    else self.critics[0](s, z)
                )
                loss = -value.mean()
                self.step(self.optimizers["actor"], loss)
                logs["actor_loss"] = loss.detach()
            self.soft_update()
        return logs


TD3Config.AGENT = TD3
