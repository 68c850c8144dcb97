"""Supervised next-item baseline (P-SA2C Eq. 2): the GRU/Caser/NItNet/SASRec rows of the tables."""

from __future__ import annotations

from typing import Literal

from rlrec.objectives.base import LossInputs, LossOutput, ObjectiveConfig


class SupervisedConfig(ObjectiveConfig):
    """``L = mean_b CE_b`` — softmax cross-entropy over the full catalogue on the next item.

    Clicks and purchases are equal targets. One network, one Adam.
    """

    kind: Literal["supervised"] = "supervised"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        b = inputs.batch
        ce = self.ce(inputs, inputs.main(b.state, b.len_state))
        loss = ce.mean()
        return LossOutput(loss, {"ce": loss.detach()})
