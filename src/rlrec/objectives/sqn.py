"""SQN — Self-supervised Q-learning (Xin et al., SIGIR'20; a baseline of P-SA2C §4.1.3)."""

from __future__ import annotations

from typing import Literal

from rlrec.objectives.base import LossInputs, LossOutput, QLearningConfig, q_terms


class SQNConfig(QLearningConfig):
    """``L = mean_b [ CE_b + w·½(y_b − Q_m(s_b, a_b))² ]``, ``y = r + γ·Q_t(s', argmax Q_m(s'))``.

    The Q head is trained only on logged actions, so it is biased upward and not used for ranking
    (the CE head is). Reference lr 0.01 (RC15) / 0.005 (RetailRocket), ``w = 1``.
    """

    kind: Literal["sqn"] = "sqn"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = q_terms(self, inputs)
        ce = self.ce(inputs, t.s)
        loss = (ce + t.td(self.td_weight)).mean()
        return LossOutput(loss, {"ce": ce.mean().detach(), **t.logs()})
