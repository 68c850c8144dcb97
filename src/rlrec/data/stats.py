"""Dataset statistics (P-SA2C Table 1) and data diagnostics, as printed by ``rlrec data stats``."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrec.data.dataset import PreparedDataset, SessionLog
from rlrec.data.splits import SPLITS


def purchase_in_window(log: SessionLog, window: int) -> tuple[int, int]:
    """(#purchases whose item is among the previous ``window`` events of its session, #purchases).

    Explains why purchase HR is high on RC15: the target is often in the state.
    """
    pos = np.flatnonzero(log.is_buy == 1)
    if len(pos) == 0:
        return 0, 0
    start = np.repeat(log.starts[:-1], log.lengths)[pos]
    hit = np.zeros(len(pos), dtype=bool)
    for k in range(1, window + 1):
        prev = pos - k
        ok = prev >= start
        hit |= ok & (log.items[np.maximum(prev, 0)] == log.items[pos])
    return int(hit.sum()), len(pos)


def split_stats(log: SessionLog, window: int) -> dict[str, Any]:
    """Counts and diagnostics of one split."""
    buys = int(log.is_buy.sum())
    in_window, n_buys = purchase_in_window(log, window)
    lengths = log.lengths
    return {
        "sequences": log.n_sessions,
        "items": len(np.unique(log.items)),
        "events": log.n_events,
        "clicks": log.n_events - buys,
        "purchases": buys,
        "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
        "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "empty_history_events": log.n_sessions,
        "purchase_in_window": in_window / n_buys if n_buys else float("nan"),
    }


def dataset_stats(ds: PreparedDataset, batch_size: int = 256) -> dict[str, Any]:
    """Per-split and total statistics of a prepared dataset."""
    logs = {name: ds.split(name) for name in SPLITS}
    out: dict[str, Any] = {name: split_stats(log, ds.state_size) for name, log in logs.items()}
    total = {
        key: sum(out[s][key] for s in SPLITS)
        for key in ("sequences", "events", "clicks", "purchases", "empty_history_events")
    }
    total["items"] = ds.n_items
    hits = sum(purchase_in_window(log, ds.state_size)[0] for log in logs.values())
    total["purchase_in_window"] = hits / total["purchases"] if total["purchases"] else float("nan")
    total["mean_length"] = total["events"] / total["sequences"]
    out["all"] = total
    out["training"] = {
        "transitions": out["train"]["events"],
        "batches_per_epoch": out["train"]["events"]
        // batch_size,  # the last partial one is dropped
        "batch_size": batch_size,
        "state_size": ds.state_size,
        "pad_id": ds.pad_id,
    }
    return out
