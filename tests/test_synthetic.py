"""The synthetic generator: seeded, power-law popularity, and its planted structure is present."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rlrec.data.synthetic import SynthConfig, generate


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame, SynthConfig]:
    cfg = SynthConfig(n_sessions=3000, n_items=400, n_topics=8, seed=5)
    events, items = generate(cfg)
    return events, items, cfg


def test_same_seed_same_data_other_seed_other_data() -> None:
    cfg = SynthConfig(n_sessions=200, n_items=100, n_topics=5)
    assert generate(cfg)[0].equals(generate(cfg)[0])
    assert not generate(cfg)[0].equals(generate(cfg.model_copy(update={"seed": 1}))[0])


def test_sessions_have_min_clicks_and_ordered_time(data) -> None:
    events, _, cfg = data
    per = events.group_by("session_id").agg(
        (pl.col("is_buy") == 0).sum().alias("clicks"),
        pl.col("timestamp").diff().min().alias("min_gap"),
    )
    assert per.height == cfg.n_sessions
    assert per.get_column("clicks").min() >= cfg.min_clicks
    assert per.get_column("clicks").max() <= cfg.max_clicks
    assert per.get_column("min_gap").min() >= 1  # strictly increasing timestamps


def test_purchase_is_the_item_just_clicked(data) -> None:
    events, _, _ = data
    prev_item = pl.col("item_id").shift(1).over("session_id")
    prev_buy = pl.col("is_buy").shift(1).over("session_id")
    buys = events.with_columns(prev_item.alias("p"), prev_buy.alias("pb")).filter(
        pl.col("is_buy") == 1
    )
    assert buys.height > 0
    assert (buys.get_column("p") == buys.get_column("item_id")).all()
    assert (buys.get_column("pb") == 0).all()


def test_planted_successor_signal(data) -> None:
    """A click follows a successor of the previous click far more often than chance."""
    events, items, cfg = data
    clicks = events.filter(pl.col("is_buy") == 0)
    succ = {i: set(s) for i, s in zip(items["item_id"], items["successors"], strict=True)}
    prev = clicks.get_column("item_id").shift(1).to_list()
    same = (clicks.get_column("session_id") == clicks.get_column("session_id").shift(1)).to_list()
    pairs = [(p, c) for p, c, s in zip(prev, clicks["item_id"], same, strict=True) if s]
    follow = np.mean([c in succ[p] for p, c in pairs])
    assert follow > cfg.p_follow  # ≥ p_follow plus the chance that a fresh draw is a successor
    assert follow < cfg.p_follow + 0.3


def test_power_law_popularity_and_propensity_truth(data) -> None:
    events, items, _ = data
    counts = events.group_by("item_id").len().sort("len", descending=True).get_column("len")
    assert counts[0] > 10 * counts[len(counts) // 2]  # heavy head
    rates = (
        events.group_by("item_id")
        .agg((pl.col("is_buy").sum() / (pl.col("is_buy") == 0).sum()).alias("rate"), pl.len())
        .join(items, on="item_id")
        .filter(pl.col("len") > 200)
    )
    corr = np.corrcoef(rates["rate"].to_numpy(), rates["buy_propensity"].to_numpy())[0, 1]
    assert corr > 0.9  # the written ground truth is what generated the purchases
