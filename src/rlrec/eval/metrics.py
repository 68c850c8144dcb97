"""Top-k ranking metrics for next-item recommendation (P-SA2C §4.1.2, Eq. 9 and 11; docs/offline.md).

Pure tensor math, no I/O:

* :func:`target_rank_stats` — for each event, ``g`` = the number of items scored strictly higher than
  the target and ``t`` = the number of *other* items tied with it, by one ``>`` and one ``==``
  comparison against the target's own score (``O(n)`` per row, no sort);
* :func:`target_ranks` — a single point rank with a deterministic tie rule (``optimistic`` ``g + 1`` or
  ``pessimistic`` ``g + t + 1``);
* :func:`hit_at` / :func:`ndcg_at` — ``1[rank ≤ k]`` and ``1[rank ≤ k] / log2(rank + 1)`` (one relevant
  item, so IDCG = 1); :func:`expected_hit_at` / :func:`expected_ndcg_at` — their closed-form
  expectations when the target's rank is uniform on ``g+1 … g+t+1`` (random tie-breaking);
* :class:`MetricAccumulator` — micro-averaged HR/NDCG/MRR per event type (click vs purchase decided by
  ``is_buy``, never by the reward value), cumulative reward@k (P-SA2C §4.1.2), the off-policy NDCG
  ``NG_off`` (P-SA2C Eq. 11), the diagnostics (empty-history events excluded; per-session means) and the
  share of tied targets;
* :func:`degenerate_warning` — a one-line warning when more than :data:`DEGENERATE_TIE_SHARE` of the
  targets are tied (a collapsed or constant-score model);
* :func:`check_ndcg_consistency` — the bound linking NDCG and HR at consecutive cut-offs, usable on
  any results table.

**Ties** (``ties``). A model that gives many items the same score must not be flattered by
the tie rule, so the default ``"expected"`` reports every metric as its **expectation under uniformly
random tie-breaking**: the target's rank ``R`` is uniform on ``g+1 … g+t+1``, so
``E[HR@k] = clip((k − g)/(t + 1), 0, 1)`` and
``E[NDCG@k] = (1/(t+1)) · Σ_{r=g+1}^{min(g+t+1, k)} 1/log2(r + 1)``; a constant-score model over ``n``
items gets HR@k = k/n exactly. ``"pessimistic"`` (the target loses every tie, ``R = g + t + 1``) is a
lower bound; ``"optimistic"`` (it wins every tie, ``R = g + 1``) is what an unstable sort may happen to
give and gives a constant model HR = NDCG = 1 — an upper bound, never the default. All three agree when
the target's score is unique.

**MRR@k** is the mean reciprocal rank truncated at ``k``, ``E[1[R ≤ k]/R]``, tie-resolved like HR and
NDCG: under ``"expected"`` it is ``(1/(t+1)) · Σ_{r=g+1}^{min(g+t+1, k)} 1/r`` (the expected reciprocal
rank over the tie positions, not the reciprocal of the expected rank), under ``"pessimistic"``
``1/(g+t+1)``. It is a third gain on the same rank histogram, so it costs nothing, also on the
chunked path of a linear head (:func:`linear_rank_stats` gives the same ``g`` and ``t``).

HR, NDCG and MRR only depend on the distribution of ``min(rank, k_max + 1)``, so the accumulator keeps
**histograms of ranks** and turns them into rates in :meth:`MetricAccumulator.compute`. Every event
with a point rank (an untied target, or any target under ``optimistic``/``pessimistic``) is counted in
an **integer** histogram, which makes those numbers exact, independent of how the events were batched
and deterministic on every device (integer additions commute). Under ``"expected"`` a tied target adds
its rank distribution (mass ``1/(t+1)`` on each rank ``g+1 … g+t+1`` that is ``≤ k_max``) to a float64
histogram; that part is exact up to float64 rounding (on CUDA the order of the additions, hence the
last bits, may vary; hit counts are clipped to the event count and gains to the hits, so rounding
never pushes HR above 1 or NDCG above HR). ``NG_off``, whose weights ``1/β`` are real numbers, is
summed in float64.

Every reported metric is linear in the per-event rank distribution — HR, NDCG and MRR (the expected
*gain* ``E[1[R ≤ k]/log2(R+1)]`` or ``E[1[R ≤ k]/R]`` is used, never the gain of an expected rank),
reward@k, the ``/nonempty``
rates, ``NG_off`` (its weights ``1/β(a_e)`` and its denominator do not depend on the ranks) and the
``/session_mean`` rates (each session's event count does not depend on the ranks) — so under
``"expected"`` each of them is exactly its expectation under random tie-breaking.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import torch

Ties = Literal["expected", "pessimistic", "optimistic"]
TIE_MODES: tuple[str, ...] = get_args(Ties)
EVENT_TYPES = ("click", "purchase")
DEGENERATE_TIE_SHARE = 0.01
"""Share of evaluation targets tied with another item above which :func:`degenerate_warning` warns."""


def _check_shapes(scores: torch.Tensor, target: torch.Tensor) -> None:
    if scores.dim() != 2 or target.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be [B, n] and target [B]; got {tuple(scores.shape)} and {tuple(target.shape)}"
        )


def target_rank_stats(
    scores: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(greater, tied)``: ``[B]`` int64 counts of items scored strictly higher than ``target[b]`` and
    of the *other* items whose score equals the target's, in ``scores[b]``.

    ``scores``: ``[B, n]`` floats over the catalogue; ``target``: ``[B]`` int64 item ids in ``0..n-1``.
    The target's rank under random tie-breaking is uniform on ``greater + 1 … greater + tied + 1``. A
    NaN target score gives ``(n - 1, 0)`` (ranked last, so a broken model never scores a hit); NaN
    scores of other items never outrank nor tie the target.
    """
    _check_shapes(scores, target)
    t = scores.gather(1, target.unsqueeze(1))
    # int32 partial sums of the comparison masks are ~25 % faster than the default int64 on CPU
    greater = (scores > t).sum(dim=1, dtype=torch.int32).to(torch.int64)
    tied = (scores == t).sum(dim=1, dtype=torch.int32).to(torch.int64) - 1
    nan = t.squeeze(1).isnan()
    return torch.where(nan, scores.shape[1] - 1, greater), torch.where(nan, 0, tied)


def linear_rank_stats(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    chunk: int,
    bound: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`target_rank_stats` of the scores ``h @ weight.T + bias`` without materialising them:
    the catalogue is scored ``chunk`` columns at a time into one cache-sized ``[B, chunk]`` buffer and
    each chunk is compared with the target's score at once, so memory is ``O(B · chunk)`` whatever
    ``n`` is and the scores never make a round trip through main memory.

    ``h``: ``[B, d]`` states; ``weight``: ``[n, d]``; ``bias``: ``[n]`` or ``None``; ``target``:
    ``[B]`` int64. Exact: a target is compared with the very value its own column gets in the chunked
    product. That value is only known once its chunk is scored, so the sweep compares with an estimate
    computed first by the same product on a chunk made of the target columns (same shapes, so in
    practice the same bits) and checks, per row, that it equals the value the target's chunk produced;
    if any row differs, the sweep runs again with the values the chunks produced (same shapes, hence
    the same numbers). NaN targets rank last, as in :func:`target_rank_stats`. ``bound``:
    :func:`head_bound` of the head, when the caller ranks many batches with it.
    """
    if h.dim() != 2 or weight.dim() != 2 or target.shape != h.shape[:1]:
        raise ValueError(
            f"h must be [B, d], weight [n, d] and target [B]; got {tuple(h.shape)}, "
            f"{tuple(weight.shape)}, {tuple(target.shape)}"
        )
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    n = weight.shape[0]
    rows = torch.arange(len(target), device=h.device)
    t = _target_scores(h, weight, bias, target, min(chunk, n))
    w_max, b_max = bound if bound is not None else head_bound(weight, bias)
    # every |score| ≤ |h|₁·max|w| + max|b|: far below float32's overflow, no score is NaN or ∞
    by_signs = float(h.abs().sum(dim=1).max()) * w_max + b_max < 1e30 if len(h) else False
    for _sweep in range(2):
        greater, tied, own = _linear_sweep(h, weight, bias, target, t, chunk, rows, by_signs)
        same = (own == t) | (own.isnan() & t.isnan())
        if bool(same.all()):
            break
        t = own
    else:  # the second sweep saw other values than the first: the backend is not deterministic
        raise RuntimeError("the chunked scores changed between two identical passes")
    nan = t.squeeze(1).isnan()
    return torch.where(nan, n - 1, greater), torch.where(nan, 0, tied - 1)


def _product(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor
) -> None:
    """``out [B, C] = h @ weight.T + bias`` for a ``[C, d]`` slice (or gather) of the head."""
    if bias is None:
        torch.mm(h, weight.t(), out=out)
    else:
        torch.addmm(bias, h, weight.t(), out=out)


def _target_scores(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """``[B, 1]``: each row's score of its own target, from products shaped like the sweep's chunks
    (``[B, width]``, the target columns gathered and padded to the width)."""
    b = len(target)
    out = h.new_empty(b, width)
    t = h.new_empty(b, 1)
    for lo in range(0, b, width):
        ids = target[lo : lo + width]
        cols = torch.cat([ids, ids.new_zeros(width - len(ids))])
        _product(h, weight[cols], None if bias is None else bias[cols], out)
        t[lo : lo + len(ids), 0] = out[torch.arange(lo, lo + len(ids)), : len(ids)].diagonal()
    return t


def head_bound(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[float, float]:
    """``(max |weight|, max |bias|)`` (NaN when either holds a NaN): with the states' norms, a
    bound on every score, which tells :func:`linear_rank_stats` that no score can be NaN."""
    w = float(weight.detach().abs().amax()) if weight.numel() else 0.0
    b = float(bias.detach().abs().amax()) if bias is not None and bias.numel() else 0.0
    return w, b


def _linear_sweep(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    t: torch.Tensor,
    chunk: int,
    rows: torch.Tensor,
    by_signs: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over the columns: ``(greater [B], equal [B] (the target included), own [B, 1])``
    counted against ``t [B, 1]``; ``own`` is the value each target's column got in its chunk.

    ``by_signs`` (every score is known to be finite): counting by the signs of ``score − t`` (−1
    below, 0 tied, +1 above), ``Σ sign = above − below`` and ``Σ |sign| = above + below``: two
    float reductions over the cached buffer instead of two Boolean comparisons and their integer
    conversions (about twice as fast on CPU; exact, the sums being integers below 2²⁴). Otherwise
    by comparisons, where a NaN score never outranks nor ties the target."""
    n, b = weight.shape[0], len(target)
    buf = h.new_empty(b, min(chunk, n))
    greater = torch.zeros(b, dtype=torch.float64, device=h.device)
    equal = torch.zeros_like(greater)
    own = torch.empty_like(t)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        out = buf[:, : hi - lo]
        _product(h, weight[lo:hi], None if bias is None else bias[lo:hi], out)
        inside = (target >= lo) & (target < hi)
        own[inside, 0] = out[rows[inside], target[inside] - lo]
        if by_signs:
            signs = out.sub_(t).sign_()
            net = signs.sum(dim=1)  # above − below
            off = signs.abs_().sum(dim=1)  # above + below
            greater += (net + off) * 0.5
            equal += (hi - lo) - off
        else:
            greater += (out > t).sum(dim=1)
            equal += (out == t).sum(dim=1)
    return greater.to(torch.int64), equal.to(torch.int64), own


def target_ranks(
    scores: torch.Tensor,
    target: torch.Tensor,
    ties: Literal["pessimistic", "optimistic"] = "pessimistic",
) -> torch.Tensor:
    """``[B]`` int64 point rank (1 = best) of ``target[b]`` in ``scores[b]``.

    ``ties="pessimistic"``: ``#{items with a score ≥ the target's}`` (the target loses every tie);
    ``"optimistic"``: ``1 + #{items with a strictly greater score}`` (it wins every tie, as an unstable
    sort may happen to give — an upper bound). Both equal the usual rank when scores are distinct. The
    default ``"expected"`` tie mode of evaluation has no point rank: use :func:`target_rank_stats` with
    :class:`MetricAccumulator` (or :func:`expected_hit_at` / :func:`expected_ndcg_at`). A NaN target
    score is ranked last (``n``); NaN scores of other items never outrank the target.
    """
    _check_shapes(scores, target)
    t = scores.gather(1, target.unsqueeze(1))
    if ties == "optimistic":
        rank = (scores > t).sum(dim=1) + 1
    elif ties == "pessimistic":
        rank = (scores >= t).sum(dim=1)
    elif ties == "expected":
        raise ValueError(
            "ties='expected' has no point rank; use target_rank_stats() and MetricAccumulator"
        )
    else:
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
    return torch.where(t.squeeze(1).isnan(), scores.shape[1], rank)


def hit_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``1[rank ≤ k]``."""
    return (rank <= k).to(torch.float64)


def ndcg_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``1[rank ≤ k] / log2(rank + 1)`` (single relevant item, IDCG = 1)."""
    r = rank.to(torch.float64)
    return torch.where(rank <= k, 1.0 / torch.log2(r + 1.0), 0.0)


@functools.lru_cache(maxsize=64)
def _cumulative_gains(k: int) -> np.ndarray:
    """``[k + 1]`` float64 ``C[m] = Σ_{r=1..m} 1/log2(r + 1)`` (``C[0] = 0``)."""
    return np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))))


def expected_hit_at(greater: torch.Tensor, tied: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``E[1[R ≤ k]] = clip((k − g)/(t + 1), 0, 1)`` for ``R`` uniform on
    ``g+1 … g+t+1`` (``g = greater``, ``t = tied``, from :func:`target_rank_stats`)."""
    g = greater.to(torch.float64)
    return ((k - g) / (tied.to(torch.float64) + 1.0)).clamp(0.0, 1.0)


def expected_ndcg_at(greater: torch.Tensor, tied: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``E[1[R ≤ k]/log2(R + 1)] = (C[min(g+t+1, k)] − C[min(g, k)]) / (t + 1)`` for
    ``R`` uniform on ``g+1 … g+t+1``, with ``C[m] = Σ_{r ≤ m} 1/log2(r + 1)`` (zero when ``g ≥ k``).
    Untied targets (``t = 0``) get exactly :func:`ndcg_at` of ``g + 1``."""
    c = torch.as_tensor(_cumulative_gains(k), device=greater.device)
    hi = (greater + tied + 1).clamp(max=k)
    lo = greater.clamp(max=k)
    spread = (c[hi] - c[lo]) / (tied.to(torch.float64) + 1.0)
    return torch.where(tied == 0, ndcg_at(greater + 1, k), spread)


def degenerate_warning(metrics: Mapping[str, float]) -> str | None:
    """A one-line warning when more than :data:`DEGENERATE_TIE_SHARE` of the evaluated targets are tied
    with at least one other item (``metrics["tied_target_share"]``, from :func:`evaluate
    <rlrec.eval.evaluator.evaluate>`); ``None`` otherwise (also when the key is missing or NaN)."""
    share = metrics.get("tied_target_share")
    if share is None or math.isnan(share) or share <= DEGENERATE_TIE_SHARE:
        return None
    return (
        f"degenerate scores: {share:.1%} of evaluation targets are tied with at least one other item "
        f"(threshold {DEGENERATE_TIE_SHARE:.0%}); the model may be constant or collapsed and its "
        "ranking metrics depend on how ties are broken"
    )


def _gains(k_max: int) -> dict[str, np.ndarray]:
    """``[k_max + 1]`` per-rank gains at index ``r - 1`` for ``r = 1..k_max``, 0 for the overflow
    bin: ``"ndcg"`` ``1/log2(r + 1)`` and ``"mrr"`` ``1/r`` (the reciprocal rank)."""
    r = np.arange(1, k_max + 1, dtype=np.float64)
    return {"ndcg": np.append(1.0 / np.log2(r + 1.0), 0.0), "mrr": np.append(1.0 / r, 0.0)}


def _as_float(t: torch.Tensor | None, shape: tuple[int, ...]) -> np.ndarray:
    """An accumulator as a float64 numpy array of ``shape`` (zeros before the first batch)."""
    if t is None:
        return np.zeros(shape, dtype=np.float64)
    return t.detach().cpu().numpy().astype(np.float64).reshape(shape)


def _rate(total: float, count: float) -> float:
    """``total / count`` as a Python float, NaN (not 0, not an error) when there are no events."""
    return float(total) / float(count) if count > 0 else math.nan


class MetricAccumulator:
    """Accumulates ranking metrics over batches of scored events; :meth:`compute` gives a flat dict.

    ``ks``: cut-offs; ``r_click``/``r_buy``: rewards for reward@k (P-SA2C §4.1.2); ``n_sessions``: number of
    sessions, for the per-session diagnostic; ``propensity``: optional ``[n]`` behaviour-policy
    estimate β (e.g. :func:`rlrec.data.popularity.item_popularity`), strictly positive, enabling
    ``NG_off`` at cut-off ``ng_off_k`` (P-SA2C Eq. 11); ``ties``: how a target tied with other items is ranked
    (``"expected"``, the default: every metric is its expectation under random tie-breaking;
    ``"pessimistic"``; ``"optimistic"`` — see the module docstring).

    State (all on the device of the first batch):

    * ``_hist[type, nonempty, r]`` — int64 event counts by type (0 click, 1 purchase), whether the
      history was non-empty, and ``min(rank, k_max + 1) - 1``; under ``"expected"`` a tied event is
      counted in the overflow bin ``r = k_max`` and its rank distribution goes to ``_tied_hist``;
    * ``_session_hist[s, r]`` — the same histogram per session (``n_sessions × (k_max + 1)`` int64);
    * ``_tied_hist[type, nonempty, r]`` and ``_tied_session_hist[s, r]`` (``"expected"`` only) —
      float64 probability mass of the tied events' ranks ``r + 1 ≤ k_max``;
    * ``_ng_off[type]`` — float64 ``(Σ 1/β(a_e), Σ ndcg(e)/β(a_e))``;
    * ``_n_tied`` — int64 number of events whose target is tied with at least one other item.
    """

    def __init__(
        self,
        ks: Sequence[int],
        *,
        r_click: float,
        r_buy: float,
        n_sessions: int,
        propensity: np.ndarray | torch.Tensor | None = None,
        ng_off_k: int = 10,
        ties: Ties = "expected",
    ) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be non-empty positive cut-offs, got {tuple(ks)}")
        if ng_off_k < 1:
            raise ValueError(f"ng_off_k must be positive, got {ng_off_k}")
        if n_sessions < 0:
            raise ValueError(f"n_sessions must be non-negative, got {n_sessions}")
        if ties not in TIE_MODES:
            raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
        self.ks = tuple(sorted(set(ks)))
        self.r_click = float(r_click)
        self.r_buy = float(r_buy)
        self.n_sessions = n_sessions
        self.ng_off_k = ng_off_k
        self.ties: Ties = ties
        self.beta: torch.Tensor | None = None
        if propensity is not None:
            beta = torch.as_tensor(propensity, dtype=torch.float64)
            if beta.dim() != 1 or not bool(torch.isfinite(beta).all() & (beta > 0).all()):
                raise ValueError("propensity must be a 1-d array of finite, strictly positive β(a)")
            self.beta = beta
        self.k_max = max(max(self.ks), ng_off_k if propensity is not None else 0)
        self._hist: torch.Tensor | None = None
        self._session_hist: torch.Tensor | None = None
        self._tied_hist: torch.Tensor | None = None
        self._tied_session_hist: torch.Tensor | None = None
        self._ng_off: torch.Tensor | None = None
        self._n_tied: torch.Tensor | None = None

    def _allocate(self, device: torch.device) -> None:
        bins = self.k_max + 1
        self._hist = torch.zeros(2 * 2 * bins, dtype=torch.int64, device=device)
        self._session_hist = torch.zeros(self.n_sessions * bins, dtype=torch.int64, device=device)
        if self.ties == "expected":
            f64 = torch.float64
            self._tied_hist = torch.zeros(2 * 2 * self.k_max, dtype=f64, device=device)
            self._tied_session_hist = torch.zeros(
                self.n_sessions * self.k_max, dtype=f64, device=device
            )
        self._ng_off = torch.zeros(2, 2, dtype=torch.float64, device=device)
        self._n_tied = torch.zeros((), dtype=torch.int64, device=device)
        if self.beta is not None:
            self.beta = self.beta.to(device)

    def update(
        self,
        rank: torch.Tensor,
        is_buy: torch.Tensor,
        action: torch.Tensor,
        session: torch.Tensor,
        empty_history: torch.Tensor,
        n_tied: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of ``B`` scored events (all ``[B]`` tensors on one device).

        ``rank``: int64 ``≥ 1`` — without ``n_tied``, the target's rank (e.g. from
        :func:`target_ranks`), used as is whatever ``ties`` says; with ``n_tied``, ``1 + #{items scored
        strictly higher}`` (``greater + 1`` from :func:`target_rank_stats`). ``n_tied``: int64 ``≥ 0``,
        the number of other items tied with the target (its rank is then uniform on
        ``rank … rank + n_tied``, resolved by ``ties``); ``None`` means no ties. ``is_buy``: 0/1 (the
        event type); ``action``: the target item ids (for β); ``session``: int64 session index in
        ``0..n_sessions-1``; ``empty_history``: bool, the event is the first of its session (scored,
        but excluded from the ``/nonempty`` diagnostics).
        """
        if self._hist is None:
            self._allocate(rank.device)
        assert self._hist is not None and self._session_hist is not None
        assert self._ng_off is not None and self._n_tied is not None
        bins = self.k_max + 1
        tied = torch.zeros_like(rank) if n_tied is None else n_tied.to(rank.dtype)
        is_tied = tied > 0
        self._n_tied += is_tied.sum()
        point = rank + tied if self.ties == "pessimistic" else rank
        rbin = point.clamp(max=bins) - 1
        buy = is_buy.to(torch.int64)
        group = buy * 2 + (~empty_history.bool()).to(torch.int64)
        if self.ties == "expected":
            assert self._tied_hist is not None and self._tied_session_hist is not None
            # A tied target puts mass 1/(t+1) on each rank g+1 … g+t+1 (bins g … g+t) below k_max;
            # its integer count goes to the overflow bin, so event counts stay exact integers.
            # (1-d index_add_ of the flattened [B, k_max] masses: the row-wise form is much slower
            # on CPU.)
            rbin = torch.where(is_tied, bins - 1, rbin)
            g = (rank - 1).unsqueeze(1)
            b = torch.arange(self.k_max, device=rank.device)
            inside = (b >= g) & (b <= g + tied.unsqueeze(1)) & is_tied.unsqueeze(1)
            mass = (
                inside.to(torch.float64) / (tied.to(torch.float64) + 1.0).unsqueeze(1)
            ).flatten()
            self._tied_hist.index_add_(0, (group.unsqueeze(1) * self.k_max + b).flatten(), mass)
            self._tied_session_hist.index_add_(
                0, (session.unsqueeze(1) * self.k_max + b).flatten(), mass
            )
        self._hist.index_add_(0, group * bins + rbin, torch.ones_like(rbin))
        self._session_hist.index_add_(0, session * bins + rbin, torch.ones_like(rbin))
        if self.beta is not None:
            w = 1.0 / self.beta[action]
            if self.ties == "expected":
                ndcg = expected_ndcg_at(rank - 1, tied, self.ng_off_k)
            else:
                ndcg = ndcg_at(point, self.ng_off_k)
            terms = torch.stack([w, w * ndcg], dim=1)
            self._ng_off.index_add_(0, buy, terms)

    def compute(self) -> dict[str, float]:
        """The metrics so far as a flat ``dict[str, float]``.

        Main numbers, micro-averaged over events (P-SA2C Eq. 9), for every ``k`` in ``ks``:
        ``hr_click@k``, ``ndcg_click@k``, ``mrr_click@k``, the same three ``_purchase`` and
        ``reward@k = r_click · #click hits@k + r_buy · #purchase hits@k`` (P-SA2C §4.1.2); ``ng_off_click``,
        ``ng_off_purchase`` (only with a propensity, P-SA2C Eq. 11); ``n_click``, ``n_purchase``, ``n_events``;
        ``tied_target_share`` — the share of events whose target score equals at least one other
        item's (whatever ``ties`` is; see :func:`degenerate_warning`). Under ``ties="expected"`` the
        hit counts and rates are expectations under random tie-breaking (fractional hit counts).

        Diagnostics: the same six rates over events with a non-empty history, suffixed
        ``/nonempty`` (e.g. ``ndcg_purchase@10/nonempty``), with ``n_click/nonempty`` and
        ``n_purchase/nonempty``; ``hr@k/session_mean``, ``ndcg@k/session_mean`` and
        ``mrr@k/session_mean`` (both event types,
        mean over sessions of the per-session mean) with ``n_sessions`` (sessions with ≥ 1 event).

        A type (or subset) with no events gives NaN rates; counts and rewards are then 0.
        """
        bins = self.k_max + 1
        counts_hist = _as_float(self._hist, (2, 2, bins))
        hist = counts_hist.copy()
        if self._tied_hist is not None:
            hist[..., : self.k_max] += _as_float(self._tied_hist, (2, 2, self.k_max))
        gains = _gains(self.k_max)
        out: dict[str, float] = {}

        def cumulative(h: np.ndarray, n: np.ndarray | float) -> dict[str, np.ndarray]:
            # Sequential cumulative sums of non-negative masses keep hits and gains monotone in k;
            # clipping hits to the event count n (fractional masses may overshoot it by float64
            # rounding) and gains to the hits keeps HR ≤ 1 and NDCG, MRR ≤ HR exactly.
            hits = np.minimum(np.cumsum(h, axis=-1), np.expand_dims(n, -1))
            sums = {m: np.minimum(np.cumsum(h * g, axis=-1), hits) for m, g in gains.items()}
            return {"hr": hits, **sums}

        def rates(name: str, h: np.ndarray, n: float, suffix: str = "") -> np.ndarray:
            sums = cumulative(h, n)
            for k in self.ks:
                for metric, total in sums.items():
                    out[f"{metric}_{name}@{k}{suffix}"] = _rate(total[k - 1], n)
            return sums["hr"]

        per_type = hist.sum(axis=1)
        n_type = counts_hist.sum(axis=(1, 2))
        type_hits = [rates(name, per_type[t], n_type[t]) for t, name in enumerate(EVENT_TYPES)]
        for k in self.ks:
            click, buy = type_hits[0][k - 1], type_hits[1][k - 1]
            out[f"reward@{k}"] = float(self.r_click * click + self.r_buy * buy)
        if self.beta is not None:
            ng = _as_float(self._ng_off, (2, 2))
            for t, name in enumerate(EVENT_TYPES):
                out[f"ng_off_{name}"] = _rate(ng[t, 1], ng[t, 0])
        out["n_click"] = float(n_type[0])
        out["n_purchase"] = float(n_type[1])
        out["n_events"] = float(n_type.sum())
        n_tied = 0.0 if self._n_tied is None else float(self._n_tied)
        out["tied_target_share"] = _rate(n_tied, out["n_events"])

        n_nonempty = counts_hist[:, 1].sum(axis=1)
        for t, name in enumerate(EVENT_TYPES):
            rates(name, hist[t, 1], n_nonempty[t], "/nonempty")
        out["n_click/nonempty"] = float(n_nonempty[0])
        out["n_purchase/nonempty"] = float(n_nonempty[1])

        sess_counts = _as_float(self._session_hist, (self.n_sessions, bins))
        sess = sess_counts.copy()
        if self._tied_session_hist is not None:
            sess[:, : self.k_max] += _as_float(
                self._tied_session_hist, (self.n_sessions, self.k_max)
            )
        counts = sess_counts.sum(axis=1)
        seen = sess[counts > 0] / counts[counts > 0, None]
        per_session = cumulative(seen, np.ones(len(seen)))
        for k in self.ks:
            for metric, total in per_session.items():
                out[f"{metric}@{k}/session_mean"] = (
                    float(total[:, k - 1].mean()) if len(seen) else math.nan
                )
        out["n_sessions"] = float(len(seen))
        return out


def check_ndcg_consistency(
    hr: Mapping[int, float],
    ndcg: Mapping[int, float],
    *,
    tol: float = 1e-9,
    from_zero: bool = False,
) -> list[str]:
    """Violations of the HR/NDCG consistency bound; empty when the curves are consistent.

    For consecutive cut-offs ``k1 < k2`` every event with rank in ``(k1, k2]`` adds 1 to the HR
    difference and ``1/log2(rank+1) ∈ [1/log2(k2+1), 1/log2(k1+2)]`` to the NDCG difference, so

        NDCG@k2 − NDCG@k1 ∈ [(HR@k2 − HR@k1)/log2(k2+1), (HR@k2 − HR@k1)/log2(k1+2)],

    which survives averaging over runs. NDCG@k and HR@k must also be non-decreasing in k. With
    ``from_zero`` the pair ``(0, k_min)`` is checked too (``HR@k/log2(k+1) ≤ NDCG@k ≤ HR@k``).
    ``tol`` absorbs rounding (use ~0.5e-3 for tables printed to 3 decimals). Cut-offs where either
    value is NaN are skipped. Returns human-readable messages.
    """
    if set(hr) != set(ndcg):
        raise ValueError(
            f"hr and ndcg must have the same cut-offs, got {sorted(hr)} and {sorted(ndcg)}"
        )
    ks = [k for k in sorted(hr) if not (math.isnan(hr[k]) or math.isnan(ndcg[k]))]
    points = [(k, hr[k], ndcg[k]) for k in ks]
    if from_zero and points:
        points.insert(0, (0, 0.0, 0.0))
    problems: list[str] = []
    for (k1, h1, n1), (k2, h2, n2) in itertools.pairwise(points):
        if k1 > 0 and h2 < h1 - tol:
            problems.append(f"HR decreases: HR@{k1} = {h1:.4f} > HR@{k2} = {h2:.4f}")
        if k1 > 0 and n2 < n1 - tol:
            problems.append(f"NDCG decreases: NDCG@{k1} = {n1:.4f} > NDCG@{k2} = {n2:.4f}")
        dh, dn = h2 - h1, n2 - n1
        lo, hi = dh / math.log2(k2 + 1), dh / math.log2(k1 + 2)
        if not lo - tol <= dn <= hi + tol:
            problems.append(
                f"NDCG@{k2} - NDCG@{k1} = {dn:.4f} outside [{lo:.4f}, {hi:.4f}] implied by "
                f"HR@{k1} = {h1:.4f} -> HR@{k2} = {h2:.4f}"
            )
    return problems
