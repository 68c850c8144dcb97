"""Seeded synthetic click/purchase sessions with a planted, learnable structure.

The embedded default data set: it needs no download and is large or small on demand. The generative
process (every random draw from ``numpy.random.default_rng(seed)``):

* **Items** ``1..n_items`` have a power-law popularity ``w_i ∝ 1 / rank_i^zipf_exponent`` (ranks a
  random permutation), a topic (``n_topics`` equal-size groups), ``n_successors`` fixed *successor*
  items drawn from the same topic by popularity (with replacement), and a purchase propensity ``q_i ~ Beta(buy_alpha,
  buy_beta)`` drawn independently of popularity.
* **Sessions** pick a topic uniformly and a number of clicks ``C = min_clicks + Poisson(mean_clicks -
  min_clicks)`` (at most ``max_clicks``). The first click is a popularity draw from the topic; each
  next click is, with probability ``p_follow``, a uniformly chosen successor of the previous click
  (the *sequential* signal), and otherwise a fresh popularity draw from the topic.
* **Purchases**: right after a click on item ``i`` the user buys ``i`` with probability ``q_i``. So the
  purchase target is the item just clicked, and whether it comes depends on an item property that is
  unrelated to click popularity: a model that maximises purchase reward must learn ``q`` from the
  rewards, which a click-dominated next-item objective under-weights.
* **Timestamps** (ms): session starts uniform over 30 days from ``start``; gaps between events are
  exponential (mean 30 s, at least 1 ms), so the order is strict.

The ground truth (topic, popularity, successors, propensity) is written beside the events so tests
and benchmarks can check what a model learned.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from rlrec.config import StrictModel, dump_config
from rlrec.data.loaders.synthetic import EVENTS_FILE, ITEMS_FILE
from rlrec.data.schema import IS_BUY, ITEM, SESSION, TIMESTAMP, canonical
from rlrec.errors import ConfigError
from rlrec.outputs import check_output, new_output

DAY_MS = 86_400_000


class SynthConfig(StrictModel):
    """Parameters of the synthetic session generator (see the module docstring)."""

    n_sessions: int = Field(5000, ge=1)
    n_items: int = Field(1000, ge=2)
    n_topics: int = Field(20, ge=1)
    zipf_exponent: float = Field(1.0, ge=0.0)
    mean_clicks: float = Field(8.0, gt=0.0)
    min_clicks: int = Field(3, ge=1)
    max_clicks: int = Field(50, ge=1)
    p_follow: float = Field(0.6, ge=0.0, le=1.0)
    n_successors: int = Field(3, ge=1)
    buy_alpha: float = Field(0.3, gt=0.0)
    buy_beta: float = Field(3.0, gt=0.0)
    start: str = "2024-01-01T00:00:00Z"
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        if self.n_topics > self.n_items:
            raise ValueError("n_topics must not exceed n_items")
        if not self.min_clicks <= self.max_clicks:
            raise ValueError("min_clicks must not exceed max_clicks")
        if self.mean_clicks < self.min_clicks:
            raise ValueError("mean_clicks must be at least min_clicks")
        return self


def _start_ms(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"synth 'start': not an ISO-8601 time: '{text}'") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class _TopicSampler:
    """Popularity-weighted draws restricted to a topic, vectorised over many topics at once.

    Items are laid out by topic with cumulative weights normalised to ``[z, z + 1)`` for topic ``z``,
    so a draw for topic ``z`` is one ``searchsorted`` of ``z + U(0, 1)``.
    """

    def __init__(self, topic: np.ndarray, weight: np.ndarray) -> None:
        order = np.lexsort((np.arange(len(topic)), topic))
        self.items = order
        t = topic[order]
        w = weight[order]
        totals = np.bincount(t, weights=w)
        within = np.cumsum(w) - np.repeat(np.cumsum(totals) - totals, np.bincount(t))
        self.cum = t + within / totals[t]
        last = np.r_[np.flatnonzero(np.diff(t)), len(t) - 1]
        self.cum[last] = t[last] + 1.0  # exact topic boundaries despite rounding

    def draw(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = topics + rng.random(len(topics))
        idx = np.searchsorted(self.cum, u, side="right")
        return self.items[np.minimum(idx, len(self.items) - 1)]


def generate(cfg: SynthConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Draw the sessions: ``(events in the canonical schema, item ground truth)``."""
    rng = np.random.default_rng(cfg.seed)
    n, s = cfg.n_items, cfg.n_sessions
    rank = rng.permutation(n)
    popularity = 1.0 / (rank + 1.0) ** cfg.zipf_exponent
    popularity /= popularity.sum()
    topic = rng.permutation(n) % cfg.n_topics
    sampler = _TopicSampler(topic, popularity)
    successors = sampler.draw(np.repeat(topic, cfg.n_successors), rng).reshape(n, cfg.n_successors)
    propensity = rng.beta(cfg.buy_alpha, cfg.buy_beta, n)

    session_topic = rng.integers(0, cfg.n_topics, s)
    n_clicks = np.minimum(
        cfg.min_clicks + rng.poisson(cfg.mean_clicks - cfg.min_clicks, s), cfg.max_clicks
    )
    width = int(n_clicks.max())
    clicks = np.empty((s, width), dtype=np.int64)
    clicks[:, 0] = sampler.draw(session_topic, rng)
    for t in range(1, width):
        follow = rng.random(s) < cfg.p_follow
        succ = successors[clicks[:, t - 1], rng.integers(0, cfg.n_successors, s)]
        fresh = sampler.draw(session_topic, rng)
        clicks[:, t] = np.where(follow, succ, fresh)
    valid = np.arange(width)[None, :] < n_clicks[:, None]
    buys = valid & (rng.random((s, width)) < propensity[clicks])

    # Interleave: slot 2j is click j, slot 2j+1 its purchase (if any); keep valid slots in order.
    item = np.repeat(clicks, 2, axis=1)
    flag = np.zeros((s, 2 * width), dtype=np.int8)
    flag[:, 1::2] = 1
    keep = np.empty((s, 2 * width), dtype=bool)
    keep[:, 0::2] = valid
    keep[:, 1::2] = buys
    session = np.broadcast_to(np.arange(1, s + 1)[:, None], keep.shape)[keep]
    item, flag = item[keep], flag[keep]

    gaps = np.maximum(1, rng.exponential(30_000.0, len(item)).astype(np.int64))
    starts = _start_ms(cfg.start) + (rng.random(s) * 30 * DAY_MS).astype(np.int64)
    first = np.r_[True, session[1:] != session[:-1]]
    gaps[first] = 0
    cum = np.cumsum(gaps)
    session_base = np.maximum.accumulate(np.where(first, cum, 0))
    timestamp = starts[session - 1] + (cum - session_base)

    events = pl.DataFrame(
        {
            SESSION: session.astype(np.int64),
            ITEM: item + 1,
            TIMESTAMP: timestamp,
            IS_BUY: flag,
        }
    )
    items = pl.DataFrame(
        {
            ITEM: np.arange(1, n + 1, dtype=np.int64),
            "topic": topic.astype(np.int32),
            "popularity": popularity,
            "buy_propensity": propensity,
            "successors": (successors + 1).tolist(),
        }
    )
    return canonical(events), items


def write_synthetic(cfg: SynthConfig, out: Path, *, overwrite: bool = False) -> pl.DataFrame:
    """Generate and write ``events.parquet``, ``items.parquet`` (ground truth) and ``config.yaml``."""
    check_output(out, "synthetic_raw", overwrite=overwrite)
    events, items = generate(cfg)
    with new_output(out, "synthetic_raw", overwrite=overwrite) as tmp:
        events.write_parquet(tmp / EVENTS_FILE, compression="zstd")
        items.write_parquet(tmp / ITEMS_FILE, compression="zstd")
        dump_config(cfg, tmp / "config.yaml")
    return events
