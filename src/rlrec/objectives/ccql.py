"""SASRec-CCQL — contrastive + conservative Q-learning on sampled negatives (P-CCQL §3.3–§3.4,
Eq. 2 and 4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, q_terms
from rlrec.objectives.co import COConfig, contrastive_loss
from rlrec.objectives.functional import cql_full, cql_legacy, cql_sampled
from rlrec.objectives.snqn import NegativeSampling

CQLVariant = Literal["sampled", "full", "legacy"]


class CCQLConfig(COConfig, NegativeSampling):
    """``L = actor + ω·mean_b ½δ⁺_b² + α·mean_b CQL_b + λ_co·L_CO`` (P-CCQL Eq. 4).

    ``cql_variant`` (docs/conservative.md):

    * ``sampled`` (default, the paper): ``CQL_b = τ·logsumexp_{a ∈ {a⁺} ∪ N_b} Q(s_b,a)/τ − Q(s_b,a⁺)``
      over ``num_negatives`` uniform negatives, none of them an item of the state
      (``exclude_history``, the paper; the authors' code samples from the whole catalogue) —
      it pushes the Q-values of unobserved items down relative to the logged one;
    * ``full``: the log-sum-exp over the whole catalogue (the original CQL's ``log Σ_a exp Q``);
    * ``legacy``: the CCQL code literally — ``c = [Q(s,a*), Q(s,a⁺), float(a*)]`` with
      ``a* = argmax Q_main(s')``, the item index acting as a Q-value; the negatives reach no loss and
      the term only raises ``Q(s,a⁺)``.

    The actor, the phases and the contrastive term are SASRec-CO's; ``negative_td`` adds SNQN's TD on
    the sampled negatives (not part of P-CCQL; the CCQL code samples negatives but never uses them,
    so its ``r_negative`` is dead). CCQL-code defaults (RC15): lr 0.005, ``lr_phase2`` 0.001, switch
    at 15,000 steps, α = 0.01, τ = 0.5, K = 10, NT-Xent τ = 0.07 + permutation, and every gradient
    clamped to [−1, 1] (``train.grad_clip_value: 1.0``). RetailRocket overrides: batch 512, lr 0.01,
    ``lr_phase2`` 0.01, switch 50,000, ``ts2vec_legacy``.
    """

    kind: Literal["ccql"] = "ccql"  # type: ignore[assignment]  # the union's tag
    lr: float = Field(0.005, gt=0.0, description="Adam learning rate of the first phase")
    warmup_steps: int = Field(15_000, ge=0)
    lr_phase2: float | None = Field(0.001, gt=0.0)
    cql_variant: CQLVariant = "sampled"
    cql_alpha: float = Field(0.01, ge=0.0, description="α: weight of the conservative term")
    cql_temperature: float = Field(0.5, gt=0.0, description="τ of the log-sum-exp")
    negative_td: bool = Field(False, description="also train SNQN's TD on the sampled negatives")
    exclude_history: bool = Field(
        True,
        description="never sample an item of the state as a negative: P-CCQL samples negatives "
        "among items the user did not interact with (P-CCQL §3.3); false = the authors' code",
    )

    @property
    def n_negatives(self) -> int:
        return self.num_negatives if self.cql_variant == "sampled" or self.negative_td else 0

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        b = inputs.batch
        t = q_terms(self, inputs, self.r_negative if self.negative_td else None, self.neg_reduction)
        ce = self.ce(inputs, t.s)
        co = contrastive_loss(self.contrastive, inputs, t.s)
        tau = self.cql_temperature
        if self.cql_variant == "sampled":
            assert inputs.negatives is not None, "the trainer must sample negatives"
            q_neg = t.q_neg if t.q_neg is not None else t.q_at(inputs.negatives)
            cql = cql_sampled(t.q_pos, q_neg, tau)
        elif self.cql_variant == "full":
            cql = cql_full(t.full_q(), b.action, tau)
        else:
            q_best = t.q_at(t.best_next.unsqueeze(1)).squeeze(1)
            cql = cql_legacy(q_best, t.q_pos, t.best_next, tau)
        logs = {"ce": ce.mean().detach(), "contrastive": co.detach(), "cql": cql.mean().detach()}
        logs.update(t.logs())
        if self.cql_variant == "sampled" and "q_neg" not in logs:
            logs["q_neg"] = q_neg.mean().detach()
        actor = self.actor_loss(t, ce, inputs, logs)
        loss = (
            actor
            + t.td(self.td_weight).mean()
            + self.cql_alpha * cql.mean()
            + self.contrastive.weight * co
        )
        return LossOutput(loss, logs)
