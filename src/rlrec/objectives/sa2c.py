"""SA2C — Supervised Advantage Actor-Critic (Xin et al., WSDM'22, §3.3, Eq. 6–8, 10)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlrec.data.popularity import PopScope
from rlrec.objectives.base import LossInputs, LossOutput, Phase
from rlrec.objectives.functional import ips_weight, sa2c_advantage
from rlrec.objectives.snqn import NegativeSampling, negative_terms


class SA2CConfig(NegativeSampling):
    """SNQN for ``pretrain_steps`` optimiser steps, then the advantage-weighted actor:

    ``L = mean_b [ w·(ℓ⁺_b + Σ_j ℓ⁻_{b,j}) + ρ_b·A_b·CE_b ]`` with
    ``A_b = Q(s_b,a⁺) − mean_{a ∈ {a⁺} ∪ N_b} Q(s_b,a)`` (detached, clipped to ``adv_clip``; the
    reference's hidden default ``[0, 10]``, ``null`` disables) and the off-policy weight
    ``ρ_b = clip(π(a⁺|s_b)/β(a⁺), ips_clip) ** ips_smooth`` (``ips_smooth = 0``: ρ ≡ 1, the paper's
    main setting). β is item popularity on ``pop_scope`` (train split with add-``pop_smoothing``
    by default; ``all`` with smoothing 0 is the reference). At ``pretrain_steps`` a fresh Adam with
    ``lr_phase2`` (0.001 in the paper) takes over. Steps count optimiser updates over batches of
    transitions, as in the TF code (P-SA2C §3.3 counts T in batches).
    """

    kind: Literal["sa2c"] = "sa2c"
    pretrain_steps: int = Field(15_000, ge=0)
    lr_phase2: float = Field(0.001, gt=0.0)
    adv_clip: tuple[float, float] | None = (0.0, 10.0)
    ips_smooth: float = Field(0.0, ge=0.0, le=1.0)
    ips_clip: tuple[float, float] = (0.1, 10.0)
    pop_scope: PopScope = "train"
    pop_smoothing: float = Field(1.0, ge=0.0)

    @property
    def needs_beta(self) -> bool:
        return self.ips_smooth > 0

    def phases(self) -> list[Phase]:
        return [Phase(0, self.lr), Phase(self.pretrain_steps, self.lr_phase2)]

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = negative_terms(self, inputs)
        # the actor phase's off-policy weight needs π(a|s), the full logits: computed once, for both
        actor = inputs.step >= self.pretrain_steps
        logits = inputs.main.logits(t.s) if actor and self.needs_beta else None
        ce = self.ce(inputs, t.s, logits)
        logs = {"ce": ce.mean().detach(), **t.logs()}
        if not actor:
            return LossOutput((ce + t.td(self.td_weight)).mean(), logs)
        assert t.q_neg is not None
        adv = sa2c_advantage(t.q_pos.detach(), t.q_neg.detach(), self.adv_clip)
        weight = adv
        if self.needs_beta:
            assert inputs.beta is not None, "the trainer must pass item popularity β"
            assert logits is not None
            rho = ips_weight(
                logits,
                inputs.batch.action,
                inputs.beta,
                self.ips_clip,
                self.ips_smooth,
            )
            weight = rho * adv
            logs["rho"] = rho.mean().detach()
        logs["advantage"] = adv.mean().detach()
        return LossOutput((t.td(self.td_weight) + weight * ce).mean(), logs)
