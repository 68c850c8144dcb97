"""A2C: policy gradient on the effect action with a value critic (P-HAC §3.1.3, "synchronized A3C";
Table 3)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from rlrec.online import functional as Fn
from rlrec.online.agents.base import (
    ActorLR,
    AgentConfig,
    DataSource,
    Logs,
    TDAgent,
    TDSettings,
)
from rlrec.online.buffer import Batch
from rlrec.online.critics import VCritic
from rlrec.online.policy import scores


class A2CConfig(AgentConfig, ActorLR, TDSettings):
    """A2C: slates drawn from ``softmax⟨Φ(x_i), Z⟩`` without replacement (no noise on ``Z``).

    Per update on ``(u, h, h', a, r, d)``:

    1. ``s = π(u, h)`` (fresh), ``V = V(sg(s))``; ``y = r + γ (1 − d) V'(s')`` with ``s'`` from the
       online actor (``on_policy``) or the target actor (``replay``) and ``V'`` from the target
       critic (``value_target: target``) or the critic itself (``online``);
    2. ``A = clip(sg(y − V), −1, 1)``; ``L_V = mean (V − y)²``, one critic step;
    3. ``L_π = mean_b −log P(a_b | Z_b) · (A_b + advantage_bias) + entropy_coef · mean_b Σ_i P_i log P_i``
       with ``log P(a|Z)`` = ``independent`` (``Σ_k log softmax``, P-HAC and the reference) or
       ``plackett_luce`` (exact for sampling without replacement); one actor step; Polyak.

    ``mode``: ``on_policy`` (rlrec, the paper's description: each update uses the transitions just
    collected, never a buffer) or ``replay`` (the reference: samples of the 100k replay buffer
    without importance weights). ``rollout_length`` ``m`` (on-policy only): collect ``m``
    steps of the ``num_envs`` users, then one update on the ``m · num_envs`` transitions with n-step
    targets (:func:`~rlrec.online.functional.n_step_targets`); ``m = 1`` is the 1-step A2C.
    Defaults: the reference script (actor lr 3e-5, entropy 0, advantage bias 0).
    """

    kind: Literal["a2c"] = "a2c"
    actor_lr: float = Field(3e-5, ge=0.0)
    mode: Literal["on_policy", "replay"] = "on_policy"
    value_target: Literal["target", "online"] = "target"
    slate_log_prob: Fn.SlateLogProb = "independent"
    entropy_coef: float = Field(0.0, ge=0.0)
    advantage_bias: float = 0.0
    advantage_clip: float = Field(1.0, gt=0.0)
    rollout_length: int = Field(1, ge=1)

    EXPLORE_DEFAULTS: ClassVar[dict[str, Any]] = {"noise_std": 0.0, "topk_rate": 0.0}
    PARITY: ClassVar[dict[str, Any]] = {"mode": "replay"}

    @property
    def data_source(self) -> DataSource:
        return "on_policy" if self.mode == "on_policy" else "replay"

    @model_validator(mode="after")
    def _rollouts_on_policy(self) -> A2CConfig:
        if self.rollout_length > 1 and self.mode != "on_policy":
            raise ValueError(
                "rollout_length > 1 needs mode: on_policy (replay samples transitions)"
            )
        return self


class A2C(TDAgent):
    """See :class:`A2CConfig`."""

    cfg: A2CConfig

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        self.critic = VCritic(cfg.critic, cfg.policy.dim).to(self.device)
        self.critic_target = self.add_target("critic", self.critic)
        if cfg.mode == "on_policy":  # the target actor is not used: no need to average it
            self.targets = [t for t in self.targets if t[0] is not self.actor_target]
        self.add_optimizer("critic", self.critic.parameters(), cfg.critic_lr, cfg.critic_decay)
        self.add_optimizer("actor", self.actor.parameters(), cfg.actor_lr, cfg.actor_decay)

    def update(self, batch: Batch, step: int, gen: torch.Generator) -> Logs:
        """One update on transitions ``(B,)`` or on a rollout ``(m, B)`` (:meth:`Batch.stack`),
        whose targets are n-step returns."""
        cfg = self.cfg
        rollout = batch if batch.reward.dim() == 2 else None
        if rollout is not None:
            batch = rollout.flatten()
        phi = self.actor.kernel_table()
        s, z = self.encode(self.actor, batch.user, batch.history, phi)
        s_next, _ = self.next_target(batch, self.actor if cfg.mode == "on_policy" else None)
        value_net = self.critic_target if cfg.value_target == "target" else self.critic
        with torch.no_grad(), self.acting(value_net):
            next_value = value_net(s_next)
        if rollout is None:
            y = self.td_target(batch, next_value)
        else:
            r = rollout
            y = Fn.n_step_targets(
                r.reward,
                r.terminated,
                r.truncated,
                next_value.view_as(r.reward),
                cfg.gamma,
                cfg.legacy_done_mask,
            ).flatten()
        v = self.critic(s.detach())
        advantage = Fn.clipped_advantage(y, v, cfg.advantage_clip)
        critic_loss = F.mse_loss(v, y)
        self.step(self.optimizers["critic"], critic_loss)
        logs: Logs = {
            "critic_loss": critic_loss.detach(),
            "q_mean": v.detach().mean(),
            "q_abs_max": v.detach().abs().max(),
            "target_mean": y.mean(),
            "advantage_mean": advantage.mean(),
        }
        if "actor" in self.optimizers:
            score = scores(phi, z)
            log_prob = Fn.slate_log_prob(score, batch.slate, cfg.slate_log_prob)
            loss = -(log_prob * (advantage + cfg.advantage_bias)).mean()
            if cfg.entropy_coef > 0:
                loss = loss + cfg.entropy_coef * Fn.neg_entropy(score)
            self.step(self.optimizers["actor"], loss)
            logs["actor_loss"] = loss.detach()
        self.soft_update()
        return logs


A2CConfig.AGENT = A2C
