"""Raw source → prepared dataset directory (Parquet + ``manifest.json``), atomically.

Layout of a prepared dataset::

    DIR/manifest.json      source, options, input hashes, counts, split sizes, n_items, file hashes
    DIR/config.yaml        the resolved PrepareConfig
    DIR/train.parquet      events of the training sessions  (session_id, item, is_buy, timestamp[, rating])
    DIR/val.parquet        ... validation sessions
    DIR/test.parquet       ... test sessions
    DIR/items.parquet      item (0..n-1) → raw item_id, count_all, count_train  (popularity)
    DIR/splits.parquet     session_id → split (reusable as ``split: {kind: file}`` elsewhere)

Events are sorted by ``(session_id, timestamp)`` with a stable sort (ties keep the source order), so
each session is a contiguous run in its split file. The pipeline runs on session-range parts
(:mod:`rlrec.data.parts`): one part, the whole log, in memory by default; many, on disk, with a
``memory_limit`` — the same code either way, hence the same bytes. Items are encoded ``0..n-1`` in ascending order of
the raw id (the reference's ``LabelEncoder``); the padding id is ``n``. The vocabulary covers all
splits, as in the reference; popularity is stored for both scopes (train only and all splits).
Preparing twice from the same inputs and config gives byte-identical files.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from rlrec.config import StrictModel, dump_config
from rlrec.data.filters import FilterConfig, FilteredParts
from rlrec.data.loaders import Source
from rlrec.data.parts import ROW, RowGroupWriter, in_memory, on_disk, select_sessions
from rlrec.data.schema import IS_BUY, ITEM, RATING, SESSION, TIMESTAMP
from rlrec.data.splits import SPLITS, START, SplitConfig, assign_splits
from rlrec.errors import ConfigError, DataFormatError
from rlrec.fsutil import atomic_write_json
from rlrec.manifest import MANIFEST, manifest_head
from rlrec.outputs import check_output, new_output

FORMAT = "rlrec.dataset"
FORMAT_VERSION = 1
CONFIG = "config.yaml"
ITEMS = "items.parquet"
SPLITS_FILE = "splits.parquet"
ITEM_INDEX = "item"


class PrepareConfig(StrictModel):
    """What ``rlrec data prepare`` does: which source, which filters, which split.

    ``filters`` left empty takes the source's reference filters (RetailRocket: ≥ 3 events per visitor,
    then ≥ 3 per item, one pass; the others: none). ``seed`` drives every random choice (RC15 session
    sample, random split). ``state_size`` is the history window recorded for training
    (10 in P-SA2C §4.1.4).
    """

    source: Source
    filters: FilterConfig | None = None
    split: SplitConfig = SplitConfig()
    seed: int = 0
    state_size: int = Field(10, ge=1)

    def resolved(self) -> PrepareConfig:
        """A copy with the source's default filters filled in."""
        if self.filters is not None:
            return self
        return self.model_copy(update={"filters": self.source.default_filters()})


Progress = Callable[[str], None]

BYTES_PER_EVENT = 250
"""Working memory per event of a part while it is filtered, sorted and written: ``--memory-limit``
sets the part size from it (measured: 1.01 GB peak for 4M-event parts, 3.40 GB for 12M, YooChoose
unsampled, benchmarks/README.md)."""


def prepare(
    cfg: PrepareConfig,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Run the pipeline and write the dataset to ``out``; returns the manifest.

    ``memory_limit`` (bytes): prepare the log out of core, in session-range parts sized for this
    much memory (:mod:`rlrec.data.parts`); the dataset is byte-identical to the in-memory one.
    """
    say = progress or (lambda _msg: None)
    cfg = cfg.resolved()
    assert cfg.filters is not None
    out = Path(out)
    inputs = cfg.source.input_files()
    sources = [cfg.source.path, *inputs]
    check_output(out, "dataset", overwrite=overwrite, inputs=sources)
    if memory_limit is not None and not cfg.source.streams:
        raise ConfigError(
            f"--memory-limit: the {cfg.source.kind} source is read into memory; out-of-core "
            "preparation reads the yoochoose and synthetic sources and generic Parquet logs"
        )

    with new_output(out, "dataset", overwrite=overwrite, inputs=sources) as tmp:
        scratch = tmp / ".parts"
        try:
            manifest = _prepare(cfg, tmp, scratch, inputs, say, memory_limit)
        finally:
            if scratch.exists():  # rlrec's own scratch files, inside its own temporary output
                shutil.rmtree(scratch)
    return manifest


def _prepare(
    cfg: PrepareConfig,
    tmp: Path,
    scratch: Path,
    inputs: list[Path],
    say: Progress,
    memory_limit: int | None,
) -> dict[str, Any]:
    assert cfg.filters is not None
    source = cfg.source
    batches = lambda: source.batches(cfg.seed)  # noqa: E731
    if memory_limit is None:
        say(f"reading {source.kind} files")
        parts = in_memory(batches)
        say("selecting sessions and filtering")
    else:
        say(f"reading {source.kind} files into session-range parts")
        rows = sum(f.stat().st_size for f in inputs) // 16  # ≥ 16 bytes per raw event
        parts = on_disk(
            batches,
            lambda every: source.session_ids(cfg.seed, every),
            rows,
            max(1, memory_limit // BYTES_PER_EVENT),
            scratch,
        )
        say(f"selecting sessions and filtering {parts.height:,} events in {len(parts)} parts")
    keep = select_sessions(source, parts, cfg.seed)
    # the rows of a part stay in source order from here on, so ROW has done its work
    parts.replace(lambda i, part: _selected(part, keep[i]).drop(ROW))
    raw_events = parts.height
    events = FilteredParts(parts, cfg.filters)
    sessions, items = _tables(events)
    if items.height == 0:
        raise DataFormatError(
            source.path,
            f"no events left after filtering ({cfg.filters.model_dump()}); relax 'filters'",
        )
    say("assigning splits")
    splits = assign_splits(sessions, cfg.split, cfg.seed)
    _check_splits(splits, sessions.height, cfg)
    labels = splits.sort(SESSION)
    del sessions, splits  # a row per session: large for a log larger than memory
    items = items.with_columns(pl.int_range(items.height, dtype=pl.Int32).alias(ITEM_INDEX))

    say("sorting, encoding and writing")
    split_stats, count_train = _write_splits(events, items.get_column(ITEM), labels, tmp)
    items = (
        items.join(count_train, on=ITEM_INDEX, how="left", maintain_order="left")
        .select(
            ITEM_INDEX,
            ITEM,
            pl.col("count_all").cast(pl.Int64),
            pl.col("len").fill_null(0).cast(pl.Int64).alias("count_train"),
        )
        .sort(ITEM_INDEX)
    )
    items.write_parquet(tmp / ITEMS, compression="zstd")
    labels.write_parquet(tmp / SPLITS_FILE, compression="zstd")
    dump_config(cfg, tmp / CONFIG)
    manifest = {
        **manifest_head(tmp, FORMAT, FORMAT_VERSION, cfg, source.kind, inputs),
        "n_items": items.height,
        "pad_id": items.height,
        "state_size": cfg.state_size,
        "id_dtypes": {SESSION: str(labels.schema[SESSION]), ITEM: str(items.schema[ITEM])},
        "counts": {
            "raw_events": raw_events,
            **{key: sum(split_stats[name][key] for name in SPLITS) for key in _COUNTS},
        },
        "splits": split_stats,
    }
    atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def parse_size(text: str, what: str) -> int:
    """``"6GB"``, ``"512 MiB"``, ``"2e9"`` → bytes (decimal units; ``KiB``/``MiB``/``GiB`` binary)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match[2].upper() if match else ""
    if match is None or unit not in _UNITS or float(match[1]) <= 0:
        raise ConfigError(f"{what}: expected a size like 6GB or 512MiB, got '{text}'")
    return int(float(match[1]) * _UNITS[unit])


def auto_memory_limit(source: Source) -> int | None:
    """Out of core when the raw files would not fit comfortably: a memory limit of half the free
    memory when the source streams and its files exceed a tenth of that, else ``None`` (in memory).
    An in-memory event takes several times its bytes on disk while it is sorted and joined."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    size = sum(f.stat().st_size for f in source.input_files())
    return free // 2 if source.streams and size > free // 10 else None


def _write_splits(
    events: FilteredParts, vocabulary: pl.Series, labels: pl.DataFrame, tmp: Path
) -> tuple[dict[str, dict[str, int]], pl.DataFrame]:
    """Sort, encode and label each part and append its rows to ``train/val/test.parquet``; returns
    the per-split counts and each item's number of training events (``item``, ``len``).

    ``vocabulary``: the raw item ids in ascending order (an item's index is its position);
    ``labels``: session → split, sorted by session, so the sessions of a part (a range of them, the
    parts in order) are the next rows. A part's rows are in source order, so a stable sort by
    ``(session_id, timestamp)`` breaks timestamp ties by it."""
    writers: dict[str, RowGroupWriter] = {}
    split_stats = {name: dict.fromkeys(_COUNTS, 0) for name in SPLITS}
    train_counts = []
    lo = 0
    for events_part in events:
        part = events_part.sort([SESSION, TIMESTAMP], maintain_order=True, multithreaded=True)
        del events_part
        runs = part.get_column(SESSION).rle().struct.field("len").to_numpy()
        split = labels.get_column("split").slice(lo, len(runs))
        lo += len(runs)
        part = part.with_columns(
            vocabulary.search_sorted(part.get_column(ITEM)).cast(pl.Int32).alias(ITEM_INDEX),
            split.gather(np.repeat(np.arange(len(runs), dtype=np.uint32), runs)).alias("split"),
        )
        columns = [SESSION, ITEM_INDEX, IS_BUY, TIMESTAMP] + (
            [RATING] if RATING in part.columns else []
        )
        for name in SPLITS:
            rows = part.filter(pl.col("split") == name).select(columns)
            if name not in writers:
                writers[name] = RowGroupWriter(tmp / f"{name}.parquet", rows)
            writers[name].write(rows)
            for key, value in _counts(rows).items():
                split_stats[name][key] += value
            if name == "train":
                train_counts.append(rows.group_by(ITEM_INDEX).agg(pl.len()))
    for writer in writers.values():
        writer.close()
    return split_stats, pl.concat(train_counts).group_by(ITEM_INDEX).agg(pl.col("len").sum())


def _selected(events: pl.DataFrame, keep: pl.Series | None) -> pl.DataFrame:
    """The events of the sessions the source keeps."""
    return events if keep is None else events.filter(pl.col(SESSION).is_in(keep.implode()))


def _tables(events: FilteredParts) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(sessions, items)``: every session (sorted by id) with its first timestamp, and every
    item (sorted by raw id, the encoding order) with its event count."""
    sessions, items = [], []
    for part in events:
        sessions.append(
            part.group_by(SESSION).agg(pl.col(TIMESTAMP).min().alias(START)).sort(SESSION)
        )
        items.append(part.group_by(ITEM).agg(pl.len().alias("count_all")))
    item_table = pl.concat(items).group_by(ITEM).agg(pl.col("count_all").sum()).sort(ITEM)
    return pl.concat(sessions), item_table


def _check_splits(splits: pl.DataFrame, n_sessions: int, cfg: PrepareConfig) -> None:
    """Every split needs a session, and training a transition: an empty one is an error, not a
    dataset that trains or evaluates on nothing."""
    sizes = dict(splits.group_by("split").len().iter_rows())
    empty = [name for name in SPLITS if not sizes.get(name)]
    if empty:
        raise DataFormatError(
            cfg.source.path,
            f"the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would have no "
            f"sessions ({n_sessions} sessions after filtering, split "
            f"{cfg.split.model_dump(mode='json')}); use more data or change 'split'",
        )


_COUNTS = ("sessions", "events", "clicks", "purchases")


def _counts(events: pl.DataFrame) -> dict[str, int]:
    buys = int(events.get_column(IS_BUY).sum()) if events.height else 0
    return {
        "sessions": events.get_column(SESSION).n_unique() if events.height else 0,
        "events": events.height,
        "clicks": events.height - buys,
        "purchases": buys,
    }
