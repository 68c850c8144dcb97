"""Raw list source → prepared list dataset (Parquet + ``manifest.json``), atomically.

Layout::

    DIR/manifest.json    source, options, input hashes, counts, split sizes, K, feature widths,
                         file hashes, content hash, catalogue hash, source notes
    DIR/config.yaml      the resolved ListPrepareConfig
    DIR/train.parquet    list records of the train split (schema: rlrec.sim.schema), time order
    DIR/test.parquet     ... test split
    DIR/users.parquet    user_id → raw_id, features
    DIR/items.parquet    item_id (1..N) → raw_id, features, exposures, positives
    DIR/planted_urm/     synthetic data only: the ground-truth response model (URM format)

The directory is written beside its final place and renamed, so it appears whole or not at all; an
existing output is refused unless ``overwrite``. Preparing twice from the same inputs and config
gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import torch

from rlrec.config import StrictModel, dump_config
from rlrec.errors import DataFormatError
from rlrec.fsutil import atomic_write_json
from rlrec.manifest import MANIFEST, manifest_head
from rlrec.outputs import check_output, new_output
from rlrec.sim.features import catalogue_hash, features_matrix
from rlrec.sim.loaders import ListSource
from rlrec.sim.schema import EXPOSURE, ITEM, LABELS, USER, ListTables
from rlrec.sim.splits import SPLITS, ListSplitConfig, split_records

FORMAT = "rlrec.listdata"
FORMAT_VERSION = 1
CONFIG = "config.yaml"
USERS = "users.parquet"
ITEMS = "items.parquet"
PLANTED = "planted_urm"

Progress = Callable[[str], None]


class ListPrepareConfig(StrictModel):
    """What ``rlrec sim prepare`` does: which source and which split; ``seed`` drives random codes
    and synthetic draws."""

    source: ListSource
    split: ListSplitConfig = ListSplitConfig()
    seed: int = 0


def prepare_lists(
    cfg: ListPrepareConfig, out: Path, *, overwrite: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the pipeline and write the dataset to ``out``; returns the manifest."""
    say = progress or (lambda _msg: None)
    out = Path(out)
    inputs = cfg.source.input_files()
    sources = [getattr(cfg.source, "path", None), *inputs]
    check_output(out, "list_dataset", overwrite=overwrite, inputs=sources)
    tables = cfg.source.load(cfg.seed, say)
    _check_tables(tables, cfg)
    say("splitting")
    parts = split_records(tables.records, tables.users, cfg.split)
    items = _with_counts(tables.items, tables.records)
    say(f"writing {out}")
    with new_output(out, "list_dataset", overwrite=overwrite, inputs=sources) as tmp:
        for name in SPLITS:
            parts[name].write_parquet(tmp / f"{name}.parquet", compression="zstd", statistics=True)
        tables.users.write_parquet(tmp / USERS, compression="zstd")
        items.write_parquet(tmp / ITEMS, compression="zstd")
        dump_config(cfg, tmp / CONFIG)
        k = int(tables.records.get_column(EXPOSURE).list.len().max())
        manifest = {
            **manifest_head(tmp, FORMAT, FORMAT_VERSION, cfg, cfg.source.kind, inputs),
            "slate_size": k,
            "n_items": items.height,
            "n_users": tables.users.height,
            "user_dim": features_matrix(tables.users).shape[1],
            "item_dim": features_matrix(items).shape[1],
            "counts": _counts(tables.records),
            "splits": {name: _counts(parts[name]) for name in SPLITS},
            "notes": tables.notes,
            "catalogue_hash": catalogue_hash(items),
        }
        if "planted_urm" in tables.extras:
            from rlrec.sim.urm_store import save_urm

            model, urm_cfg = tables.extras["planted_urm"]
            item_x = features_matrix(items)
            item_x = np.vstack([np.zeros((1, item_x.shape[1]), np.float32), item_x])
            save_urm(
                tmp / PLANTED,
                model,
                urm_cfg,
                {"dataset_content_hash": manifest["content_hash"], "role": "planted"},
                manifest,
                torch.from_numpy(item_x),
                torch.from_numpy(features_matrix(tables.users)),
            )
            manifest["planted_urm"] = PLANTED
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _check_tables(tables: ListTables, cfg: ListPrepareConfig) -> None:
    where = getattr(cfg.source, "path", None) or cfg.source.kind
    if tables.records.height == 0:
        raise DataFormatError(
            where, "no complete list left (each user needs at least slate_size interactions)"
        )
    lengths = tables.records.get_column(EXPOSURE).list.len()
    if lengths.n_unique() != 1:
        raise DataFormatError(where, "lists of different lengths (every list must have K items)")
    if not lengths.equals(tables.records.get_column(LABELS).list.len()):
        raise DataFormatError(where, "label count differs from item count in some list")


def _with_counts(items: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    flat = records.select(pl.col(EXPOSURE).explode().alias(ITEM), pl.col(LABELS).explode())
    counts = flat.group_by(ITEM).agg(
        pl.len().cast(pl.Int64).alias("exposures"),
        pl.col(LABELS).cast(pl.Int64).sum().alias("positives"),
    )
    return (
        items.join(counts, on=ITEM, how="left", maintain_order="left")
        .with_columns(pl.col("exposures").fill_null(0), pl.col("positives").fill_null(0))
        .sort(ITEM)
    )


def _counts(records: pl.DataFrame) -> dict[str, Any]:
    n = records.height
    k = int(cast(int, records.get_column(EXPOSURE).list.len().max())) if n else 0
    positives = int(records.get_column(LABELS).list.sum().sum()) if n else 0
    return {
        "records": n,
        "users": records.get_column(USER).n_unique() if n else 0,
        "interactions": n * k,
        "positives": positives,
        "positive_rate": positives / (n * k) if n else 0.0,
    }
