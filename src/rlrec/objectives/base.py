"""What every offline objective provides, and the double-Q target machinery the RL ones share.

An objective is a config model (its docstring states the loss and cites the paper) with:

* ``phases()`` — the optimisation schedule: a list of :class:`Phase` (start step, learning rate). A
  phase after the first gets a *fresh* Adam, as the reference does at SA2C's/SAC's switch (§F.13);
* ``n_negatives`` — how many negative items per transition the trainer samples (§C.0.6);
* ``double_q`` — whether it trains a pair of networks (§C.0.4) — and which heads it needs;
* ``compute_loss(inputs)`` — the scalar loss and detached scalars to log.

Targets are computed under ``no_grad`` with the networks in eval mode (dropout off); the reference
computes them in training mode, available as ``target_dropout: true`` (§F.9).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator

from rlrec.config import StrictModel
from rlrec.data.transitions import TransitionBatch
from rlrec.models.network import QNetwork
from rlrec.objectives.functional import double_q_target


@dataclass(frozen=True)
class Phase:
    """A stretch of training from ``start`` (optimiser step) with its own Adam at ``lr``."""

    start: int
    lr: float


@dataclass
class LossInputs:
    """Everything a loss may use for one batch (``negatives``: ``[B, K]`` or ``None``)."""

    main: QNetwork
    target: QNetwork | None
    batch: TransitionBatch
    negatives: torch.Tensor | None
    step: int
    beta: torch.Tensor | None = None


@dataclass
class LossOutput:
    """The loss to minimise and detached scalars for the log."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class ObjectiveConfig(StrictModel):
    """Base of every objective config."""

    kind: str
    lr: float = Field(0.01, gt=0.0, description="Adam learning rate of the first phase")

    double_q: ClassVar[bool] = False
    needs_q_head: ClassVar[bool] = False
    needs_ce_head: ClassVar[bool] = True
    eval_head: Literal["ce", "q"] = Field("ce", description="head that ranks items at evaluation")

    @model_validator(mode="after")
    def _head_exists(self) -> ObjectiveConfig:
        if self.eval_head == "ce" and not self.needs_ce_head:
            raise ValueError(f"{self.kind} has no CE head: use eval_head: q")
        if self.eval_head == "q" and not self.needs_q_head:
            raise ValueError(f"{self.kind} has no Q head: use eval_head: ce")
        return self

    @property
    def n_negatives(self) -> int:
        return 0

    def phases(self) -> list[Phase]:
        return [Phase(0, self.lr)]

    def phase_index(self, step: int) -> int:
        """Index of the phase that optimiser step ``step`` (0-based) belongs to."""
        index = 0
        for i, phase in enumerate(self.phases()):
            if step >= phase.start:
                index = i
        return index

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        raise NotImplementedError


class QLearningConfig(ObjectiveConfig):
    """Settings shared by the double-Q objectives (spec-offline §C.0, §D.1)."""

    double_q: ClassVar[bool] = True
    needs_q_head: ClassVar[bool] = True
    gamma: float = Field(0.5, ge=0.0, le=1.0, description="discount γ")
    r_click: float = 0.2
    r_buy: float = 1.0
    td_loss_scale: float = Field(0.5, gt=0.0, description="TD loss = scale·δ² (trfl: ½)")
    double_q_mode: Literal["xin_pair", "polyak"] = Field(
        "xin_pair",
        description="xin_pair: two independent nets, random roles each step (reference); "
        "polyak: one online net and a Polyak-averaged target",
    )
    polyak_tau: float = Field(0.01, gt=0.0, le=1.0)
    target_dropout: bool = Field(False, description="compute targets in training mode (reference)")


@contextmanager
def eval_mode(*nets: QNetwork | None, enabled: bool = True) -> Iterator[None]:
    """Temporarily put networks in eval mode (restoring their previous mode)."""
    nets_ = [n for n in nets if n is not None]
    previous = [n.training for n in nets_]
    try:
        if enabled:
            for n in nets_:
                n.eval()
        yield
    finally:
        for n, mode in zip(nets_, previous, strict=True):
            n.train(mode)


def q_targets(
    cfg: QLearningConfig,
    inputs: LossInputs,
    reward: torch.Tensor,
    r_negative: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Double-Q targets for the positive action and, if ``r_negative`` is given, for negatives.

    Positive (§C.0.5): bootstrap on ``s'``, selector ``argmax Q_main(s')``, value ``Q_target(s')``,
    zeroed when done. Negative (§C.4): bootstrap on the *current* state ``s`` (a negative action
    leaves the state unchanged), never masked; one target per sample, shared by its K negatives.
    One no-grad pass per network over ``[s'; s]`` serves both. Returns ``([B], [B] | None)``.
    """
    assert inputs.target is not None
    b = inputs.batch
    with torch.no_grad(), eval_mode(inputs.main, inputs.target, enabled=not cfg.target_dropout):
        state = b.next_state
        lengths = b.len_next_state
        if r_negative is not None:
            state = torch.cat([b.next_state, b.state])
            lengths = torch.cat([b.len_next_state, b.len_state])
        q_sel = inputs.main.q(inputs.main(state, lengths))
        q_val = inputs.target.q(inputs.target(state, lengths))
    n = b.action.shape[0]
    y_pos = double_q_target(q_sel[:n], q_val[:n], reward, cfg.gamma, b.done)
    if r_negative is None:
        return y_pos, None
    r_neg = torch.full_like(reward, r_negative)
    return y_pos, double_q_target(q_sel[n:], q_val[n:], r_neg, cfg.gamma)
