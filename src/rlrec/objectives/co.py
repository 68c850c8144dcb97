"""SASRec-CO — actor-critic plus a contrastive objective on augmented histories
(P-CCQL §3.4, §4.3)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.models.dropout import global_rows
from rlrec.objectives.augment import Augmentation, augment, real_count
from rlrec.objectives.base import LossInputs, LossOutput, q_terms
from rlrec.objectives.functional import nt_xent, ts2vec_legacy
from rlrec.objectives.sac import SACConfig

DEFAULT_RATIO: dict[str, float] = {
    "reorder": 1.0,
    "mask": 0.3,
    "crop": 0.6,
    "permutation_legacy": 1.0,
}


class ContrastiveConfig(StrictModel):
    """``L_CO``: two views of each history must recognise each other among the batch's views.

    View 1 is the state of the unaugmented history from the loss's own forward pass (the reference);
    with ``both_views_augmented`` both views are augmented (CL4SRec). View 2 is the same network on
    ``augmentation`` of the history (see :mod:`rlrec.objectives.augment`; ``ratio`` defaults to 1.0
    for ``reorder``, 0.3 for ``mask``, 0.6 for ``crop``). ``loss``: ``nt_xent`` (cosine similarity /
    ``temperature``; the CCQL code's RC15 default, τ = 0.07) or ``ts2vec_legacy`` (the CCQL code's
    RetailRocket and SASRec-CO default, for reproduction only). ``projection``: size of an optional
    projection head (the reference has none). Both views carry gradient.
    """

    augmentation: Augmentation = "reorder"
    ratio: float | None = Field(None, gt=0.0, le=1.0)
    loss: Literal["nt_xent", "ts2vec_legacy"] = "nt_xent"
    temperature: float = Field(0.07, gt=0.0)
    weight: float = Field(1.0, ge=0.0, description="λ_co: weight of L_CO in the total loss")
    projection: int | None = Field(None, ge=1)
    both_views_augmented: bool = False

    @property
    def effective_ratio(self) -> float:
        return self.ratio if self.ratio is not None else DEFAULT_RATIO[self.augmentation]


def contrastive_loss(cfg: ContrastiveConfig, inputs: LossInputs, s: torch.Tensor) -> torch.Tensor:
    """``L_CO`` for the batch; ``s``: ``[B, H]`` states of the unaugmented histories.

    Empty histories are left out (except with ``permutation_legacy``, which keeps the reference's
    batch): their views are identical constants that carry no information, and at initialisation
    that constant is the zero vector, whose cosine similarity has an unbounded gradient.

    In data-parallel training every process augments the *global* batch (the same draws as one
    process would make), encodes the views of its own samples and gathers everyone's views, so the
    negatives are the other states of the global batch and the loss is the single-process one.
    """
    if cfg.weight == 0:
        return s.new_zeros(())
    if inputs.rng is None:
        raise RuntimeError("the trainer must pass a seeded generator for the augmentations")
    net, shard = inputs.main, inputs.shard
    everyone = inputs.batch if shard is None else shard.full
    state, len_state = everyone.state, everyone.len_state
    keep = torch.ones_like(len_state, dtype=torch.bool)
    if cfg.augmentation != "permutation_legacy":
        keep = real_count(state, len_state, net.encoder.pad_id) > 0
    if int(keep.sum()) < 2:
        return s.new_zeros(())
    n_views = 2 if cfg.both_views_augmented else 1
    state, len_state = augment(
        cfg.augmentation,
        state[keep].repeat(n_views, 1),
        len_state[keep].repeat(n_views),
        pad_id=net.encoder.pad_id,
        ratio=cfg.effective_ratio,
        gen=inputs.rng,
        mask_id=net.encoder.mask_id,
    )
    if shard is None:
        views = net.project(net(state, len_state))  # one pass for the augmented views
        s = s[keep]
    else:
        own = shard.owns(keep)[keep].repeat(n_views).nonzero().squeeze(1)  # my rows of the views
        with global_rows(state.shape[0], own):
            views = net.project(net(state[own], len_state[own]))
        s = s[keep[shard.start : shard.stop]]
    z1, z2 = views.chunk(2) if n_views == 2 else (net.project(s), views)
    if shard is not None:
        counts = shard.counts(keep)
        z1, z2 = shard.gather(z1, counts), shard.gather(z2, counts)
    if cfg.loss == "nt_xent":
        return nt_xent(z1, z2, cfg.temperature)
    return ts2vec_legacy(z1, z2)


class COConfig(SACConfig):
    """SASRec-CO: ``L = actor + w·mean_b ½δ⁺_b² + λ_co·L_CO`` (P-CCQL §4.3).

    The actor is SAC's (:class:`~rlrec.objectives.sac.SACConfig`): ``mean_b CE_b`` for
    ``warmup_steps``, then the CE weighted by ``sg Q(s, a⁺)`` per sample (``sac_weighting:
    legacy_batch_mean`` for the CCQL code's batch-mean bug), with a fresh Adam. No negative actions.
    CCQL-code defaults: lr 0.01 in both phases, switch at 30,000 steps, batch 256, 60 epochs, no
    gradient clipping; the code's contrastive setting is ``ts2vec_legacy`` + ``permutation_legacy``.
    rlrec's default contrastive setting is NT-Xent on a reorder of the real items.
    """

    kind: Literal["co"] = "co"  # type: ignore[assignment]  # the union's tag
    warmup_steps: int = Field(30_000, ge=0)
    contrastive: ContrastiveConfig = ContrastiveConfig()

    @property
    def projection_dim(self) -> int | None:
        return self.contrastive.projection

    @property
    def mask_token(self) -> bool:
        return self.contrastive.augmentation == "mask"

    def compute_loss(self, inputs: LossInputs) -> LossOutput:
        t = q_terms(self, inputs)
        ce = self.ce(inputs, t.s)
        co = contrastive_loss(self.contrastive, inputs, t.s)
        logs = {"ce": ce.mean().detach(), "contrastive": co.detach(), **t.logs()}
        actor = self.actor_loss(t, ce, inputs, logs)
        loss = actor + t.td(self.td_weight).mean() + self.contrastive.weight * co
        return LossOutput(loss, logs)
