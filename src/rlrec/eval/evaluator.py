"""Full-catalogue evaluation of a scoring function on every event of a split (docs/offline.md, Evaluation).

:func:`evaluate` walks the events of a :class:`~rlrec.data.transitions.Transitions` in order, in batches
of events (not sessions) sized so that one ``[B, n_items]`` score matrix stays below
``max_score_elements``; scores **every** event, including the first of each session whose history is
empty; ranks the target by comparison with its own score (:func:`target_rank_stats`: one
``>`` and one ``==`` pass, ``O(n)`` per row, cheaper than the reference's full ``argsort`` and than
``topk``); and accumulates the metrics of P-SA2C §4.1.2 and Eq. 11 with :class:`~rlrec.eval.metrics.MetricAccumulator`.
A linear head (:class:`LinearScores`) is ranked without the ``[B, n_items]`` matrix: the catalogue is
scored in column chunks that stay in cache and compared as they come
(:func:`~rlrec.eval.metrics.linear_rank_stats`), with the same counts.

Ties are resolved by ``EvalConfig.ties``: by default (``"expected"``) every metric is its expectation
under uniformly random tie-breaking, so a constant-score model gets HR@k = k/n, not 1; the share of
tied targets is reported as ``tied_target_share`` and :func:`~rlrec.eval.metrics.degenerate_warning`
turns a share above 1 % into a warning.

:func:`top_k` serves recommendation lists (``torch.topk`` with an optional column-chunked variant for
very large catalogues).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from rlrec.config import StrictModel
from rlrec.data.popularity import PopScope
from rlrec.data.transitions import Transitions, history_window
from rlrec.eval.lists import ListAccumulator, linear_ranked_top, ranked_top
from rlrec.eval.metrics import (
    MetricAccumulator,
    Ties,
    head_bound,
    linear_rank_stats,
    target_rank_stats,
)
from rlrec.eval.sampled import NegativeSampler, Protocol, candidate_scores, check_protocol

ListMetric = Literal["coverage", "diversity", "novelty"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(state [B, L] int64, len_state [B] int64) -> [B, n_items]`` float scores."""

CPU_CHUNK_ELEMENTS = 2**20
"""Size of the ``[B, chunk]`` score buffer of :class:`LinearScores` on CPU: 4 MiB of float32,
split between the threads (2 MiB each on 2 cores, a core's L2), so a chunk stays in cache between
the product and the counts (measured: 1,024 columns at batch 1,024 beat 256 and 4,096)."""


@dataclass(frozen=True)
class LinearScores:
    """Scores that are a linear head over an encoded state, ``encode(state, len_state) @ weight.T +
    bias`` — every offline network here (P-SA2C Eq. 3). :func:`evaluate` then ranks the targets in
    column chunks (:func:`~rlrec.eval.metrics.linear_rank_stats`) instead of materialising
    ``[B, n_items]`` scores: same metrics, bounded memory, several times faster on large catalogues.

    ``encode``: ``(state [B, L] int64, len_state [B] int64) -> [B, d]``; ``weight``: ``[n_items, d]``;
    ``bias``: ``[n_items]`` or ``None``.
    """

    encode: ScoreFn
    weight: torch.Tensor
    bias: torch.Tensor | None = None

    def scores(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        """The full ``[B, n_items]`` scores (for callers that need them; evaluation does not)."""
        h = self.encode(state, len_state)
        if self.bias is None:
            return h @ self.weight.t()
        return torch.addmm(self.bias, h, self.weight.t())


class EvalConfig(StrictModel):
    """Evaluation settings (docs/offline.md, Evaluation).

    A linear head (:class:`LinearScores`, every offline network) is ranked ``batch_size`` events at
    a time in column chunks of a 4 MiB buffer on CPU (``max_score_elements`` on an accelerator). Any
    other score function is called on ``max(1, min(batch_size, max_score_elements // n_items))``
    events at a time, so a 1,000,000-item catalogue is scored in bounded memory (2**26 float32
    scores = 256 MiB).

    ``ties``: ``"expected"`` (default) — metrics in expectation under uniformly random tie-breaking;
    ``"pessimistic"`` — the target loses every tie (a lower bound); ``"optimistic"`` — it wins every
    tie, as an unstable sort may happen to give (an upper bound that scores a constant model
    HR = NDCG = 1; for comparison only).

    ``ng_off_pop_scope`` / ``ng_off_pop_smoothing``: the item popularity β of ``NG_off`` (P-SA2C
    Eq. 11), with the same options as SA2C's β (the train split with add-one smoothing by default).

    ``protocol``: ``"full"`` (default) ranks the target against the whole catalogue, the papers'
    protocol; ``"uni100"`` / ``"pop100"`` against 100 negatives sampled uniformly / by training
    popularity (:mod:`rlrec.eval.sampled`), drawn from ``sample_seed``. It applies to the rank
    metrics (HR, NDCG, MRR, reward, ``NG_off``).

    ``list_metrics``: opt-in metrics of the full-catalogue top-``k`` lists (:mod:`rlrec.eval.lists`):
    ``coverage``, ``diversity`` (of the ranking head's item rows: ``diversity_head@k``) and
    ``novelty`` (self-information under training popularity). They need each event's top-k list,
    which costs a top-k selection per event on top of the ranking.
    """

    ks: tuple[int, ...] = (5, 10, 20)
    ties: Ties = "expected"
    r_click: float = 0.2
    r_buy: float = 1.0
    ng_off_k: int = Field(default=10, gt=0)
    ng_off_pop_scope: PopScope = "train"
    ng_off_pop_smoothing: float = Field(default=1.0, ge=0.0)
    batch_size: int = Field(default=1024, gt=0)
    max_score_elements: int = Field(default=2**26, gt=0)
    protocol: Protocol = "full"
    sample_seed: int = 0
    list_metrics: tuple[ListMetric, ...] = ()

    @field_validator("ks")
    @classmethod
    def _sorted_positive(cls, ks: tuple[int, ...]) -> tuple[int, ...]:
        if not ks or min(ks) < 1:
            raise ValueError("ks must be a non-empty list of positive cut-offs")
        return tuple(sorted(set(ks)))

    @field_validator("list_metrics")
    @classmethod
    def _unique(cls, names: tuple[ListMetric, ...]) -> tuple[ListMetric, ...]:
        return tuple(dict.fromkeys(names))

    def effective_batch(self, n_items: int) -> int:
        """Events per batch for a catalogue of ``n_items`` columns."""
        return max(1, min(self.batch_size, self.max_score_elements // n_items))


def evaluate(
    score_fn: ScoreFn | LinearScores,
    transitions: Transitions,
    cfg: EvalConfig,
    n_items: int,
    propensity: np.ndarray | None = None,
    popularity: np.ndarray | None = None,
) -> dict[str, float]:
    """Score every event of ``transitions`` and return the metrics of :meth:`MetricAccumulator.compute`
    (and of :meth:`~rlrec.eval.lists.ListAccumulator.compute` for ``cfg.list_metrics``).

    ``score_fn`` must return ``[B, n_items]`` scores for the real items (no pad column), or be a
    :class:`LinearScores`, ranked in column chunks of a cache-sized buffer; the caller puts
    the model in eval mode, this function runs it under ``torch.inference_mode()`` on the transitions'
    device. ``propensity``: optional ``[n_items]`` β for ``NG_off`` (P-SA2C Eq. 11). ``popularity``:
    ``[n_items]`` training-split item probabilities, strictly positive (add-one smoothed), needed by
    ``protocol="pop100"`` (the negatives' distribution) and by the ``novelty`` list metric. The
    ``diversity`` list metric uses the rows of a :class:`LinearScores` head. The result includes
    ``tied_target_share``; pass it to :func:`~rlrec.eval.metrics.degenerate_warning` to flag a
    degenerate (constant or collapsed) model.
    """
    for name, arr in (("propensity", propensity), ("popularity", popularity)):
        if arr is not None and len(arr) != n_items:
            raise ValueError(f"{name} has {len(arr)} entries, expected n_items = {n_items}")
    check_protocol(cfg.protocol, n_items)
    tr = transitions
    device = tr.items.device
    n_events = len(tr)
    session = torch.unique_consecutive(tr.start, return_inverse=True)[1]
    acc = MetricAccumulator(
        cfg.ks,
        r_click=cfg.r_click,
        r_buy=cfg.r_buy,
        n_sessions=int(session[-1]) + 1 if n_events else 0,
        propensity=propensity,
        ng_off_k=cfg.ng_off_k,
        ties=cfg.ties,
    )
    linear = isinstance(score_fn, LinearScores)
    if linear and score_fn.weight.shape[0] != n_items:
        raise ValueError(
            f"weight has {score_fn.weight.shape[0]} rows, expected n_items = {n_items}"
        )
    sampler = _sampler(cfg, tr, n_items, popularity)
    lists = _list_accumulator(cfg, n_items, score_fn, popularity)
    step = cfg.batch_size if linear else cfg.effective_batch(n_items)
    chunk = _chunk_columns(step, n_items, device, cfg.max_score_elements)
    bound = head_bound(score_fn.weight, score_fn.bias) if linear else None
    with torch.inference_mode():
        for lo in range(0, n_events, step):
            pos = torch.arange(lo, min(lo + step, n_events), device=device)
            start = tr.start[lo : lo + step]
            # The state half of Transitions.batch(pos); next_state is not needed for scoring.
            state, len_state = history_window(
                tr.items, start, pos, tr.state_size, tr.pad_id, tr.padding
            )
            target = tr.items[lo : lo + step]
            scores: torch.Tensor | None = None
            h: torch.Tensor | None = None
            weight: torch.Tensor | None = None
            bias: torch.Tensor | None = None
            if isinstance(score_fn, LinearScores):
                h = score_fn.encode(state, len_state)
                weight, bias = score_fn.weight, score_fn.bias
            else:
                scores = score_fn(state, len_state)
                if scores.shape != (len(pos), n_items):
                    raise ValueError(
                        f"score_fn returned shape {tuple(scores.shape)}, "
                        f"expected ({len(pos)}, {n_items})"
                    )
            if sampler is not None:
                negatives = torch.from_numpy(sampler.rows(lo, lo + len(pos))).to(device)
                candidates = torch.cat([target.unsqueeze(1), negatives], dim=1)
                sampled = candidate_scores(scores, h, weight, bias, candidates)
                greater, tied = target_rank_stats(sampled, torch.zeros_like(target))
            elif h is not None:
                assert weight is not None
                greater, tied = linear_rank_stats(h, weight, bias, target, chunk, bound)
            else:
                assert scores is not None
                greater, tied = target_rank_stats(scores, target)
            acc.update(
                greater + 1,
                tr.is_buy[lo : lo + step],
                target,
                session[lo : lo + step],
                empty_history=pos == start,
                n_tied=tied,
            )
            if lists is not None:
                if h is not None:  # wide chunks: topk gains nothing from a cache-sized buffer
                    assert weight is not None
                    wide = max(chunk, cfg.max_score_elements // len(h))
                    top = linear_ranked_top(h, weight, bias, lists.k_max, wide)
                else:
                    assert scores is not None
                    top = ranked_top(torch.nan_to_num(scores, nan=-torch.inf), lists.k_max)[1]
                lists.update(top)
    return acc.compute() | (lists.compute() if lists is not None else {})


def _sampler(
    cfg: EvalConfig, tr: Transitions, n_items: int, popularity: np.ndarray | None
) -> NegativeSampler | None:
    """The negatives of a sampled ``cfg.protocol`` for every event of ``tr`` (``None``: full)."""
    if cfg.protocol == "full":
        return None
    if cfg.protocol == "pop100" and popularity is None:
        raise ValueError("protocol 'pop100' needs the training popularity (popularity=...)")
    probs = popularity if cfg.protocol == "pop100" else None
    targets = tr.items[: len(tr)].cpu().numpy()
    return NegativeSampler(targets, n_items, probs=probs, seed=cfg.sample_seed)


def _list_accumulator(
    cfg: EvalConfig,
    n_items: int,
    score_fn: ScoreFn | LinearScores | None,
    popularity: np.ndarray | None,
) -> ListAccumulator | None:
    """The accumulator of ``cfg.list_metrics`` (``None`` when none is asked for); ``score_fn``
    ``None`` builds one for the key names only."""
    if not cfg.list_metrics:
        return None
    vectors = None
    if "diversity" in cfg.list_metrics:
        if isinstance(score_fn, LinearScores):
            vectors = score_fn.weight
        elif score_fn is None:
            vectors = torch.zeros(n_items, 1)
        else:
            raise ValueError("the diversity list metric needs item vectors: pass a LinearScores")
    if "novelty" in cfg.list_metrics:
        if popularity is None:
            if score_fn is not None:
                raise ValueError("the novelty list metric needs the training popularity")
            popularity = np.ones(n_items)
    else:
        popularity = None
    return ListAccumulator(
        cfg.ks,
        n_items,
        coverage="coverage" in cfg.list_metrics,
        vectors=vectors,
        label="head",
        popularity=popularity,
    )


def _chunk_columns(batch: int, n_items: int, device: torch.device, max_elements: int) -> int:
    """Columns per chunk of :class:`LinearScores`: a cache-sized buffer on CPU; on an accelerator,
    whose memory bandwidth makes chunks pointless, as wide as ``max_score_elements`` allows."""
    budget = CPU_CHUNK_ELEMENTS if device.type == "cpu" else max_elements
    return max(1, min(n_items, budget // batch, 1 << 22))  # float sums of ±1 stay exact


def metric_names(cfg: EvalConfig, *, ng_off: bool) -> set[str]:
    """The keys :func:`evaluate` returns under ``cfg`` (``ng_off``: with a propensity)."""
    acc = MetricAccumulator(
        cfg.ks,
        r_click=cfg.r_click,
        r_buy=cfg.r_buy,
        n_sessions=0,
        propensity=np.ones(1) if ng_off else None,
        ng_off_k=cfg.ng_off_k,
        ties=cfg.ties,
    )
    lists = _list_accumulator(cfg, max(cfg.ks), None, None)
    return set(acc.compute()) | (set(lists.compute()) if lists is not None else set())


def top_k(
    scores: torch.Tensor, k: int, *, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items per row of ``scores [B, n]``: ``(values [B, k], indices [B, k])``, best first.

    With ``chunk_size`` the columns are processed in chunks: ``topk`` inside each chunk, then one final
    ``topk`` over the ``≤ k`` candidates per chunk, which bounds the working memory of the selection
    for very large catalogues. Same values as ``torch.topk``; same indices when scores are distinct.
    """
    n = scores.shape[1]
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    if chunk_size is None or chunk_size >= n:
        return torch.topk(scores, k, dim=1)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    values, indices = [], []
    for lo in range(0, n, chunk_size):
        chunk = scores[:, lo : lo + chunk_size]
        v, i = torch.topk(chunk, min(k, chunk.shape[1]), dim=1)
        values.append(v)
        indices.append(i + lo)
    cand_v, cand_i = torch.cat(values, dim=1), torch.cat(indices, dim=1)
    best_v, best = torch.topk(cand_v, k, dim=1)
    return best_v, cand_i.gather(1, best)
