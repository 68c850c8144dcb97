"""Events split into parts by session-id range, so that a log larger than memory is prepared one
part at a time (``rlrec data prepare --memory-limit``; docs/data.md, "Logs larger than memory").

Every step of :func:`rlrec.data.prepare.prepare` that looks at one session at a time (the source's
session selection, the session filter, the sort, the split labels) runs part by part; the steps that
need the whole log keep only small tables in memory (one row per session or per item). Parts are
**ranges** of session ids, in ascending order, so the parts taken in order are the log sorted by
session, and the dataset files are written by appending part after part.

* :func:`in_memory` — one part, the whole log (the default: what fits in memory is not split);
* :func:`on_disk` — a first pass over the source draws every ``k``-th session id, whose quantiles are
  the part boundaries (about ``rows_per_part`` events each); a second pass appends each batch's rows
  to their part's Parquet file in a scratch directory.

Either way the rows of every part keep the source order (batches are appended in order), so a stable
sort of a part breaks timestamp ties exactly as a stable sort of the whole log would; each row also
carries :data:`ROW`, its position in the source order, for the selections that need it (YooChoose's
sample takes sessions in order of first appearance). :class:`RowGroupWriter` writes the output
files in fixed row groups, so the bytes do not depend on how the rows were split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from rlrec.data.schema import SESSION

ROW = "_row"
"""Position of an event in the source order (UInt64)."""

ROW_GROUP = 1 << 20
"""Rows per row group of every dataset file (the last group holds the rest)."""

SAMPLE_TARGET = 200_000
"""About how many session ids the boundary pass keeps."""

Batches = Callable[[], Iterable[pl.DataFrame]]
"""A fresh pass over the source: batches of canonical events in source order."""


class SessionSelection(Protocol):
    """A source that keeps only some sessions (YooChoose: enough clicks, then a seeded sample)."""

    def session_stats(self, events: pl.DataFrame) -> pl.DataFrame | None: ...

    def choose_sessions(self, stats: pl.DataFrame, seed: int) -> pl.Series: ...


class EventParts:
    """The events of one prepare run as session-range parts, read back one at a time, in order."""

    def __init__(self, parts: list[pl.DataFrame | Path], height: int) -> None:
        self._parts = parts
        self.height = height

    def __len__(self) -> int:
        return len(self._parts)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for part in self._parts:
            yield pl.read_parquet(part) if isinstance(part, Path) else part

    def replace(self, change: Callable[[int, pl.DataFrame], pl.DataFrame]) -> None:
        """Replace part ``i`` by ``change(i, part)`` (in memory, or rewriting its scratch file),
        so that later passes read the smaller result."""
        height = 0
        for i, part in enumerate(self):
            new = change(i, part)
            height += new.height
            if isinstance(path := self._parts[i], Path):
                new.write_parquet(path)
            else:
                self._parts[i] = new
        self.height = height


def in_memory(batches: Batches) -> EventParts:
    """The whole log as one part."""
    frames = list(batches())
    events = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    events = events.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.UInt64))
    return EventParts([events], events.height)


def on_disk(
    batches: Batches,
    sessions: Callable[[int], pl.Series],
    rows: int,
    rows_per_part: int,
    scratch: Path,
) -> EventParts:
    """Range parts of about ``rows_per_part`` events each, written under ``scratch``.

    ``sessions(every)``: every ``every``-th session id of the source, in source order (the first
    pass); ``rows``: an upper estimate of the number of events, which sets ``every``.
    """
    every = max(1, rows // SAMPLE_TARGET)
    sample = sessions(every).sort()
    n_parts = max(1, math.ceil(len(sample) * every / rows_per_part))
    cuts = sorted({int(len(sample) * i / n_parts) for i in range(1, n_parts)} - {0, len(sample)})
    bounds = sample.gather(cuts).unique(maintain_order=True) if cuts else sample.clear()
    scratch.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pq.ParquetWriter] = {}
    offset = 0
    try:
        for batch in batches():
            if batch.height == 0:
                continue
            part = bounds.search_sorted(batch.get_column(SESSION), side="right")
            rows_in = batch.with_columns(
                (pl.int_range(batch.height, dtype=pl.UInt64) + offset).alias(ROW),
                pl.Series("_part", part, dtype=pl.UInt32),
            )
            offset += batch.height
            for (key,), piece in rows_in.partition_by("_part", as_dict=True).items():
                table = piece.drop("_part").to_arrow()
                if key not in writers:
                    writers[key] = pq.ParquetWriter(
                        scratch / f"part-{key:05d}.parquet", table.schema
                    )
                writers[key].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    files = [scratch / f"part-{key:05d}.parquet" for key in sorted(writers)]
    return EventParts(list(files), offset)


class RowGroupWriter:
    """A Parquet file written in row groups of exactly :data:`ROW_GROUP` rows (zstd, statistics),
    however the rows arrive: the same rows give the same bytes."""

    def __init__(self, path: Path, template: pl.DataFrame) -> None:
        schema = template.clear().to_arrow().schema
        # plain encoding (no dictionary pages): faster and smaller for these id and time columns
        self._writer = pq.ParquetWriter(
            path, schema, compression="zstd", write_statistics=True, use_dictionary=False
        )
        self._pending: list[pa.Table] = []
        self._rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self._pending.append(frame.to_arrow())
        self._rows += frame.height
        if self._rows >= ROW_GROUP:
            table = pa.concat_tables(self._pending)
            whole = (self._rows // ROW_GROUP) * ROW_GROUP
            for lo in range(0, whole, ROW_GROUP):
                self._write_group(table.slice(lo, ROW_GROUP))
            rest = table.slice(whole)
            self._pending, self._rows = ([rest] if rest.num_rows else []), rest.num_rows

    def _write_group(self, table: pa.Table) -> None:
        # contiguous columns: the pages a column is cut into then depend on its rows alone
        self._writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP)

    def close(self) -> None:
        if self._pending:
            self._write_group(pa.concat_tables(self._pending))
        self._writer.close()


def select_sessions(
    source: SessionSelection, parts: EventParts, seed: int
) -> list[pl.Series | None]:
    """Per part, the session ids the source keeps (``None``: all of them).

    ``source.session_stats(part)`` gives one row per session of a part, sorted by id (or ``None``:
    the source keeps every session); ``source.choose_sessions(stats, seed)`` decides on the stats of
    the whole log at once, which a seeded sample of sessions needs.
    """
    stats = [source.session_stats(part) for part in parts]
    present = [s for s in stats if s is not None]
    if len(present) < len(stats):
        return [None] * len(stats)
    sizes = [s.height for s in present]
    table = pl.concat(present, how="vertical")
    del stats, present
    keep = source.choose_sessions(table, seed)
    ids = table.get_column(SESSION)
    out: list[pl.Series | None] = []
    lo = 0
    for size in sizes:
        out.append(ids.slice(lo, size).filter(keep.slice(lo, size)))
        lo += size
    return out
