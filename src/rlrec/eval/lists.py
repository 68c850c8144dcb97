"""Top-k recommendation lists and the metrics of the lists themselves (docs/offline.md, Evaluation).

* :func:`ranked_top` / :func:`in_total_order` — the ``k`` best items of each row in a **total order**
  (higher score first, equal scores by lower item index): the lists ``rlrec recommend`` and
  ``rlrec serve`` return, whatever the batch;
* :func:`linear_ranked_top` — the same lists for a linear head without the ``[B, n]`` score matrix
  (column chunks, as :func:`~rlrec.eval.metrics.linear_rank_stats` ranks);
* :class:`ListAccumulator` — over the evaluated events, for each cut-off ``k``: catalogue
  **coverage@k** (share of the catalogue in at least one top-k list), **intra-list diversity@k**
  (mean pairwise ``1 − cos`` of the lists' item vectors) and **novelty@k** (mean self-information
  ``−log2 p(i)`` of the recommended items).

Ties: the lists are the served lists, so the items tied at the k-th place are taken by lower item
index, a fixed order that does not depend on the model. A constant-score model therefore serves the
same ``k`` items to everybody and gets coverage ``k/n`` (never a random recommender's coverage,
which random tie-breaking would credit it with).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlrec.eval.metrics import _product, _rate


def ranked_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best ``(values, indices)`` ``(B, k)`` of each row of ``scores`` ``(B, n)`` in a
    total order: higher score first, equal scores by lower item index (``torch.topk`` leaves ties
    in any order, also at the boundary of the k kept). NaN scores must be replaced first (the
    callers map them to ``−inf``, ranked last).

    ``torch.topk`` of ``k + 1`` decides most rows: when the ``(k+1)``-th best value is below the
    ``k``-th, exactly ``k`` items reach the ``k``-th value and the kept set is the one of the total
    order, which :func:`in_total_order` then sorts. The other rows (a tie across the boundary) are
    split by their k-th best value ``t``: every item above ``t`` is kept, and of the items equal to
    ``t`` the lowest-indexed ones fill the rest."""
    n = scores.shape[1]
    v, i = torch.topk(scores, min(k + 1, n), dim=1)
    if k == n:
        return in_total_order(v, i)
    values, indices = v[:, :k].clone(), i[:, :k].clone()
    crossing = (v[:, k] == v[:, k - 1]).nonzero().squeeze(1)
    if len(crossing):
        rows = scores[crossing]
        t = v[crossing, k - 1 : k]
        above = rows > t
        tied = rows == t
        room = k - above.sum(1, keepdim=True)
        keep = above | (tied & (tied.cumsum(1) <= room))
        values[crossing] = rows[keep].view(len(crossing), k)  # row-major: in index order
        indices[crossing] = keep.nonzero()[:, 1].view(len(crossing), k)
    return in_total_order(values, indices)


def in_total_order(
    values: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates ``(values, indices)`` ``(B, m)`` sorted by value, highest first, equal values by
    lower item index: a stable sort by value of the candidates put in index order."""
    by_index = indices.argsort(dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    order = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, order), indices.gather(1, order)


def linear_ranked_top(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, k: int, chunk: int
) -> torch.Tensor:
    """``[B, k]`` int64 item indices: :func:`ranked_top` of ``h @ weight.T + bias`` (NaN ranked
    last) computed ``chunk`` columns at a time. Each chunk's own ranked top ``k`` is merged with the
    best ``k`` so far; the merged candidates hold the global top ``k`` under the total order, so the
    lists equal those of the materialised scores (up to the rounding of differently shaped products).

    ``h``: ``[B, d]``; ``weight``: ``[n, d]``; ``bias``: ``[n]`` or ``None``."""
    n = weight.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    buf = h.new_empty(len(h), min(max(chunk, k), n))
    best_v = best_i = None
    for lo in range(0, n, buf.shape[1]):
        hi = min(lo + buf.shape[1], n)
        out = buf[:, : hi - lo]
        _product(h, weight[lo:hi], None if bias is None else bias[lo:hi], out)
        v, i = ranked_top(out.nan_to_num_(nan=-torch.inf), min(k, hi - lo))
        i = i + lo
        if best_v is not None and best_i is not None:
            v, i = in_total_order(torch.cat([best_v, v], 1), torch.cat([best_i, i], 1))
        best_v, best_i = v[:, :k], i[:, :k]
    assert best_i is not None
    return best_i


def self_information(popularity: np.ndarray) -> np.ndarray:
    """``[n]`` float64 ``−log2 p(i)`` of item probabilities ``p`` (strictly positive: use a
    smoothed popularity, e.g. :func:`rlrec.data.popularity.item_popularity`'s default)."""
    p = np.asarray(popularity, dtype=np.float64)
    if p.ndim != 1 or not bool(np.all(np.isfinite(p) & (p > 0))):
        raise ValueError("popularity must be a 1-d array of finite, strictly positive p(i)")
    return -np.log2(p)


class ListAccumulator:
    """Coverage, intra-list diversity and novelty of top-k lists, accumulated over batches.

    ``ks``: cut-offs (each list must have ``max(ks)`` items, best first); ``n_items``: catalogue
    size, the denominator of coverage; ``vectors``: ``[n, d]`` item vectors for diversity (``None``:
    no diversity) and ``label`` naming them in the key (``diversity_{label}@k``); ``popularity``:
    ``[n]`` probabilities for novelty (``None``: no novelty); ``coverage``: whether to report it.

    * ``coverage@k = |{i : i in the top k of at least one event}| / n``;
    * ``diversity_{label}@k = mean_e [1 − (2 / (k(k−1))) Σ_{a<b ≤ k} cos(v_{L_e[a]}, v_{L_e[b]})]``
      — NaN at ``k = 1`` (no pairs). A zero vector has cosine 0 with every item;
    * ``novelty@k = mean_e (1/k) Σ_{a ≤ k} −log2 p(L_e[a])``.

    State: ``_first[i]`` the best (lowest) 0-based list position item ``i`` has held (``k_max``
    when never listed), so ``coverage@k = mean(_first < k)``; float64 per-position sums of the
    self-information and per-cut-off sums of the diversity; the event count.
    """

    def __init__(
        self,
        ks: Sequence[int],
        n_items: int,
        *,
        coverage: bool = True,
        vectors: torch.Tensor | None = None,
        label: str = "head",
        popularity: np.ndarray | None = None,
    ) -> None:
        self.ks = tuple(sorted(set(ks)))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"ks must be non-empty positive cut-offs, got {tuple(ks)}")
        self.k_max = self.ks[-1]
        if not 0 < self.k_max <= n_items:
            raise ValueError(
                f"cut-offs up to {self.k_max} need at least as many items, have {n_items}"
            )
        if vectors is not None and (vectors.dim() != 2 or vectors.shape[0] != n_items):
            raise ValueError(f"vectors must be [{n_items}, d], got {tuple(vectors.shape)}")
        self.n_items = n_items
        self.coverage = coverage
        self.vectors = vectors
        self.label = label
        self.info = None if popularity is None else torch.from_numpy(self_information(popularity))
        if self.info is not None and len(self.info) != n_items:
            raise ValueError(f"popularity has {len(self.info)} entries, expected {n_items}")
        self.n_events = 0
        self._first: torch.Tensor | None = None
        self._info_sum = torch.zeros(self.k_max, dtype=torch.float64)
        self._diversity_sum = torch.zeros(len(self.ks), dtype=torch.float64)

    def update(self, lists: torch.Tensor) -> None:
        """Add ``lists``: ``[B, k_max]`` int64 item indices, each row one event's list, best first."""
        if lists.dim() != 2 or lists.shape[1] != self.k_max:
            raise ValueError(f"lists must be [B, {self.k_max}], got {tuple(lists.shape)}")
        self.n_events += len(lists)
        if self.coverage:
            if self._first is None:
                self._first = torch.full((self.n_items,), self.k_max, device=lists.device)
            pos = torch.arange(self.k_max, device=lists.device).expand_as(lists)
            self._first.scatter_reduce_(0, lists.flatten(), pos.flatten(), "amin")
        if self.info is not None:
            self.info = self.info.to(lists.device)
            self._info_sum += self.info[lists].sum(dim=0).cpu()
        if self.vectors is not None:
            self._diversity_sum += self._pairwise_cosines(lists).cpu()

    def _pairwise_cosines(self, lists: torch.Tensor) -> torch.Tensor:
        """``[len(ks)]`` Σ over the batch of each list's ``1 − mean pairwise cos`` at each cut-off
        (0 at ``k = 1``). With unit vectors ``u`` (0 for a zero vector) and ``S_k = Σ_{a ≤ k} u_a``,
        ``Σ_{a<b ≤ k} cos = (|S_k|² − Σ_{a ≤ k} |u_a|²) / 2``: ``O(k·d)`` per list, in float64."""
        assert self.vectors is not None
        v = self.vectors[lists].to(torch.float64)  # [B, k_max, d]
        norm = v.norm(dim=2, keepdim=True)
        u = torch.where(norm > 0, v / norm.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        sums = u.cumsum(dim=1).square().sum(dim=2)  # [B, k_max] |S_k|²
        self_dots = u.square().sum(dim=2).cumsum(dim=1)  # [B, k_max] Σ |u_a|²
        out = torch.zeros(len(self.ks), dtype=torch.float64, device=lists.device)
        for j, k in enumerate(self.ks):
            if k > 1:
                cos = (sums[:, k - 1] - self_dots[:, k - 1]) / (k * (k - 1))
                out[j] = (1.0 - cos).sum()
        return out

    def compute(self) -> dict[str, float]:
        """``coverage@k`` (when asked for) and, where their inputs were given,
        ``diversity_{label}@k`` and ``novelty@k`` for every ``k``; NaN when no event was added."""
        out: dict[str, float] = {}
        first = self._first
        for j, k in enumerate(self.ks):
            if self.coverage:
                covered = 0 if first is None else int((first < k).sum())
                out[f"coverage@{k}"] = _rate(covered, self.n_items if self.n_events else 0)
            if self.vectors is not None:
                pairs = self.n_events if k > 1 else 0
                out[f"diversity_{self.label}@{k}"] = _rate(float(self._diversity_sum[j]), pairs)
            if self.info is not None:
                total = float(self._info_sum[:k].sum())
                out[f"novelty@{k}"] = _rate(total, k * self.n_events)
        return out
