"""Candidate negatives of the sampled-softmax CE head (``objective.ce_negatives > 0``).

One draw per optimiser step, shared by every row of the batch (one ``[B, N]`` product instead of
``[B, n]``), for the whole global batch so data-parallel processes agree:

* ``uniform``: ``N`` items uniformly with replacement, ``q_j = 1/n``;
* ``popularity``: ``N`` items with replacement from the training popularity ``q`` (add-one
  smoothed counts of the train split, :func:`rlrec.data.popularity.item_popularity`);
* ``in_batch``: the logged actions of the first ``N`` transitions of the (shuffled) batch — draws
  from the training action distribution, with ``q`` its popularity estimate as above.

With the log-Q correction (``ce_logq``, on by default) each candidate's logit is lowered by
``log(N q_j)``, its expected count, which makes the sampled normaliser an unbiased estimate of the
full softmax's (:func:`rlrec.objectives.functional.sampled_cross_entropy`); without it popular
candidates are over-weighted and the model learns to under-score them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

CESampler = Literal["uniform", "popularity", "in_batch"]


@dataclass(frozen=True)
class CECandidates:
    """The step's candidate negatives ``items [N]`` (item indices) and their ``log(N q_j)``
    ``[N]`` (``None`` when the log-Q correction is off)."""

    items: torch.Tensor
    log_expected: torch.Tensor | None


def draw_candidates(
    sampler: CESampler,
    count: int,
    n_items: int,
    actions: torch.Tensor,
    probs: torch.Tensor | None,
    generator: torch.Generator,
    logq: bool,
    device: torch.device,
) -> CECandidates:
    """``count`` candidates for a batch whose logged actions are ``actions [B]`` (CPU);
    ``probs [n]`` the popularity ``q`` (``popularity`` and ``in_batch``); ``generator`` a seeded
    CPU generator."""
    if sampler == "uniform":
        items = torch.randint(0, n_items, (count,), generator=generator)
        q = torch.full((count,), 1.0 / n_items, dtype=torch.float64)
    else:
        if probs is None:
            raise ValueError(f"the {sampler} sampler needs the item popularity")
        if sampler == "popularity":
            items = torch.multinomial(probs, count, replacement=True, generator=generator)
        else:
            if count > actions.shape[0]:
                raise ValueError(f"in_batch: {count} candidates from a batch of {actions.shape[0]}")
            items = actions[:count].to("cpu", torch.long)
        q = probs[items].to(torch.float64)
    log_expected = torch.log(count * q).to(torch.float32).to(device) if logq else None
    return CECandidates(items.to(device), log_expected)
