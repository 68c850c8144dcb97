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
each session is a contiguous run in its split file. Items are encoded ``0..n-1`` in ascending order of
the raw id (the reference's ``LabelEncoder``); the padding id is ``n``. The vocabulary covers all
splits, as in the reference; popularity is stored for both scopes (train only and all splits).
Preparing twice from the same inputs and config gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from rlrec.config import StrictModel, dump_config
from rlrec.data.filters import FilterConfig, apply_filters
from rlrec.data.loaders import Source
from rlrec.data.schema import IS_BUY, ITEM, RATING, SESSION, TIMESTAMP
from rlrec.data.splits import SPLITS, SplitConfig, assign_splits
from rlrec.errors import DataFormatError
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


def prepare(
    cfg: PrepareConfig, out: Path, *, overwrite: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the pipeline and write the dataset to ``out``; returns the manifest."""
    say = progress or (lambda _msg: None)
    cfg = cfg.resolved()
    assert cfg.filters is not None
    out = Path(out)
    inputs = cfg.source.input_files()
    sources = [cfg.source.path, *inputs]
    check_output(out, "dataset", overwrite=overwrite, inputs=sources)

    say(f"reading {cfg.source.kind} files")
    events = cfg.source.load(cfg.seed)
    raw_events = events.height
    events = apply_filters(events, cfg.filters)
    if events.height == 0:
        raise DataFormatError(
            cfg.source.path,
            f"no events left after filtering ({cfg.filters.model_dump()}); relax 'filters'",
        )
    say("sorting and encoding")
    events = events.sort([SESSION, TIMESTAMP], maintain_order=True, multithreaded=True)
    events = events.with_columns((pl.col(ITEM).rank("dense") - 1).cast(pl.Int32).alias(ITEM_INDEX))
    splits = assign_splits(events, cfg.split, cfg.seed)
    events = events.join(splits, on=SESSION, how="left", maintain_order="left")
    _check_splits(events, cfg)
    columns = [SESSION, ITEM_INDEX, IS_BUY, TIMESTAMP] + (
        [RATING] if RATING in events.columns else []
    )

    say("counting popularity")
    items = (
        events.group_by(ITEM_INDEX)
        .agg(
            pl.col(ITEM).first(),
            pl.len().cast(pl.Int64).alias("count_all"),
            (pl.col("split") == "train").sum().cast(pl.Int64).alias("count_train"),
        )
        .sort(ITEM_INDEX)
    )
    n_items = items.height

    say(f"writing {out}")
    with new_output(out, "dataset", overwrite=overwrite, inputs=sources) as tmp:
        split_stats = {}
        for name in SPLITS:
            part = events.filter(pl.col("split") == name).select(columns)
            part.write_parquet(tmp / f"{name}.parquet", compression="zstd", statistics=True)
            split_stats[name] = _counts(part)
        items.write_parquet(tmp / ITEMS, compression="zstd")
        splits.sort(SESSION).write_parquet(tmp / SPLITS_FILE, compression="zstd")
        dump_config(cfg, tmp / CONFIG)
        manifest = {
            **manifest_head(tmp, FORMAT, FORMAT_VERSION, cfg, cfg.source.kind, inputs),
            "n_items": n_items,
            "pad_id": n_items,
            "state_size": cfg.state_size,
            "id_dtypes": {SESSION: str(events.schema[SESSION]), ITEM: str(events.schema[ITEM])},
            "counts": {"raw_events": raw_events, **_counts(events)},
            "splits": split_stats,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _check_splits(events: pl.DataFrame, cfg: PrepareConfig) -> None:
    """Every split needs a session, and training a transition: an empty one is an error, not a
    dataset that trains or evaluates on nothing."""
    sizes = dict(events.group_by("split").agg(pl.col(SESSION).n_unique()).iter_rows())
    empty = [name for name in SPLITS if not sizes.get(name)]
    if empty:
        raise DataFormatError(
            cfg.source.path,
            f"the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would have no "
            f"sessions ({events.get_column(SESSION).n_unique()} sessions after filtering, split "
            f"{cfg.split.model_dump(mode='json')}); use more data or change 'split'",
        )


def _counts(events: pl.DataFrame) -> dict[str, int]:
    buys = int(events.get_column(IS_BUY).sum()) if events.height else 0
    return {
        "sessions": events.get_column(SESSION).n_unique() if events.height else 0,
        "events": events.height,
        "clicks": events.height - buys,
        "purchases": buys,
    }
