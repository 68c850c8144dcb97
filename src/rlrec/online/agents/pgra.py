"""PG-RA / DDPG-RA: DDPG plus action-representation alignment (P-HAC §3.1.3, Table 3,
after Chandak et al. 2019)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.online import functional as Fn
from rlrec.online.agents.base import Logs
from rlrec.online.agents.ddpg import DDPG, DDPGConfig
from rlrec.online.buffer import Batch
from rlrec.online.critics import InverseModel
from rlrec.online.policy import scores


class PGRAConfig(DDPGConfig):
    """PG-RA: the DDPG update (critic on the stored noisy ``Z``, actor on ``Q(s, Z)``), then an
    inverse model ``g`` learns which slate moved the user from ``s_t`` to ``s_{t+1}``:

    ``Ẑ_inv = g([sg(s_t) ; sg(s_{t+1})])`` (current actor, no noise),
    ``L_inv = mean_{b,k} −log softmax_i ⟨Φ(x_i), Ẑ_inv⟩ [a_k]`` (P-HAC Table 3:
    ``−E[ln P(a_t | s_t, s_{t+1})]``), one step of an Adam over ``g`` and the kernel Φ only; then Polyak.

    Defaults: the reference scripts (inverse lr 1e-5, hidden [256], dropout 0.1, actor lr 1e-5);
    ``log_softmax`` instead of the reference's ``log`` of probabilities.
    """

    kind: Literal["pgra"] = "pgra"  # type: ignore[assignment]
    actor_lr: float = Field(1e-5, ge=0.0)
    inverse_lr: float = Field(1e-5, gt=0.0)
    inverse_decay: float = Field(1e-5, ge=0.0)
    inverse_hidden: list[int] = Field(default_factory=lambda: [256])
    inverse_dropout: float = Field(0.1, ge=0.0, lt=1.0)


class PGRA(DDPG):
    """See :class:`PGRAConfig`."""

    cfg: PGRAConfig

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        d = cfg.policy.dim
        self.inverse = InverseModel(d, d, cfg.inverse_hidden, cfg.inverse_dropout).to(self.device)
        self.nets["inverse"] = self.inverse
        params = [*self.inverse.parameters(), *self.actor.kernel.parameters()]
        self.add_optimizer("inverse", iter(params), cfg.inverse_lr, cfg.inverse_decay)

    def alignment_step(self, batch: Batch) -> Logs:
        with torch.no_grad(), self.acting(self.actor):
            phi = self.actor.kernel_table()
            s_t = self.encode(self.actor, batch.user, batch.history, phi)[0]
            s_next = self.encode(self.actor, batch.user, batch.next_history, phi)[0]
        z_inv = self.inverse(s_t, s_next)
        loss = Fn.slate_nll(scores(self.actor.kernel_table(), z_inv), batch.slate)
        self.step(self.optimizers["inverse"], loss)
        return {"inverse_loss": loss.detach()}


PGRAConfig.AGENT = PGRA
