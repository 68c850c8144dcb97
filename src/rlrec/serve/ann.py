"""Approximate top-k over a large catalogue with a FAISS index (the ``[faiss]`` extra).

A ranking head is affine, ``score_i(s) = ⟨s, w_i⟩ + b_i``, which is the inner product of the query
``[s, 1]`` with the item vector ``[w_i, b_i]``: the top k items are a maximum-inner-product search.
:class:`ItemIndex` turns that search into a nearest-neighbour one — item ``[x, √(R² − |x|²)]``,
query ``[q, 0]``, ``R`` the largest item norm, so the smallest Euclidean distance is the largest
inner product (Bachrach et al., RecSys 2014) — and keeps the item vectors in an HNSW graph
(``faiss.IndexHNSWFlat``; Malkov & Yashunin, TPAMI 2020), which returns, per state, ``candidates`` items
that are likely the best, re-scored exactly; the caller ranks those. The search visits
``efSearch`` graph nodes instead of all ``n`` items, so it misses a true top-k item now and then:
:meth:`ItemIndex.calibrate` sets that breadth to the smallest reaching a target recall@10 against
the exact ranking on sample states, and reports the recall.
"""

from __future__ import annotations

import numpy as np
import torch

from rlrec.errors import RlrecError


class ItemIndex:
    """HNSW index (inner product as distance) over the rows of a head's ``weight [n, H]`` and ``bias [n]``."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, *, m: int = 32, ef_search: int = 256
    ) -> None:
        try:
            import faiss
        except ImportError:
            raise RlrecError(
                'an approximate index needs the faiss extra: pip install "rlrec[faiss]"'
            ) from None
        self.m = m
        self.weight, self.bias = weight.detach().float().cpu(), bias.detach().float().cpu()
        items = torch.cat([self.weight, self.bias[:, None]], dim=1).double()
        norms = items.norm(dim=1)
        # inner product → Euclidean distance: [x, √(R² − |x|²)] against [q, 0] (R = max |x|)
        extra = (norms.max() ** 2 - norms**2).clamp(min=0).sqrt()
        vectors = torch.cat([items, extra[:, None]], dim=1).float().numpy()
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], m)
        self.index.hnsw.efConstruction = max(2 * m, 80)
        self.index.add(np.ascontiguousarray(vectors))
        self.index.hnsw.efSearch = ef_search

    def search(self, s: torch.Tensor, candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, indices)`` ``[B, candidates]`` for states ``s [B, H]``: the index's
        candidates, scored exactly by the head (indices of items not found are dropped by giving
        them ``-inf``)."""
        breadth = self.index.hnsw.efSearch
        self.index.hnsw.efSearch = max(breadth, candidates)
        s = s.detach().float().cpu()
        query = torch.cat([s, torch.ones(s.shape[0], 1), torch.zeros(s.shape[0], 1)], dim=1).numpy()
        _, found = self.index.search(np.ascontiguousarray(query), candidates)
        self.index.hnsw.efSearch = breadth
        indices = torch.from_numpy(found).long()
        missing = indices < 0
        indices = indices.clamp(min=0)
        scores = torch.einsum("bh,bkh->bk", s, self.weight[indices]) + self.bias[indices]
        return scores.masked_fill(missing, -torch.inf), indices

    def calibrate(self, s: torch.Tensor, k: int = 10, target: float = 0.95) -> float:
        """Set the search breadth (``efSearch``: 64, 128, … 8,192) to the smallest that reaches
        recall@``k`` ≥ ``target`` on states ``s [B, H]`` (the largest if none does); returns the
        recall at the breadth kept."""
        for ef in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
            self.index.hnsw.efSearch = ef
            recall = self.recall(s, k)
            if recall >= target:
                break
        return recall

    def recall(self, s: torch.Tensor, k: int = 10) -> float:
        """Share of the exact top ``k`` of states ``s [B, H]`` that the index returns in its top
        ``k`` (recall@k)."""
        s = s.detach().float().cpu()
        exact = torch.topk(s @ self.weight.T + self.bias, k, dim=1).indices
        _, found = self.search(s, k)
        hits = (found[:, :, None] == exact[:, None, :]).any(dim=1).sum()
        return float(hits) / exact.numel()
