"""Per-item interaction logs → list records (P-HAC A.1, shared by ML, KuaiRand, OBD).

Input: an event table in *source order* (the order that breaks timestamp ties) with columns
``user`` (raw id), ``item`` (raw id), ``timestamp`` (Int64) and ``label`` (Int8 in {0, 1}).

1. Users are re-indexed ``0..U-1`` and items ``1..N`` in ascending raw-id order (0 = padding).
2. Each user's events are sorted by timestamp with a **stable** sort (ties keep the source order).
3. The sequence is cut into consecutive chunks of ``K``; a trailing chunk with fewer than ``K``
   events is dropped (the paper is silent; the reference code needs exactly ``K`` per list).
4. Chunk ``j`` becomes a record: ``exposure``/``labels`` from the chunk, ``timestamp`` = time of its
   last event, ``seq_idx = j``, ``history`` = the positive items of chunks ``0..j-1`` in order
   (never of the current chunk).
"""

from __future__ import annotations

import polars as pl

from rlrec.sim.schema import EXPOSURE, HISTORY, ITEM, LABELS, RAW, SEQ, TIME, USER, records_frame

EV_USER, EV_ITEM, EV_TIME, EV_LABEL = "user", "item", "timestamp", "label"


def build_records(
    events: pl.DataFrame, slate_size: int, max_history: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(records, users, items)`` from an event table (see the module docstring).

    ``users``: ``user_id, raw_id``; ``items``: ``item_id, raw_id`` — every user and item of the event
    table, including those whose events all fell in a dropped trailing chunk. ``max_history`` keeps only
    the last ``max_history`` history items per record (``None``: the full history).
    """
    k = slate_size
    ev = events.select(
        (pl.col(EV_USER).rank("dense") - 1).cast(pl.Int64).alias(USER),
        pl.col(EV_ITEM).rank("dense").cast(pl.Int32).alias(ITEM),
        pl.col(EV_USER).alias("_raw_user"),
        pl.col(EV_ITEM).alias("_raw_item"),
        pl.col(EV_TIME).cast(pl.Int64),
        pl.col(EV_LABEL).cast(pl.Int8),
    )
    users = ev.group_by(USER).agg(pl.col("_raw_user").first().alias(RAW)).sort(USER)
    items = ev.group_by(ITEM).agg(pl.col("_raw_item").first().alias(RAW)).sort(ITEM)
    ev = ev.sort([USER, EV_TIME], maintain_order=True).with_columns(
        (pl.int_range(pl.len()).over(USER) // k).alias("_chunk"),
        (pl.len().over(USER) // k).alias("_full"),
    )
    ev = ev.filter(pl.col("_chunk") < pl.col("_full"))
    recs = ev.group_by([USER, "_chunk"], maintain_order=True).agg(
        pl.col(ITEM).alias(EXPOSURE),
        pl.col(EV_LABEL).alias(LABELS),
        pl.col(EV_TIME).last().alias(TIME),
    )
    recs = attach_histories(recs.rename({"_chunk": SEQ}), max_history)
    return records_frame(recs), users, items


def attach_histories(recs: pl.DataFrame, max_history: int | None = None) -> pl.DataFrame:
    """Add ``history`` = the positives of the user's earlier lists (by ``seq_idx``), oldest first.

    ``recs`` has ``user_id, seq_idx, exposure, labels``; row order is kept.
    """
    recs = recs.with_row_index("_row")
    ordered = recs.sort([USER, SEQ]).with_columns(
        pl.col(LABELS).list.eval(pl.element().cast(pl.Int64)).list.sum().alias("_npos")
    )
    ordered = ordered.with_columns(
        (pl.col("_npos").cum_sum().over(USER) - pl.col("_npos")).alias("_before")
    )
    flat = ordered.select(USER, pl.col(EXPOSURE), pl.col(LABELS)).explode([EXPOSURE, LABELS])
    positives = (
        flat.filter(pl.col(LABELS) == 1)
        .group_by(USER, maintain_order=True)
        .agg(pl.col(EXPOSURE).alias("_pos"))
    )
    ordered = ordered.join(positives, on=USER, how="left", maintain_order="left")
    history = pl.col("_pos").list.slice(0, pl.col("_before"))
    if max_history is not None:
        history = history.list.tail(max_history)
    ordered = ordered.with_columns(
        history.fill_null(pl.lit([], dtype=pl.List(pl.Int32)))
        .cast(pl.List(pl.Int32))
        .alias(HISTORY)
    )
    return ordered.sort("_row").drop("_row", "_npos", "_before", "_pos")
