"""Offline SL (P-HAC §3.1.3, A.3): the policy trained only by the per-item BCE of P-HAC Eq. 10 on
the logged exposures and labels."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from rlrec.online.agents.base import ActorLR, Agent, AgentConfig, DataSource, Logs
from rlrec.sim.dataset import ListTensors


class OfflineSLConfig(AgentConfig, ActorLR):
    """Offline SL: ``L_BCE`` on the **logged** exposures and labels of the ``train`` split (batches
    of 64 from seeded shuffled passes, a short last batch skipped); the environment is only stepped
    greedily (no noise, nothing stored) to log online metrics. P-HAC §3.1.3 and A.3: batch 64,
    lr ∈ {5e-4, 1e-4, 5e-5, 1e-5}; reference ``OfflineSLAgent``. ``data_split: all`` also fits the
    test-period records (what the reference's environment file holds).
    """

    kind: Literal["offline_sl"] = "offline_sl"
    data_split: Literal["train", "all"] = "train"

    EXPLORE_DEFAULTS: ClassVar[dict[str, Any]] = {"noise_std": 0.0}

    @property
    def data_source(self) -> DataSource:
        return "logged"


class OfflineSL(Agent):
    """See :class:`OfflineSLConfig`."""

    cfg: OfflineSLConfig

    def build(self) -> None:
        super().build()
        cfg = self.cfg
        self.add_optimizer("actor", self.actor.parameters(), cfg.actor_lr, cfg.actor_decay)

    def update(self, batch: ListTensors, step: int, gen: torch.Generator) -> Logs:
        if "actor" not in self.optimizers:
            return {}
        loss = self.supervised_step(
            self.optimizers["actor"],
            batch.user,
            batch.history,
            batch.exposure,
            batch.labels,
            replayed=False,
        )
        return {"behavior_loss": loss}


OfflineSLConfig.AGENT = OfflineSL
