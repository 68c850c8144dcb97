"""SNQN — Supervised Negative Q-learning (Xin et al., WSDM'22, Eq. 4–5, Algorithm 1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, QLearningConfig, QTerms, q_terms


class NegativeSampling(QLearningConfig):
    """Negative actions (P-SA2C §3.2, §4.1.4): ``num_negatives`` uniform items per transition, never
    the positive."""

    num_negatives: int = Field(10, ge=1)
    r_negative: float = Field(0.0, description="reward of a sampled negative action (paper: 0)")
    neg_reduction: Literal["sum", "mean"] = Field(
        "sum", description="sum over the K negatives (reference) or their mean"
    )
    exclude_history: bool = Field(
        False, description="also never sample items of the state (the reference allows them)"
    )

    @property
    def n_negatives(self) -> int:
        return self.num_negatives


def negative_terms(cfg: NegativeSampling, inputs: LossInputs) -> QTerms:
    """:func:`q_terms` with TD on the positive and on the K sampled negatives (P-SA2C Eq. 4)."""
    return q_terms(cfg, inputs, cfg.r_negative, cfg.neg_reduction)


class SNQNConfig(NegativeSampling):
    """``L = mean_b [ CE_b + w·(ℓ⁺_b + Σ_{j≤K} ℓ⁻_{b,j}) ]`` (Xin et al. WSDM'22, Eq. 4–5).

    Negative actions bootstrap on the current state (they do not change it). Recommendations come
    from the CE head (``eval_head: q`` gives the Table-4 variant). Reference lr 0.01 (RC15) /
    0.005 (RetailRocket), 50 epochs.
    """

    kind: Literal["snqn"] = "snqn"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = negative_terms(self, inputs)
        ce = self.ce(inputs, t.s)
        loss = (ce + t.td(self.td_weight)).mean()
        return LossOutput(loss, {"ce": ce.mean().detach(), **t.logs()})
