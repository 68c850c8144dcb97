"""SNQN — Supervised Negative Q-learning (Xin et al., WSDM'22, Eq. 4–5; spec-offline §C.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, QLearningConfig, q_targets
from rlrec.objectives.functional import cross_entropy, td_loss


class NegativeSampling(QLearningConfig):
    """Negative actions (§C.0.6): ``num_negatives`` uniform items per transition, never the positive."""

    num_negatives: int = Field(10, ge=1)
    r_negative: float = Field(0.0, description="reward of a sampled negative action (paper: 0)")
    neg_reduction: Literal["sum", "mean"] = Field(
        "sum", description="sum over the K negatives (reference) or their mean"
    )
    exclude_history: bool = Field(
        False, description="also never sample items of the state (the reference allows them)"
    )
    td_weight: float = Field(1.0, ge=0.0, description="w: weight of the TD terms")

    @property
    def n_negatives(self) -> int:
        return self.num_negatives


@dataclass
class NegativeTerms:
    """Per-sample pieces (``[B]``; ``q_neg`` ``[B, K]``) shared by SNQN, SA2C and DQN."""

    q: torch.Tensor
    s: torch.Tensor
    q_pos: torch.Tensor
    q_neg: torch.Tensor
    td_pos: torch.Tensor
    td_neg: torch.Tensor
    target_pos: torch.Tensor
    target_neg: torch.Tensor

    def td(self, weight: float) -> torch.Tensor:
        return weight * (self.td_pos + self.td_neg)

    def logs(self) -> dict[str, torch.Tensor]:
        return {
            "td_pos": self.td_pos.mean().detach(),
            "td_neg": self.td_neg.mean().detach(),
            "q_pos": self.q_pos.mean().detach(),
            "q_neg": self.q_neg.mean().detach(),
            "target_pos": self.target_pos.mean().detach(),
            "target_neg": self.target_neg.mean().detach(),
            "q_abs_max": torch.maximum(self.q_pos.abs().max(), self.q_neg.abs().max()).detach(),
        }


def negative_terms(cfg: NegativeSampling, inputs: LossInputs) -> NegativeTerms:
    """Main-net pass on ``s``; TD on the positive (bootstrap ``s'``) and the K negatives (on ``s``).

    ``ℓ⁻_{b,j} = ½(y⁻_b − Q_m(s_b, a⁻_{b,j}))²`` with ``y⁻_b = r_neg + γ·Q_t(s_b, argmax Q_m(s_b))``,
    reduced over j by ``neg_reduction``.
    """
    assert inputs.negatives is not None, "the trainer must sample negatives"
    b = inputs.batch
    s = inputs.main(b.state, b.len_state)
    q = inputs.main.q(s)
    y_pos, y_neg = q_targets(cfg, inputs, b.reward(cfg.r_click, cfg.r_buy), cfg.r_negative)
    assert y_neg is not None
    q_pos = q.gather(1, b.action.unsqueeze(1)).squeeze(1)
    q_neg = q.gather(1, inputs.negatives)
    td_neg = td_loss(q_neg, y_neg.unsqueeze(1).expand_as(q_neg), cfg.td_loss_scale)
    td_neg = td_neg.sum(dim=1) if cfg.neg_reduction == "sum" else td_neg.mean(dim=1)
    return NegativeTerms(
        q=q,
        s=s,
        q_pos=q_pos,
        q_neg=q_neg,
        td_pos=td_loss(q_pos, y_pos, cfg.td_loss_scale),
        td_neg=td_neg,
        target_pos=y_pos,
        target_neg=y_neg,
    )


class SNQNConfig(NegativeSampling):
    """``L = mean_b [ CE_b + w·(ℓ⁺_b + Σ_{j≤K} ℓ⁻_{b,j}) ]`` (Xin et al. WSDM'22, Eq. 4–5).

    Negative actions bootstrap on the current state (they do not change it). Recommendations come
    from the CE head (``eval_head: q`` gives the Table-4 variant). Reference lr 0.01 (RC15) /
    0.005 (RetailRocket), 50 epochs.
    """

    kind: Literal["snqn"] = "snqn"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = negative_terms(self, inputs)
        ce = cross_entropy(inputs.main.logits(t.s), inputs.batch.action)
        loss = (ce + t.td(self.td_weight)).mean()
        return LossOutput(loss, {"ce": ce.mean().detach(), **t.logs()})
