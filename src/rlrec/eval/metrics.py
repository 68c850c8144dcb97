"""Top-k ranking metrics for next-item recommendation (spec-offline §E.2–E.4, §E.8, §F.22–24).

Pure tensor math, no I/O:

* :func:`target_ranks` — the rank of each event's target item in its score row, by one comparison
  against the target's own score (``O(n)`` per row, no sort) with a deterministic tie rule (§F.24);
* :func:`hit_at` / :func:`ndcg_at` — ``1[rank ≤ k]`` and ``1[rank ≤ k] / log2(rank + 1)`` (one relevant
  item, so IDCG = 1);
* :class:`MetricAccumulator` — micro-averaged HR/NDCG per event type (click vs purchase decided by
  ``is_buy``, never by the reward value, §F.22), cumulative reward@k (§E.3), the off-policy NDCG
  ``NG_off`` (§E.4) and the §F.23 diagnostics (empty-history events excluded; per-session means);
* :func:`check_ndcg_consistency` — the §E.8 bound linking NDCG and HR at consecutive cut-offs, usable on
  any results table.

HR and NDCG only depend on ``min(rank, k_max + 1)``, so the accumulator keeps **integer histograms of
ranks** and turns them into rates in :meth:`MetricAccumulator.compute`. This makes those numbers exact,
independent of how the events were batched and deterministic on every device (integer additions
commute). Only ``NG_off``, whose weights ``1/β`` are real numbers, is summed in float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

Ties = Literal["optimistic", "pessimistic"]
EVENT_TYPES = ("click", "purchase")


def target_ranks(
    scores: torch.Tensor, target: torch.Tensor, ties: Ties = "optimistic"
) -> torch.Tensor:
    """``[B]`` int64 rank (1 = best) of ``target[b]`` in ``scores[b]`` (§E.2, §E.8).

    ``scores``: ``[B, n]`` floats over the catalogue; ``target``: ``[B]`` int64 item ids in ``0..n-1``.
    ``ties="optimistic"``: ``1 + #{items with a strictly greater score}`` (the target wins every tie);
    ``"pessimistic"``: ``#{items with a score ≥ the target's}`` (it loses every tie). Both equal the
    usual rank when scores are distinct. A NaN target score is ranked last (``n``) so a broken model
    never scores a hit; NaN scores of other items never outrank the target.
    """
    if scores.dim() != 2 or target.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be [B, n] and target [B]; got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    t = scores.gather(1, target.unsqueeze(1))
    if ties == "optimistic":
        rank = (scores > t).sum(dim=1) + 1
    elif ties == "pessimistic":
        rank = (scores >= t).sum(dim=1)
    else:
        raise ValueError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")
    return torch.where(t.squeeze(1).isnan(), scores.shape[1], rank)


def hit_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``1[rank ≤ k]``."""
    return (rank <= k).to(torch.float64)


def ndcg_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float64 ``1[rank ≤ k] / log2(rank + 1)`` (single relevant item, IDCG = 1)."""
    r = rank.to(torch.float64)
    return torch.where(rank <= k, 1.0 / torch.log2(r + 1.0), 0.0)


def _gains(k_max: int) -> np.ndarray:
    """``[k_max + 1]`` NDCG gain of rank ``r = 1..k_max`` at index ``r - 1``; 0 for the overflow bin."""
    return np.append(1.0 / np.log2(np.arange(2, k_max + 2, dtype=np.float64)), 0.0)


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

    ``ks``: cut-offs; ``r_click``/``r_buy``: rewards for reward@k (§E.3); ``n_sessions``: number of
    sessions, for the per-session diagnostic; ``propensity``: optional ``[n]`` behaviour-policy
    estimate β (e.g. :func:`rlrec.data.popularity.item_popularity`), strictly positive, enabling
    ``NG_off`` at cut-off ``ng_off_k`` (§E.4).

    State (all on the device of the first batch):

    * ``_hist[type, nonempty, r]`` — int64 event counts by type (0 click, 1 purchase), whether the
      history was non-empty, and ``min(rank, k_max + 1) - 1``;
    * ``_session_hist[s, r]`` — the same histogram per session (``n_sessions × (k_max + 1)`` int64);
    * ``_ng_off[type]`` — float64 ``(Σ 1/β(a_e), Σ ndcg(e)/β(a_e))``.
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
    ) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be non-empty positive cut-offs, got {tuple(ks)}")
        if ng_off_k < 1:
            raise ValueError(f"ng_off_k must be positive, got {ng_off_k}")
        if n_sessions < 0:
            raise ValueError(f"n_sessions must be non-negative, got {n_sessions}")
        self.ks = tuple(sorted(set(ks)))
        self.r_click = float(r_click)
        self.r_buy = float(r_buy)
        self.n_sessions = n_sessions
        self.ng_off_k = ng_off_k
        self.beta: torch.Tensor | None = None
        if propensity is not None:
            beta = torch.as_tensor(propensity, dtype=torch.float64)
            if beta.dim() != 1 or not bool(torch.isfinite(beta).all() & (beta > 0).all()):
                raise ValueError("propensity must be a 1-d array of finite, strictly positive β(a)")
            self.beta = beta
        self.k_max = max(max(self.ks), ng_off_k if propensity is not None else 0)
        self._hist: torch.Tensor | None = None
        self._session_hist: torch.Tensor | None = None
        self._ng_off: torch.Tensor | None = None

    def _allocate(self, device: torch.device) -> None:
        bins = self.k_max + 1
        self._hist = torch.zeros(2 * 2 * bins, dtype=torch.int64, device=device)
        self._session_hist = torch.zeros(self.n_sessions * bins, dtype=torch.int64, device=device)
        self._ng_off = torch.zeros(2, 2, dtype=torch.float64, device=device)
        if self.beta is not None:
            self.beta = self.beta.to(device)

    def update(
        self,
        rank: torch.Tensor,
        is_buy: torch.Tensor,
        action: torch.Tensor,
        session: torch.Tensor,
        empty_history: torch.Tensor,
    ) -> None:
        """Add a batch of ``B`` scored events (all ``[B]`` tensors on one device).

        ``rank``: int64 ``≥ 1`` from :func:`target_ranks`; ``is_buy``: 0/1 (the event type); ``action``: the
        target item ids (for β); ``session``: int64 session index in ``0..n_sessions-1``;
        ``empty_history``: bool, the event is the first of its session (scored, §E.1, but excluded
        from the ``/nonempty`` diagnostics).
        """
        if self._hist is None:
            self._allocate(rank.device)
        assert self._hist is not None and self._session_hist is not None
        assert self._ng_off is not None
        bins = self.k_max + 1
        rbin = rank.clamp(max=bins) - 1
        buy = is_buy.to(torch.int64)
        group = buy * 2 + (~empty_history.bool()).to(torch.int64)
        self._hist.index_add_(0, group * bins + rbin, torch.ones_like(rbin))
        self._session_hist.index_add_(0, session * bins + rbin, torch.ones_like(rbin))
        if self.beta is not None:
            w = 1.0 / self.beta[action]
            terms = torch.stack([w, w * ndcg_at(rank, self.ng_off_k)], dim=1)
            self._ng_off.index_add_(0, buy, terms)

    def compute(self) -> dict[str, float]:
        """The metrics so far as a flat ``dict[str, float]``.

        Main numbers, micro-averaged over events (§E.2), for every ``k`` in ``ks``:
        ``hr_click@k``, ``ndcg_click@k``, ``hr_purchase@k``, ``ndcg_purchase@k`` and
        ``reward@k = r_click · #click hits@k + r_buy · #purchase hits@k`` (§E.3); ``ng_off_click``,
        ``ng_off_purchase`` (only with a propensity, §E.4); ``n_click``, ``n_purchase``, ``n_events``.

        §F.23 diagnostics: the same four rates over events with a non-empty history, suffixed
        ``/nonempty`` (e.g. ``ndcg_purchase@10/nonempty``), with ``n_click/nonempty`` and
        ``n_purchase/nonempty``; ``hr@k/session_mean`` and ``ndcg@k/session_mean`` (both event types,
        mean over sessions of the per-session mean) with ``n_sessions`` (sessions with ≥ 1 event).

        A type (or subset) with no events gives NaN rates; counts and rewards are then 0.
        """
        bins = self.k_max + 1
        hist = _as_float(self._hist, (2, 2, bins))
        gains = _gains(self.k_max)
        out: dict[str, float] = {}

        def rates(name: str, h: np.ndarray, suffix: str = "") -> None:
            # Sequential cumulative sums keep HR/NDCG exactly monotone in k and NDCG ≤ HR.
            n, hits, gain = h.sum(), np.cumsum(h), np.cumsum(h * gains)
            for k in self.ks:
                out[f"hr_{name}@{k}{suffix}"] = _rate(hits[k - 1], n)
                out[f"ndcg_{name}@{k}{suffix}"] = _rate(gain[k - 1], n)

        per_type = hist.sum(axis=1)
        for t, name in enumerate(EVENT_TYPES):
            rates(name, per_type[t])
        for k in self.ks:
            hits = per_type[:, :k].sum(axis=1)
            out[f"reward@{k}"] = float(self.r_click * hits[0] + self.r_buy * hits[1])
        if self.beta is not None:
            ng = _as_float(self._ng_off, (2, 2))
            for t, name in enumerate(EVENT_TYPES):
                out[f"ng_off_{name}"] = _rate(ng[t, 1], ng[t, 0])
        out["n_click"] = float(per_type[0].sum())
        out["n_purchase"] = float(per_type[1].sum())
        out["n_events"] = float(per_type.sum())

        for t, name in enumerate(EVENT_TYPES):
            rates(name, hist[t, 1], "/nonempty")
        out["n_click/nonempty"] = float(hist[0, 1].sum())
        out["n_purchase/nonempty"] = float(hist[1, 1].sum())

        sess = _as_float(self._session_hist, (self.n_sessions, bins))
        counts = sess.sum(axis=1)
        seen = sess[counts > 0] / counts[counts > 0, None]
        cum_hits = np.cumsum(seen, axis=1)
        cum_gain = np.cumsum(seen * gains, axis=1)
        for k in self.ks:
            out[f"hr@{k}/session_mean"] = (
                float(cum_hits[:, k - 1].mean()) if len(seen) else math.nan
            )
            out[f"ndcg@{k}/session_mean"] = (
                float(cum_gain[:, k - 1].mean()) if len(seen) else math.nan
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
    """Violations of the §E.8 HR/NDCG consistency bound; empty when the curves are consistent.

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
