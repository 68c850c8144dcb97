"""SQN — Self-supervised Q-learning (Xin et al., SIGIR'20; spec-offline §C.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlrec.objectives.base import LossInputs, LossOutput, QLearningConfig, q_targets
from rlrec.objectives.functional import cross_entropy, td_loss


@dataclass
class PositiveTerms:
    """Per-sample pieces shared by SQN and SAC (all ``[B]``; ``q``/``logits`` ``[B, n]``)."""

    q: torch.Tensor
    logits: torch.Tensor
    ce: torch.Tensor
    q_pos: torch.Tensor
    td_pos: torch.Tensor
    target_pos: torch.Tensor


def positive_terms(cfg: QLearningConfig, inputs: LossInputs) -> PositiveTerms:
    """One training-mode pass of the main net on ``s`` plus the positive double-Q target."""
    b = inputs.batch
    s = inputs.main(b.state, b.len_state)
    q = inputs.main.q(s)
    logits = inputs.main.logits(s)
    y, _ = q_targets(cfg, inputs, b.reward(cfg.r_click, cfg.r_buy))
    q_pos = q.gather(1, b.action.unsqueeze(1)).squeeze(1)
    return PositiveTerms(
        q=q,
        logits=logits,
        ce=cross_entropy(logits, b.action),
        q_pos=q_pos,
        td_pos=td_loss(q_pos, y, cfg.td_loss_scale),
        target_pos=y,
    )


class SQNConfig(QLearningConfig):
    """``L = mean_b [ CE_b + ½(y_b − Q_m(s_b, a_b))² ]``, ``y = r + γ·Q_t(s', argmax Q_m(s'))``.

    The Q head is trained only on logged actions, so it is biased upward and not used for ranking
    (the CE head is). Reference lr 0.01 (RC15) / 0.005 (RetailRocket).
    """

    kind: Literal["sqn"] = "sqn"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = positive_terms(self, inputs)
        loss = (t.ce + t.td_pos).mean()
        return LossOutput(loss, _logs(t))


def _logs(t: PositiveTerms) -> dict[str, torch.Tensor]:
    return {
        "ce": t.ce.mean().detach(),
        "td_pos": t.td_pos.mean().detach(),
        "q_pos": t.q_pos.mean().detach(),
        "target_pos": t.target_pos.mean().detach(),
        "q_pos_max": t.q_pos.abs().max().detach(),
    }
