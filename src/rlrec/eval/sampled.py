"""Sampled-ranking evaluation: the target ranked against 100 sampled negatives (docs/offline.md,
Evaluation, "Sampled ranking").

Full-catalogue ranking (``eval.protocol: full``) is the default and the protocol of P-SA2C and P-CCQL.
``uni100`` and ``pop100`` rank the target among itself and :data:`N_NEGATIVES` distinct negatives
drawn without replacement from the other items — uniformly, or by training popularity (successive
sampling: each negative drawn with probability proportional to ``p(i)`` among the items not yet
drawn). The target is never its own negative; the session's history is **not** excluded (as in the
full ranking, an item of the history competes like any other). Sampled metrics are not comparable
with full-ranking ones (Krichene & Rendle, KDD'20), hence the label on every output.

:class:`NegativeSampler` draws the negatives of event ``e`` from a generator seeded by
``(seed, e // BLOCK)``, so they depend on the seed and the split only — not on the batch size, the
device or the model: every checkpoint and every model evaluated with the same seed meets the same
negatives.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from rlrec.errors import ConfigError

Protocol = Literal["full", "uni100", "pop100"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
N_NEGATIVES = 100
BLOCK = 4096
"""Events per seeded block of negatives."""

PROTOCOL_LABELS = {
    "full": "full ranking",
    "uni100": f"sampled: target vs {N_NEGATIVES} uniform negatives",
    "pop100": f"sampled: target vs {N_NEGATIVES} popularity negatives",
}


def check_protocol(protocol: Protocol, n_items: int) -> None:
    """A sampled protocol needs at least ``N_NEGATIVES + 1`` items (a :class:`ConfigError`)."""
    if protocol != "full" and n_items < N_NEGATIVES + 1:
        raise ConfigError(
            f"eval.protocol {protocol} ranks the target against {N_NEGATIVES} negatives and needs at "
            f"least {N_NEGATIVES + 1} items; the catalogue has {n_items}"
        )


class NegativeSampler:
    """Seeded negatives for every event of a split.

    ``targets``: ``[E]`` int64 target item of each event; ``probs``: ``[n]`` sampling probabilities
    (``None``: uniform over the ``n_items`` items); ``seed``: the base seed. :meth:`rows` returns the
    ``[hi − lo, m]`` negatives of events ``lo … hi − 1``.
    """

    def __init__(
        self,
        targets: np.ndarray,
        n_items: int,
        *,
        probs: np.ndarray | None = None,
        seed: int = 0,
        m: int = N_NEGATIVES,
    ) -> None:
        if n_items < m + 1:
            raise ValueError(f"{m} negatives need at least {m + 1} items, have {n_items}")
        if probs is not None:
            probs = np.asarray(probs, dtype=np.float64)
            if probs.shape != (n_items,) or not bool(np.all(np.isfinite(probs) & (probs > 0))):
                raise ValueError(f"probs must be [{n_items}] finite and strictly positive")
            self.cdf: np.ndarray | None = np.cumsum(probs / probs.sum())
        else:
            self.cdf = None
        self.targets = np.asarray(targets, dtype=np.int64)
        self.n_items = n_items
        self.seed = seed
        self.m = m
        self._block: tuple[int, np.ndarray] | None = None

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """``[hi − lo, m]`` int64 negatives of events ``lo … hi − 1`` (each row distinct items,
        none equal to the event's target)."""
        parts = [np.empty((0, self.m), dtype=np.int64)]
        for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
            parts.append(self._get(b)[max(lo - b * BLOCK, 0) : hi - b * BLOCK])
        return np.concatenate(parts)

    def _get(self, b: int) -> np.ndarray:
        """The negatives of block ``b`` (the last block is kept: batches walk the events in order)."""
        if self._block is None or self._block[0] != b:
            targets = self.targets[b * BLOCK : (b + 1) * BLOCK]
            self._block = (b, self._draw(targets, np.random.default_rng([self.seed, b])))
        return self._block[1]

    def _draw(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[len(targets), m]`` distinct negatives per row: draw ``m`` items with replacement, then
        redraw every repeat and every copy of the target until none is left. The kept items are
        the first ``m`` distinct non-target items of an i.i.d. sequence, which is sampling without
        replacement (successive sampling when ``probs`` is not uniform)."""
        out = self._sample(rng, (len(targets), self.m))
        rows = np.arange(len(targets))  # the rows that may still hold a repeat or the target
        while len(rows):
            sub = out[rows]
            order = np.argsort(sub, axis=1, kind="stable")
            s = np.take_along_axis(sub, order, axis=1)
            repeat = np.zeros(sub.shape, dtype=bool)
            repeat[:, 1:] = s[:, 1:] == s[:, :-1]  # every copy after the first (in sorted order)
            bad = np.zeros_like(repeat)
            np.put_along_axis(bad, order, repeat, axis=1)
            bad |= sub == targets[rows, None]
            sub[bad] = self._sample(rng, (int(bad.sum()),))
            out[rows] = sub
            rows = rows[bad.any(axis=1)]
        return out

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.cdf is None:
            return rng.integers(0, self.n_items, size=shape, dtype=np.int64)
        idx = np.searchsorted(self.cdf, rng.random(size=shape), side="right")
        return np.minimum(idx, self.n_items - 1).astype(np.int64)  # cdf[-1] may round below 1


def candidate_scores(
    scores: torch.Tensor | None,
    h: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    candidates: torch.Tensor,
) -> torch.Tensor:
    """``[B, 1 + m]`` scores of ``candidates [B, 1 + m]`` (target first): gathered from the full
    ``scores [B, n]``, or, for a linear head, ``weight[c] · h + bias[c]`` for the candidates only
    (one batched product, so the target and its negatives are scored by the same computation)."""
    if scores is not None:
        return scores.gather(1, candidates)
    assert h is not None and weight is not None
    out = torch.bmm(weight[candidates], h.unsqueeze(2)).squeeze(2)
    return out if bias is None else out + bias[candidates]
