"""The canonical event table every loader produces.

One row per logged event, in the *source order* that defines tie-breaks (prepare sorts stably by
``(session_id, timestamp)``, so events with equal timestamps keep this order):

===============  =============  ===========================================================
column           dtype          meaning
===============  =============  ===========================================================
``session_id``   Int64 | String session (or user) id as in the raw file
``item_id``      Int64 | String item id as in the raw file
``timestamp``    Int64          milliseconds since the Unix epoch (UTC)
``is_buy``       Int8           1 = purchase (reward ``r_buy``), 0 = click (``r_click``)
``rating``       Float32        optional: explicit rating where the source has one
===============  =============  ===========================================================

Ids stay raw here; prepare encodes items to ``0..n-1`` (ascending raw id, like scikit-learn's
``LabelEncoder`` in the reference code) and the padding id is ``n``. Raw ids that are all integers
are stored as Int64 (so they sort numerically), otherwise as String.
"""

from __future__ import annotations

import polars as pl

SESSION = "session_id"
ITEM = "item_id"
TIMESTAMP = "timestamp"
IS_BUY = "is_buy"
RATING = "rating"

REQUIRED_COLUMNS = (SESSION, ITEM, TIMESTAMP, IS_BUY)


def ids_to_canonical(df: pl.DataFrame, columns: tuple[str, ...] = (SESSION, ITEM)) -> pl.DataFrame:
    """Make id columns Int64 when all values are integers, String otherwise."""
    out = []
    for name in columns:
        s = df.get_column(name)
        if s.dtype.is_integer():
            out.append(s.cast(pl.Int64))
            continue
        text = s.cast(pl.String).str.strip_chars()
        as_int = text.cast(pl.Int64, strict=False)
        out.append(as_int if as_int.null_count() == text.null_count() else text)
    return df.with_columns(out)


def canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast the canonical columns (``rating`` kept only when present)."""
    cols = [
        pl.col(SESSION),
        pl.col(ITEM),
        pl.col(TIMESTAMP).cast(pl.Int64),
        pl.col(IS_BUY).cast(pl.Int8),
    ]
    if RATING in df.columns:
        cols.append(pl.col(RATING).cast(pl.Float32))
    return df.select(cols)
