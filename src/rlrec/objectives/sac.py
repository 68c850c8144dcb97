"""SAC — Self-supervised Actor-Critic (Xin et al., SIGIR'20; P-CCQL §4.1's "SASRec-AC")."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, Phase, QLearningConfig, QTerms, q_terms

SACWeighting = Literal["per_sample", "legacy_batch_mean"]


class SACConfig(QLearningConfig):
    """Warm-up as SQN, then ``L = mean_b [ sg(Q_m(s_b, a_b))·CE_b + w·½δ⁺_b² ]``.

    The CE term of the actor is re-weighted by the critic's raw Q-value of the logged action. After
    ``warmup_steps`` a fresh Adam (``lr_phase2``, default = ``lr``) takes over (15,000 steps in a TF
    copy of the SIGIR'20 code, 30,000 in the CCQL code). ``sac_weighting: legacy_batch_mean``
    reproduces the CCQL code's bug (batch-mean Q times batch-mean CE; docs/conservative.md). With
    the CCQL code's settings (``warmup_steps: 30000``, SASRec ``ccql_torch``) this is P-CCQL's
    "SASRec-AC".
    """

    kind: Literal["sac"] = "sac"
    warmup_steps: int = Field(15_000, ge=0)
    lr_phase2: float | None = Field(None, gt=0.0)
    sac_weighting: SACWeighting = "per_sample"

    def phases(self) -> list[Phase]:
        return [Phase(0, self.lr), Phase(self.warmup_steps, self.lr_phase2 or self.lr)]

    def actor_loss(
        self, t: QTerms, ce: torch.Tensor, inputs: LossInputs, logs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """``mean_b CE_b`` during warm-up, then the Q-weighted CE (per sample, or the legacy product
        of the batch means, the weight's mean taken over the global batch in data-parallel runs)."""
        if inputs.step < self.warmup_steps:
            return ce.mean()
        weight = t.q_pos.detach()
        logs["actor_weight"] = weight.mean()
        if self.sac_weighting == "per_sample":
            return (weight * ce).mean()
        return inputs.batch_mean(weight) * ce.mean()

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = q_terms(self, inputs)
        ce = self.ce(inputs, t.s)
        logs = {"ce": ce.mean().detach(), **t.logs()}
        loss = self.actor_loss(t, ce, inputs, logs) + t.td(self.td_weight).mean()
        return LossOutput(loss, logs)
