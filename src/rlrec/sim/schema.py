"""The list-record schema (P-HAC §3.1.1) and the tables of a prepared list dataset.

One row of ``records`` is one request/response step of a user, in time order:

==============  ================  =============================================================
column          dtype             meaning
==============  ================  =============================================================
``user_id``     Int64             dense user index ``0..U-1`` (RL4RS: the session, never a feature)
``seq_idx``     Int32             position of the list within the user's sequence (0-based)
``timestamp``   Int64             time of the list (the last item's time for per-item logs)
``history``     List(Int32)       items the user responded to positively before this list,
                                  oldest first, in full (truncation/padding happen at load time)
``exposure``    List(Int32)       the K exposed items in logged order, dense ids ``1..N``
``labels``      List(Int8)        per-item feedback in {0, 1}, aligned with ``exposure``
==============  ================  =============================================================

``users``: ``user_id``, ``raw_id`` (the id in the raw files), ``features`` (List(Float32), d_u).
``items``: ``item_id`` (``1..N``; id 0 is padding), ``raw_id``, ``features`` (List(Float32), d_i),
``exposures`` and ``positives`` (counts over all records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

USER = "user_id"
SEQ = "seq_idx"
TIME = "timestamp"
HISTORY = "history"
EXPOSURE = "exposure"
LABELS = "labels"
ITEM = "item_id"
RAW = "raw_id"
FEATURES = "features"

RECORD_COLUMNS = (USER, SEQ, TIME, HISTORY, EXPOSURE, LABELS)
RECORD_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    USER: pl.Int64,
    SEQ: pl.Int32,
    TIME: pl.Int64,
    HISTORY: pl.List(pl.Int32),
    EXPOSURE: pl.List(pl.Int32),
    LABELS: pl.List(pl.Int8),
}


@dataclass
class ListTables:
    """What a list source produces: records, the user table and the item catalogue (dense ids).

    ``notes`` holds source-specific counts for the manifest (e.g. rows with ``duration_ms <= 0``);
    ``extras`` holds objects written beside the tables (the synthetic data's planted URM).
    """

    records: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    notes: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def records_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast the record columns in schema order."""
    return df.select(pl.col(c).cast(t) for c, t in RECORD_SCHEMA.items())
