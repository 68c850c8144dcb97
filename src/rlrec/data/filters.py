"""Minimum-count filters on sessions and items (P-SA2C §4.1.1; docs/data.md)."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.data.parts import EventParts
from rlrec.data.schema import ITEM, SESSION


class FilterConfig(StrictModel):
    """Keep sessions with ≥ ``min_session_events`` events, then items with ≥ ``min_item_events``.

    The reference RetailRocket pipeline applies the two filters once, in this order, so some sessions
    end up shorter than the minimum; ``iterate: true`` repeats both until nothing changes instead.
    """

    min_session_events: int = Field(1, ge=1)
    min_item_events: int = Field(1, ge=1)
    iterate: bool = False


class FilteredParts:
    """The events of :class:`~rlrec.data.parts.EventParts` after the session and item filters,
    part by part (a part holds whole sessions, so the session filter is local to it).

    The item filter needs counts over the whole log, so it is settled first (:meth:`_settle`): with
    ``I₀`` = every item, round ``r`` counts the items of the session-filtered events restricted to
    ``Iᵣ`` and keeps ``Iᵣ₊₁`` = those with at least ``min_item_events``. The events are then the
    session filter of the ``Iᵣ`` events, restricted to ``Iᵣ₊₁`` — after one round the reference's
    "sessions, then items, once" (P-SA2C §4.1.1); with ``iterate`` rounds repeat until nothing
    changes, the largest subset in which every session and item has its minimum (the same fixed
    point as filtering the whole log repeatedly, whatever the order).
    """

    def __init__(self, parts: EventParts, cfg: FilterConfig) -> None:
        self.parts, self.cfg = parts, cfg
        self.before: pl.Series | None = None
        self.after: pl.Series | None = None
        self._settle()

    def _round(self, events: pl.DataFrame) -> pl.DataFrame:
        if self.before is not None:
            events = events.filter(pl.col(ITEM).is_in(self.before.implode()))
        if self.cfg.min_session_events > 1:
            events = events.filter(pl.len().over(SESSION) >= self.cfg.min_session_events)
        return events

    def _item_counts(self) -> pl.DataFrame:
        counts = [
            self._round(part).group_by(ITEM).agg(pl.len().alias("count_all")) for part in self.parts
        ]
        return pl.concat(counts).group_by(ITEM).agg(pl.col("count_all").sum())

    def _settle(self) -> None:
        if self.cfg.min_item_events <= 1:
            return
        while True:
            counts = self._item_counts()
            self.after = counts.filter(pl.col("count_all") >= self.cfg.min_item_events)[ITEM]
            if not self.cfg.iterate or len(self.after) == counts.height:
                return
            self.before = self.after

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for part in self.parts:
            events = self._round(part)
            if self.after is not None:
                events = events.filter(pl.col(ITEM).is_in(self.after.implode()))
            yield events


def apply_filters(events: pl.DataFrame, cfg: FilterConfig) -> pl.DataFrame:
    """:class:`FilteredParts` of one in-memory part: the filtered events, in their order."""
    (filtered,) = FilteredParts(EventParts([events], events.height), cfg)
    return filtered
