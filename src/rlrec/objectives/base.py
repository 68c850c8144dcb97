"""What every offline objective provides, and the double-Q target machinery the RL ones share.

An objective is a config model (its docstring states the loss and cites the paper) with:

* ``phases()`` — the optimisation schedule: a list of :class:`Phase` (start step, learning rate). A
  phase after the first gets a *fresh* Adam, as the reference does at SA2C's/SAC's switch;
* ``n_negatives`` — how many negative items per transition the trainer samples (P-SA2C §3.2);
* ``double_q`` — whether it trains a pair of networks (P-SA2C Algorithm 1) — and which heads it
  needs;
* ``compute_loss(inputs)`` — the scalar loss and detached scalars to log;
* ``projection_dim`` / ``mask_token`` — extra network parts it trains (contrastive objectives).

Targets are computed under ``no_grad`` with the networks in eval mode (dropout off); the reference
computes them in training mode, available as ``target_dropout: true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator

from rlrec.config import StrictModel
from rlrec.data.transitions import TransitionBatch
from rlrec.models.dropout import global_rows
from rlrec.models.network import QNetwork, rows
from rlrec.objectives.ce_sampling import CECandidates, CESampler
from rlrec.objectives.functional import (
    bootstrap_target,
    cross_entropy,
    sampled_cross_entropy,
    td_loss,
)
from rlrec.objectives.sharding import BatchShard


@dataclass(frozen=True)
class Phase:
    """A stretch of training from ``start`` (optimiser step) with its own Adam at ``lr``."""

    start: int
    lr: float


@dataclass
class LossInputs:
    """Everything a loss may use for one batch.

    ``negatives``: ``[B, K]`` sampled items or ``None``; ``beta``: ``[n]`` item popularity or
    ``None``; ``rng``: the step's seeded CPU generator for the objective's own draws (augmentations),
    the same on every process; ``shard``: set in data-parallel training, where ``batch`` is this
    process's slice of ``shard.full`` (:mod:`rlrec.objectives.sharding`); ``catalogue_stats``:
    whether this step logs statistics of ``Q(s, ·)`` over the whole catalogue (an extra head pass).
    """

    main: QNetwork
    target: QNetwork | None
    batch: TransitionBatch
    negatives: torch.Tensor | None
    step: int
    beta: torch.Tensor | None = None
    rng: torch.Generator | None = None
    shard: BatchShard | None = None
    catalogue_stats: bool = True
    ce_candidates: CECandidates | None = None

    def batch_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Detached mean of a per-sample ``[B]`` tensor over the (global) batch."""
        return x.detach().mean() if self.shard is None else self.shard.mean(x)

    def stacked(self, copies: int) -> AbstractContextManager[None]:
        """Context for a forward pass on ``copies`` stacked copies of the batch (``[s'; s]``): its
        dropout masks are this process's rows of the global stack's."""
        if self.shard is None:
            return nullcontext()
        return global_rows(copies * self.shard.size, self.shard.rows(copies))


@dataclass
class LossOutput:
    """The loss to minimise and detached scalars for the log."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class ObjectiveConfig(StrictModel):
    """Base of every objective config."""

    kind: str
    lr: float = Field(0.01, gt=0.0, description="Adam learning rate of the first phase")
    ce_negatives: int = Field(
        0,
        ge=0,
        description="sampled softmax for the CE head: candidate negatives per batch (0: the full "
        "softmax over the catalogue)",
    )
    ce_sampler: CESampler = Field(
        "uniform", description="how the CE candidates are drawn: uniform, popularity or in_batch"
    )
    ce_logq: bool = Field(
        True, description="log-Q correction of the sampled CE (logit − log N·q of each candidate)"
    )

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
        if self.ce_negatives and not self.needs_ce_head:
            raise ValueError(f"{self.kind} has no CE head: ce_negatives does not apply")
        return self

    def ce(
        self, inputs: LossInputs, s: torch.Tensor, logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``CE_b`` ``[B]`` of the logged actions from the encoded state ``s`` ``[B, H]``: the full
        softmax over the catalogue (over ``logits`` ``[B, n]`` when the caller has them), or the
        sampled softmax over the step's candidates
        (:func:`rlrec.objectives.functional.sampled_cross_entropy`)."""
        c = inputs.ce_candidates
        if c is None:
            full = inputs.main.logits(s) if logits is None else logits
            return cross_entropy(full, inputs.batch.action)
        net = inputs.main
        if net.ce_head is None:
            raise RuntimeError("this network has no CE head")
        action = inputs.batch.action
        return sampled_cross_entropy(
            s,
            rows(net.ce_head, action, net.sparse_ce),
            rows(net.ce_head, c.items, net.sparse_ce),
            action,
            c.items,
            c.log_expected,
        )

    @property
    def n_negatives(self) -> int:
        return 0

    @property
    def projection_dim(self) -> int | None:
        """Output size of a projection head on the state (contrastive objectives), or ``None``."""
        return None

    @property
    def mask_token(self) -> bool:
        """Whether the encoder needs a learned [mask] item (id ``n + 1``) for augmentations."""
        return False

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
    """Settings shared by the double-Q objectives (P-SA2C §3.2, §4.1.4)."""

    double_q: ClassVar[bool] = True
    needs_q_head: ClassVar[bool] = True
    gamma: float = Field(0.5, ge=0.0, le=1.0, description="discount γ")
    r_click: float = 0.2
    r_buy: float = 1.0
    td_loss_scale: float = Field(0.5, gt=0.0, description="TD loss = scale·δ² (trfl: ½)")
    td_weight: float = Field(1.0, ge=0.0, description="w (ω in P-CCQL): weight of the TD terms")
    double_q_mode: Literal["xin_pair", "polyak"] = Field(
        "xin_pair",
        description="xin_pair: two independent nets, random roles each step (reference); "
        "polyak: one online net and a Polyak-averaged target",
    )
    polyak_tau: float = Field(0.01, gt=0.0, le=1.0)
    target_dropout: bool = Field(False, description="compute targets in training mode (reference)")
    target_chunk: int = Field(
        0,
        ge=0,
        description="columns per chunk of the selector's max over the catalogue (0: one pass); "
        "exact, in bounded memory for large catalogues",
    )
    target_max: Literal["catalogue", "candidates"] = Field(
        "catalogue",
        description="where the selector's argmax looks: the whole catalogue (exact) or the step's "
        "sampled-softmax candidates and logged actions (ce_negatives > 0; cheaper, biased low)",
    )

    @model_validator(mode="after")
    def _candidates_exist(self) -> QLearningConfig:
        if self.target_max == "candidates" and not self.ce_negatives:
            raise ValueError("target_max: candidates needs ce_negatives > 0 (they are the set)")
        return self


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


@dataclass
class QTerms:
    """One training-mode pass of the main net on ``s`` and its TD terms (all ``[B]`` unless noted).

    ``net``/``s``: the main network and its encoded state ``[B, H]`` (with gradient), for the Q-values
    a loss needs beyond these (:meth:`q_at`, :meth:`full_q`); ``best_next``: ``argmax_a Q_main(s', a)``,
    the selector's choice for the positive target. ``q_neg``/``td_neg``/``target_neg`` are set when
    negative actions are trained (``[B, K]``, ``[B]`` reduced over K, ``[B]``). ``catalogue``: the
    detached ``Q(s, ·)`` ``[B, n]`` on the steps that log catalogue statistics, else ``None``.
    """

    net: QNetwork
    s: torch.Tensor
    q_pos: torch.Tensor
    td_pos: torch.Tensor
    target_pos: torch.Tensor
    best_next: torch.Tensor
    q_neg: torch.Tensor | None = None
    td_neg: torch.Tensor | None = None
    target_neg: torch.Tensor | None = None
    catalogue: torch.Tensor | None = None

    def q_at(self, items: torch.Tensor) -> torch.Tensor:
        """``Q_main(s, items)`` ``[B, M]`` with gradient, for ``items [B, M]``."""
        return self.net.q_at(self.s, items)

    def full_q(self) -> torch.Tensor:
        """``Q_main(s, ·)`` ``[B, n]`` over the whole catalogue, with gradient."""
        return self.net.q(self.s)

    def td(self, weight: float) -> torch.Tensor:
        """``w·(ℓ⁺ + ℓ⁻)`` per sample (``ℓ⁻ = 0`` without negatives)."""
        return weight * (self.td_pos if self.td_neg is None else self.td_pos + self.td_neg)

    def logs(self) -> dict[str, torch.Tensor]:
        """Detached scalars for the stability log: TD losses, targets and Q-value statistics.

        ``q_pos``: mean Q of the logged actions; ``q_neg``: of the sampled negatives; and on the
        steps with ``catalogue``: ``q_mean`` of the whole catalogue (= the expected Q of a uniformly
        sampled action), ``q_max`` the mean over the batch of ``max_a Q(s, a)`` (what bootstraps),
        ``q_abs_max`` the largest ``|Q|``.
        """
        logs = {
            "td_pos": self.td_pos.mean(),
            "q_pos": self.q_pos.mean(),
            "target_pos": self.target_pos.mean(),
        }
        if (q := self.catalogue) is not None:
            logs.update(
                q_mean=q.mean(),
                q_max=q.amax(dim=1).mean(),
                q_abs_max=torch.maximum(q.amax(), -q.amin()),
            )
        if self.td_neg is not None and self.q_neg is not None and self.target_neg is not None:
            logs.update(
                td_neg=self.td_neg.mean(),
                q_neg=self.q_neg.mean(),
                target_neg=self.target_neg.mean(),
            )
        return {k: v.detach() for k, v in logs.items()}


def best_action(net: QNetwork, s: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """``argmax_a Q(s, a)`` ``[B]`` over the catalogue for encoded states ``s`` ``[B, H]``, the
    lowest index among equal maxima; with ``chunk > 0`` in column chunks of ``chunk`` items, so the
    working memory is ``B × chunk`` instead of ``B × n`` (the same maximum; the chunks' products
    may round differently from one full product)."""
    if chunk <= 0 or chunk >= net.n_items:
        return net.q(s).argmax(dim=1)
    head = net.q_head
    if head is None:
        raise RuntimeError("this network has no Q head")
    best_value = torch.full((s.shape[0],), -torch.inf, device=s.device, dtype=s.dtype)
    best = torch.zeros(s.shape[0], dtype=torch.long, device=s.device)
    for lo in range(0, net.n_items, chunk):
        q = torch.addmm(head.bias[lo : lo + chunk], s, head.weight[lo : lo + chunk].T)
        value, index = q.max(dim=1)
        better = value > best_value  # strictly: an earlier chunk keeps its tie
        best_value = torch.where(better, value, best_value)
        best = torch.where(better, index + lo, best)
    return best


def candidate_pool(candidates: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The items ``target_max: candidates`` maximises over: the step's CE candidates and the
    batch's logged actions, each once, ``[M]``."""
    return torch.unique(torch.cat([candidates, actions]))


def q_terms(
    cfg: QLearningConfig,
    inputs: LossInputs,
    r_negative: float | None = None,
    neg_reduction: Literal["sum", "mean"] = "sum",
) -> QTerms:
    """Main-net pass on ``s``; TD on the positive and, if ``r_negative`` is given, on the negatives.

    Positive (P-SA2C Eq. 4, Algorithm 1): ``ℓ⁺ = scale·(y⁺ − Q_m(s, a⁺))²``,
    ``y⁺ = r + γ·(1 − done)·Q_t(s', argmax Q_m(s'))``. Negative (Eq. 4's second term): a negative
    action leaves the state unchanged, so ``y⁻ = r_neg + γ·Q_t(s, argmax Q_m(s))`` (never masked,
    one target per sample shared by its K negatives) and ``ℓ⁻ = Σ_j`` (or mean)
    ``scale·(y⁻ − Q_m(s, a⁻_j))²``. Targets come from one no-grad pass per network over ``[s'; s]``
    (``[s']`` without negatives).

    Only the Q-values the terms use are computed: the selector's over the catalogue (its argmax;
    with ``target_max: candidates`` over :func:`candidate_pool` only),
    the target network's at that argmax, the main network's at ``a⁺`` and the negatives
    (:meth:`QNetwork.q_at`) — the same values as the full heads up to float rounding.
    """
    b = inputs.batch
    assert inputs.target is not None
    main, target = inputs.main, inputs.target
    s = main(b.state, b.len_state)
    state, lengths = b.next_state, b.len_next_state
    if r_negative is not None:
        state = torch.cat([b.next_state, b.state])
        lengths = torch.cat([b.len_next_state, b.len_state])
    with (
        torch.no_grad(),
        eval_mode(main, target, enabled=not cfg.target_dropout),
        inputs.stacked(1 if r_negative is None else 2),
    ):
        s_next = main(state, lengths)
        if cfg.target_max == "candidates":
            assert inputs.ce_candidates is not None, "the trainer must draw the CE candidates"
            logged = b.action if inputs.shard is None else inputs.shard.full.action
            pool = candidate_pool(inputs.ce_candidates.items, logged)
            best = pool[main.q_at(s_next, pool.expand(s_next.shape[0], -1)).argmax(dim=1)]
        else:
            best = best_action(main, s_next, cfg.target_chunk)
        q_boot = target.q_at(target(state, lengths), best.unsqueeze(1)).squeeze(1)
        catalogue = main.q(s) if inputs.catalogue_stats else None
    n = b.action.shape[0]
    y_pos = bootstrap_target(q_boot[:n], b.reward(cfg.r_click, cfg.r_buy), cfg.gamma, b.done)
    items = b.action.unsqueeze(1)
    if r_negative is not None:
        assert inputs.negatives is not None, "the trainer must sample negatives"
        items = torch.cat([items, inputs.negatives], dim=1)
    q_taken = main.q_at(s, items)  # [B, 1] or [B, 1 + K]
    q_pos = q_taken[:, 0]
    terms = QTerms(
        net=main,
        s=s,
        q_pos=q_pos,
        td_pos=td_loss(q_pos, y_pos, cfg.td_loss_scale),
        target_pos=y_pos,
        best_next=best[:n],
        catalogue=catalogue,
    )
    if r_negative is None:
        return terms
    y_neg = bootstrap_target(q_boot[n:], torch.full_like(y_pos, r_negative), cfg.gamma)
    q_neg = q_taken[:, 1:]
    td_neg = td_loss(q_neg, y_neg.unsqueeze(1).expand_as(q_neg), cfg.td_loss_scale)
    terms.q_neg = q_neg
    terms.td_neg = td_neg.sum(dim=1) if neg_reduction == "sum" else td_neg.mean(dim=1)
    terms.target_neg = y_neg
    return terms
