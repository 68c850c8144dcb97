"""Item popularity as a behaviour-policy estimate β(a) (P-SA2C §4.4).

The reference computes ``pop[a] = #rows with item a / #rows`` over all splits, which leaks test
frequencies into SA2C's off-policy weights and into NG_off. rlrec defaults to the training split with
additive smoothing (so items unseen in training keep a small non-zero β); ``scope="all"`` with
``smoothing=0`` reproduces the reference exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rlrec.data.dataset import PreparedDataset

PopScope = Literal["train", "all"]


def item_popularity(
    ds: PreparedDataset, scope: PopScope = "train", smoothing: float = 1.0
) -> np.ndarray:
    """``[n]`` float64 probabilities ``(count_a + smoothing) / Σ (count + smoothing)``, summing to 1."""
    if smoothing < 0:
        raise ValueError("smoothing must be non-negative")
    column = "count_train" if scope == "train" else "count_all"
    counts = np.zeros(ds.n_items, dtype=np.float64)
    items = ds.items
    counts[items.get_column("item").to_numpy()] = items.get_column(column).to_numpy()
    counts += smoothing
    total = counts.sum()
    if total <= 0:
        raise ValueError(f"no {scope} events to estimate popularity from; use smoothing > 0")
    return counts / total
