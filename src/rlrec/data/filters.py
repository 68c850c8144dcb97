"""Minimum-count filters on sessions and items (P-SA2C §4.1.1; docs/data.md)."""

from __future__ import annotations

import polars as pl
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.data.schema import ITEM, SESSION


class FilterConfig(StrictModel):
    """Keep sessions with ≥ ``min_session_events`` events, then items with ≥ ``min_item_events``.

    The reference RetailRocket pipeline applies the two filters once, in this order, so some sessions
    end up shorter than the minimum; ``iterate: true`` repeats both until nothing changes instead.
    """

    min_session_events: int = Field(1, ge=1)
    min_item_events: int = Field(1, ge=1)
    iterate: bool = False


def apply_filters(events: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """Apply the session filter, then the item filter; repeat to a fixed point if ``cfg.iterate``."""
    while True:
        before = events.height
        if cfg.min_session_events > 1:
            events = events.filter(pl.len().over(SESSION) >= cfg.min_session_events)
        if cfg.min_item_events > 1:
            events = events.filter(pl.len().over(ITEM) >= cfg.min_item_events)
        if not cfg.iterate or events.height == before:
            return events
