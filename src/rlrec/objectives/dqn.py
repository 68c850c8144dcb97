"""DQN with negative sampling (Xin et al., WSDM'22, §4.3 and Table 4 "DQN")."""

from __future__ import annotations

from typing import ClassVar, Literal

from rlrec.objectives.base import LossInputs, LossOutput
from rlrec.objectives.snqn import NegativeSampling, negative_terms


class DQNConfig(NegativeSampling):
    """``L = mean_b [ ℓ⁺_b + Σ_j ℓ⁻_{b,j} ]`` — SNQN's TD terms alone, no CE head; ranks by Q.

    ``r_negative`` defaults to 0 as the paper states (P-SA2C §4.3: the same hyper-parameters as
    SNQN; P-SA2C §4.1.4: ``r_n = 0``); the reference script's default is −1 (set
    ``r_negative: -1.0`` to reproduce it). Script defaults: 300 epochs, lr 0.01 (RC15) / 0.001
    (RetailRocket).
    """

    kind: Literal["dqn"] = "dqn"
    needs_ce_head: ClassVar[bool] = False
    eval_head: Literal["ce", "q"] = "q"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = negative_terms(self, inputs)
        return LossOutput(t.td(self.td_weight).mean(), t.logs())
