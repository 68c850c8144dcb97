"""SAC — Self-supervised Actor-Critic (Xin et al., SIGIR'20; spec-offline §C.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, Phase
from rlrec.objectives.sqn import SQNConfig, _logs, positive_terms


class SACConfig(SQNConfig):
    """Warm-up as SQN, then ``L = mean_b [ sg(Q_m(s_b, a_b))·CE_b + ½δ⁺_b² ]``.

    The CE term of the actor is re-weighted by the critic's raw Q-value of the logged action. After
    ``warmup_steps`` a fresh Adam (``lr_phase2``, default = ``lr``) takes over (spec §C.3, §H.5:
    15,000 in the TF copy, 30,000 in the CCQL code). ``sac_weighting: legacy_batch_mean`` reproduces
    the CCQL code's bug (batch-mean Q times batch-mean CE, §C.7).
    """

    kind: Literal["sac"] = "sac"
    warmup_steps: int = Field(15_000, ge=0)
    lr_phase2: float | None = Field(None, gt=0.0)
    sac_weighting: Literal["per_sample", "legacy_batch_mean"] = "per_sample"

    def phases(self) -> list[Phase]:
        return [Phase(0, self.lr), Phase(self.warmup_steps, self.lr_phase2 or self.lr)]

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = positive_terms(self, inputs)
        logs = _logs(t)
        if inputs.step < self.warmup_steps:
            return LossOutput((t.ce + t.td_pos).mean(), logs)
        weight = t.q_pos.detach()
        if self.sac_weighting == "per_sample":
            actor = (weight * t.ce).mean()
        else:
            actor = weight.mean() * t.ce.mean()
        logs["actor_weight"] = weight.mean()
        return LossOutput(actor + t.td_pos.mean(), logs)
