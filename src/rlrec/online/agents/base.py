"""What every online agent shares: config pieces, acting, and the update steps several agents use.

An agent owns the hyper-actor (:class:`~rlrec.online.policy.HyperActor`), its networks and their
Adam optimisers (one per loss family, each with its own moments; weight decay is Adam's coupled L2,
as in the reference code). ``act`` picks slates for a batch of observations; ``update`` performs one
gradient update on a batch and returns the logged values. An optimiser whose learning rate is 0 is
not created, and its step is skipped entirely.

Networks are in train mode except while acting and computing targets, where they are in eval mode
unless ``dropout_when_acting`` (the reference never calls ``eval()``; docs/online.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from rlrec.config import StrictModel
from rlrec.online import functional as Fn
from rlrec.online.buffer import Batch
from rlrec.online.critics import CriticConfig
from rlrec.online.policy import (
    ExplorationConfig,
    HyperActor,
    PolicyConfig,
    choose_slate,
    mask_items,
    perturb,
    scores,
)

DataSource = Literal["replay", "on_policy", "logged"]
Logs = dict[str, torch.Tensor]


class AgentConfig(StrictModel):
    """Settings of every agent: the policy, how it explores, two parity flags.

    ``dropout_when_acting``: dropout stays on while acting and computing targets (the reference).
    ``buffer_pad_lookup``: ``hac_last_item`` turns padding id 0 of replayed histories into the last
    item's features (reference ``table[id − 1]``); ``zero`` keeps the padding the agent acted on.
    """

    policy: PolicyConfig = PolicyConfig()
    explore: ExplorationConfig = ExplorationConfig()
    dropout_when_acting: bool = False
    buffer_pad_lookup: Literal["zero", "hac_last_item"] = "zero"

    AGENT: ClassVar[type[Agent]]
    EXPLORE_DEFAULTS: ClassVar[dict[str, Any]] = {}
    PARITY: ClassVar[dict[str, Any]] = {
        "dropout_when_acting": True,
        "buffer_pad_lookup": "hac_last_item",
        "explore": {"hyper_noise": "hac_uniform", "coin": "per_batch"},
        "policy": {"encoder": "sasrec_hac_code"},
    }

    @model_validator(mode="before")
    @classmethod
    def _explore_defaults(cls, data: Any) -> Any:
        """Agent-specific exploration defaults under whatever ``explore`` keys are given."""
        if isinstance(data, dict) and cls.EXPLORE_DEFAULTS:
            given = data.get("explore") or {}
            if isinstance(given, dict):
                data = {**data, "explore": {**cls.EXPLORE_DEFAULTS, **given}}
        return data

    @classmethod
    def parity(cls) -> dict[str, Any]:
        """The ``hac_code_parity`` preset of this agent: every ``PARITY`` table along its bases."""
        flags: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            flags.update(vars(klass).get("PARITY", {}))
        return flags

    @property
    def data_source(self) -> DataSource:
        """Where update batches come from: the replay buffer, the step just taken, or logged data."""
        return "replay"

    def create(self, item_x: torch.Tensor, user_x: torch.Tensor, slate_size: int) -> Agent:
        """The agent this config describes (``item_x`` ``(N+1, d_i)``, ``user_x`` ``(U, d_u)`` on the
        training device; ``slate_size`` K)."""
        return self.AGENT(self, item_x, user_x, slate_size)


class ActorLR(StrictModel):
    """The actor optimiser (``L_QMax``, ``L_Hyper``, policy gradient, offline BCE)."""

    actor_lr: float = Field(1e-4, ge=0.0)
    actor_decay: float = Field(1e-5, ge=0.0)


class BehaviorLR(StrictModel):
    """The supervision optimiser: a separate Adam over all actor parameters (``L_BCE``, Eq. 10)."""

    behavior_lr: float = Field(0.0, ge=0.0)
    behavior_decay: float = Field(1e-5, ge=0.0)


class TDSettings(StrictModel):
    """Critic learning. ``legacy_done_mask``: bootstrap with ``d`` instead of ``1 − d`` (the
    reference; P-HAC Eq. 7 has ``1 − d``).
    ``critic_state_source``: ``Q(s_t, ·)`` on the state recomputed by the current actor without
    gradient (rlrec) or the one stored at acting time (``buffer``, the reference)."""

    gamma: float = Field(0.9, ge=0.0, le=1.0)
    tau: float = Field(0.01, ge=0.0, le=1.0)
    critic_lr: float = Field(1e-3, gt=0.0)
    critic_decay: float = Field(1e-5, ge=0.0)
    critic: CriticConfig = CriticConfig()
    legacy_done_mask: bool = False
    critic_state_source: Literal["online_detached", "buffer"] = "online_detached"

    PARITY: ClassVar[dict[str, Any]] = {"legacy_done_mask": True, "critic_state_source": "buffer"}


@dataclass
class Action:
    """What an agent did for ``B`` users: ``slate`` ``(B, K)``, the state ``s`` ``(B, d)`` and the
    hyper-action ``Z`` ``(B, d_Z)`` that picked the slate (noisy when exploring)."""

    slate: torch.Tensor
    state: torch.Tensor
    hyper: torch.Tensor


def adam(params: Iterator[nn.Parameter], lr: float, decay: float) -> torch.optim.Optimizer:
    """Adam with coupled L2 ``decay``; the fused kernel where torch has one for the parameters'
    device (4× faster than ``foreach`` for the small networks here), else ``foreach``."""
    group = list(params)
    try:
        return torch.optim.Adam(group, lr=lr, weight_decay=decay, fused=True)
    except RuntimeError:  # torch < 2.4 has no fused CPU Adam
        return torch.optim.Adam(group, lr=lr, weight_decay=decay, foreach=True)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def frozen_copy(module: ModuleT) -> ModuleT:
    """A target network: a deep copy without gradients."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


class Agent:
    """Base of every agent (see the module docstring).

    ``item_x``: raw item features ``(N+1, d_i)``; ``user_x``: user features ``(U, d_u)``, both on the
    training device; ``slate_size``: K.
    """

    cfg: AgentConfig

    def __init__(
        self, cfg: AgentConfig, item_x: torch.Tensor, user_x: torch.Tensor, slate_size: int
    ) -> None:
        self.cfg = cfg
        self.user_x = user_x
        self.slate_size = slate_size
        self.device = item_x.device
        self.actor = HyperActor(cfg.policy, item_x, user_x.shape[1]).to(self.device)
        self.nets: dict[str, nn.Module] = {"actor": self.actor}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()

    def build(self) -> None:
        """Add the agent's other networks and its optimisers (subclasses extend it)."""

    # ------------------------------------------------------------------ plumbing

    def add_optimizer(
        self, name: str, params: Iterator[nn.Parameter], lr: float, decay: float
    ) -> None:
        """Register an Adam unless ``lr`` is 0 (its step is then skipped)."""
        if lr > 0:
            self.optimizers[name] = adam(params, lr, decay)

    @contextmanager
    def acting(self, *modules: nn.Module) -> Iterator[None]:
        """Eval mode inside the block (train mode with ``dropout_when_acting``), train mode after."""
        for m in modules:
            m.train(self.cfg.dropout_when_acting)
        try:
            yield
        finally:
            for m in modules:
                m.train()

    def lookup(self, history: torch.Tensor, replayed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature-lookup ids and mask ``(B, H)`` of a history; replayed histories follow
        ``buffer_pad_lookup``."""
        mask = history > 0
        if replayed and self.cfg.buffer_pad_lookup == "hac_last_item":
            history = torch.where(mask, history, self.actor.n_items)
        return history, mask

    def encode(
        self,
        actor: HyperActor,
        user: torch.Tensor,
        history: torch.Tensor,
        phi: torch.Tensor,
        replayed: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, Z)`` of users ``(B,)`` with histories ``(B, H)`` under ``actor`` (its current mode)."""
        ids, mask = self.lookup(history, replayed)
        return actor(self.user_x[user], ids, mask, phi)

    @staticmethod
    def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # ------------------------------------------------------------------ acting

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, torch.Tensor],
        gen: torch.Generator,
        *,
        explore: bool,
        epsilon: float = 0.0,
    ) -> Action:
        """Slates for ``obs`` (``user``, ``history`` ``(B, H)``): exploring as configured (noise on
        ``Z``, ε-replacement, top-K vs categorical) or greedy and noise-free."""
        cfg = self.cfg.explore
        with self.acting(self.actor):
            phi = self.actor.kernel_table()
            s, z = self.encode(self.actor, obs["user"], obs["history"], phi, replayed=False)
        hyper = perturb(z, cfg, epsilon, gen) if explore else z
        score = scores(phi, hyper)
        if self.cfg.policy.mask_history_items:
            score = mask_items(score, obs["history"])
        rate = cfg.topk_rate if explore else 1.0
        return Action(choose_slate(score, self.slate_size, rate, cfg.coin, gen), s, hyper)

    # ------------------------------------------------------------------ shared update steps

    def supervised_step(
        self,
        opt: torch.optim.Optimizer,
        user: torch.Tensor,
        history: torch.Tensor,
        slate: torch.Tensor,
        labels: torch.Tensor,
        replayed: bool = True,
    ) -> torch.Tensor:
        """``L_BCE = mean BCE(σ(⟨Φ(x_{a_k}), Z⟩), y_k)`` on a slate and its labels; one step of
        ``opt`` (P-HAC Eq. 10, Algorithm 1 line 9)."""
        phi = self.actor.kernel_table()
        _, z = self.encode(self.actor, user, history, phi, replayed)
        loss = Fn.slate_bce(Fn.slate_logits(phi, slate, z), labels)
        self.step(opt, loss)
        return loss.detach()

    def update(self, batch: Any, step: int, gen: torch.Generator) -> Logs:
        """One gradient update on ``batch``; ``step`` counts updates from 0."""
        raise NotImplementedError


class TDAgent(Agent):
    """Agents with critics: a target actor, the states the critic sees, TD targets, Polyak."""

    cfg: Any  # an AgentConfig with TDSettings

    def build(self) -> None:
        super().build()
        self.actor_target = frozen_copy(self.actor)
        self.nets["actor_target"] = self.actor_target
        self.targets: list[tuple[nn.Module, nn.Module]] = [(self.actor_target, self.actor)]

    def add_target(self, name: str, net: ModuleT) -> ModuleT:
        """Register ``net`` and a Polyak-averaged copy of it (returned)."""
        target = frozen_copy(net)
        self.nets[name], self.nets[f"{name}_target"] = net, target
        self.targets.append((target, net))
        return target

    def soft_update(self) -> None:
        for target, net in self.targets:
            Fn.polyak_(target, net, self.cfg.tau)

    @torch.no_grad()
    def critic_state(self, batch: Batch) -> torch.Tensor:
        """``s_t`` ``(B, d)`` for the critic loss (``critic_state_source``)."""
        if self.cfg.critic_state_source == "buffer":
            return batch.state
        with self.acting(self.actor):
            return self.encode(self.actor, batch.user, batch.history, self.actor.kernel_table())[0]

    @torch.no_grad()
    def next_target(
        self, batch: Batch, actor: HyperActor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s', Z')`` of the next histories under the target actor (or ``actor``), noise-free."""
        actor = actor or self.actor_target
        with self.acting(actor):
            return self.encode(actor, batch.user, batch.next_history, actor.kernel_table())

    def td_target(self, batch: Batch, next_value: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return Fn.td_target(batch.reward, batch.terminated, next_value, c.gamma, c.legacy_done_mask)

    def critic_step(
        self,
        opt: torch.optim.Optimizer,
        critic: nn.Module,
        state: torch.Tensor,
        action: torch.Tensor,
        target: torch.Tensor,
    ) -> Logs:
        """``L_TD = mean (Q(s, a) − sg(y))²``; one step of the critic optimiser."""
        q = critic(state, action)
        loss = F.mse_loss(q, target)
        self.step(opt, loss)
        return {
            "critic_loss": loss.detach(),
            "q_mean": q.detach().mean(),
            "q_abs_max": q.detach().abs().max(),
            "target_mean": target.mean(),
        }

    def actor_q_step(
        self, opt: torch.optim.Optimizer, critic: nn.Module, batch: Batch
    ) -> torch.Tensor:
        """``L_QMax = −mean Q(s, Z)`` with a fresh noise-free forward; one actor step (P-HAC Eq. 8).
        The critic receives gradients but is not stepped (its next step starts from zero)."""
        phi = self.actor.kernel_table()
        s, z = self.encode(self.actor, batch.user, batch.history, phi)
        loss = -critic(s, z).mean()
        self.step(opt, loss)
        return loss.detach()
