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


def id_is_integer(ids: pl.Series) -> bool:
    """Whether an id column is integers (an integer dtype, or text that is all integers)."""
    if ids.dtype.is_integer():
        return True
    text = ids.cast(pl.String).str.strip_chars()
    return text.cast(pl.Int64, strict=False).null_count() == text.null_count()


def ids_as(df: pl.DataFrame, integer: dict[str, bool]) -> pl.DataFrame:
    """Cast each id column ``name`` to Int64 when ``integer[name]``, else to stripped String."""
    out = []
    for name, as_int in integer.items():
        s = df.get_column(name)
        text = s if s.dtype.is_integer() else s.cast(pl.String).str.strip_chars()
        out.append(text.cast(pl.Int64) if as_int else text.cast(pl.String))
    return df.with_columns(out)


def ids_to_canonical(df: pl.DataFrame, columns: tuple[str, ...] = (SESSION, ITEM)) -> pl.DataFrame:
    """Make id columns Int64 when all values are integers, String otherwise."""
    return ids_as(df, {name: id_is_integer(df.get_column(name)) for name in columns})


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
