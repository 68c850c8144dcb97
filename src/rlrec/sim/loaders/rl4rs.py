"""RL4RS dataset B (sequential slates) as list data (P-HAC §3.1.1, Table 1).

Raw file (``@``-separated, header line)::

    timestamp@session_id@sequence_id@exposed_items@user_feedback@user_seqfeature@user_protrait@item_feature@behavior_policy_id

``exposed_items``: ``slate_size`` (9) comma-separated item ids; ``user_feedback``: as many 0/1 labels;
``user_seqfeature``: the user's prior sequence (may be empty); ``user_protrait``: comma-separated
numbers of the same length on every row. ``item_info.csv`` (space-separated, header ``item_id item_vec
price location special_item``; ``item_vec`` = comma-separated floats) gives the item features.

Mapping: ``user_id`` = the session (dense; an opaque key, never a feature), ``user_features =
log(1 + user_protrait)`` of the session's first row, ``history = user_seqfeature``, ``exposure``,
``labels``, ``timestamp``, ``seq_idx = sequence_id - 1``. The catalogue is every item of
``item_info.csv`` (ascending id → ``1..N``); an exposed or history item not listed there is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field as PydField

from rlrec.data.loaders.delimited import Field, check_file, find_file, read_delimited
from rlrec.errors import DataFormatError
from rlrec.sim.features import features_column
from rlrec.sim.loaders.base import ListSourceConfig, Progress, quiet
from rlrec.sim.schema import (
    EXPOSURE,
    HISTORY,
    ITEM,
    LABELS,
    RAW,
    SEQ,
    TIME,
    USER,
    ListTables,
    records_frame,
)

HEADER = (
    "timestamp",
    "session_id",
    "sequence_id",
    "exposed_items",
    "user_feedback",
    "user_seqfeature",
    "user_protrait",
    "item_feature",
    "behavior_policy_id",
)
FIELDS = (
    Field("timestamp", "int"),
    Field("session_id", "int"),
    Field("sequence_id", "int"),
    Field("exposed_items", "str"),
    Field("user_feedback", "str"),
    Field("user_seqfeature", "any"),
    Field("user_protrait", "str"),
    Field("item_feature", "skip"),
    Field("behavior_policy_id", "skip"),
)
ITEM_HEADER = ("item_id", "item_vec", "price", "location", "special_item")
ITEM_FIELDS = (
    Field("item_id", "int"),
    Field("item_vec", "str"),
    Field("price", "skip"),
    Field("location", "skip"),
    Field("special_item", "skip"),
)
NAMES = ("rl4rs_dataset_b_rl.csv", "rl4rs_dataset_b_sl.csv", "rl4rs_b_train.csv")
"""Names of the data file looked for in a directory, in order."""
ITEM_INFO = "item_info.csv"


class RL4RSListSource(ListSourceConfig):
    """RL4RS B. ``path``: the ``@``-separated file (or a directory holding one of the usual names);
    ``item_info``: ``item_info.csv`` (default: beside the data file)."""

    kind: Literal["rl4rs"] = "rl4rs"
    path: Path
    item_info: Path | None = None
    slate_size: int = PydField(9, ge=1)

    def _data(self) -> Path:
        return find_file(self.path, list(NAMES), "RL4RS data file")

    def _item_info(self) -> Path:
        return check_file(self.item_info or self._data().parent / ITEM_INFO, ITEM_INFO)

    def input_files(self) -> list[Path]:
        return [self._data(), self._item_info()]

    def load(self, seed: int, say: Progress = quiet) -> ListTables:
        path, info = self._data(), self._item_info()
        say(f"reading {info.name}")
        items = _read_items(info)
        say(f"reading {path.name}")
        df = read_delimited(path, FIELDS, separator="@", header=HEADER, what="RL4RS data file")
        expo = _int_lists(path, df, "exposed_items")
        labels = _int_lists(path, df, "user_feedback")
        hist = _int_lists(path, df, "user_seqfeature", allow_empty=True)
        portrait = _float_lists(path, df, "user_protrait")
        _check_lengths(path, expo, labels, self.slate_size)
        index = {raw: i + 1 for i, raw in enumerate(items.get_column(RAW).to_list())}
        expo_dense = _to_dense(path, expo, index, "exposed_items")
        hist_dense = _to_dense(path, hist, index, "user_seqfeature")

        sessions = df.get_column("session_id")
        users = pl.DataFrame({RAW: sessions}).unique(maintain_order=True).sort(RAW)
        users = users.with_row_index(USER).with_columns(pl.col(USER).cast(pl.Int64))
        user_of = dict(
            zip(users.get_column(RAW).to_list(), users.get_column(USER).to_list(), strict=True)
        )
        first: dict[Any, int] = {}
        for row, s in enumerate(sessions.to_list()):
            first.setdefault(s, row)
        user_x = np.log1p(np.stack([portrait[first[s]] for s in users.get_column(RAW).to_list()]))
        if not np.isfinite(user_x).all():
            raise DataFormatError(path, "user_protrait values must be > -1 (log(1 + x) is taken)")
        records = records_frame(
            pl.DataFrame(
                {
                    USER: [user_of[s] for s in sessions.to_list()],
                    SEQ: (df.get_column("sequence_id") - 1).to_list(),
                    TIME: df.get_column("timestamp"),
                    HISTORY: pl.Series(hist_dense, dtype=pl.List(pl.Int32)),
                    EXPOSURE: pl.Series(expo_dense, dtype=pl.List(pl.Int32)),
                    LABELS: pl.Series(labels, dtype=pl.List(pl.Int8)),
                }
            )
        )
        return ListTables(
            records=records,
            users=users.select(USER, RAW).with_columns(features_column(user_x)),
            items=items,
            notes={"rows": df.height},
        )


def _line(row: int) -> int:
    return row + 2  # header is line 1


def _int_lists(
    path: Path, df: pl.DataFrame, col: str, allow_empty: bool = False
) -> list[list[int]]:
    out: list[list[int]] = []
    for row, text in enumerate(df.get_column(col).to_list()):
        text = (text or "").strip()
        if text == "":
            if allow_empty:
                out.append([])
                continue
            raise DataFormatError(path, "empty list", line=_line(row), column=col)
        try:
            out.append([int(t) for t in text.split(",")])
        except ValueError:
            raise DataFormatError(
                path,
                f"expected comma-separated integers, found '{text[:60]}'",
                line=_line(row),
                column=col,
            ) from None
    return out


def _float_lists(path: Path, df: pl.DataFrame, col: str) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for row, text in enumerate(df.get_column(col).to_list()):
        try:
            values = np.array([float(t) for t in (text or "").split(",")], dtype=np.float64)
        except ValueError:
            raise DataFormatError(
                path,
                f"expected comma-separated numbers, found '{(text or '')[:60]}'",
                line=_line(row),
                column=col,
            ) from None
        if out and len(values) != len(out[0]):
            raise DataFormatError(
                path,
                f"{len(values)} values, but the first row has {len(out[0])}",
                line=_line(row),
                column=col,
            )
        out.append(values)
    return out


def _check_lengths(path: Path, expo: list[list[int]], labels: list[list[int]], k: int) -> None:
    for row, (e, y) in enumerate(zip(expo, labels, strict=True)):
        if len(e) != k:
            raise DataFormatError(
                path,
                f"{len(e)} exposed items, expected K = {k} (source.slate_size)",
                line=_line(row),
                column="exposed_items",
            )
        if len(y) != len(e):
            raise DataFormatError(
                path,
                f"{len(y)} labels for {len(e)} exposed items",
                line=_line(row),
                column="user_feedback",
            )
        if any(v not in (0, 1) for v in y):
            raise DataFormatError(
                path, f"labels must be 0 or 1, found {y}", line=_line(row), column="user_feedback"
            )


def _to_dense(
    path: Path, lists: list[list[int]], index: dict[Any, int], col: str
) -> list[list[int]]:
    out = []
    for row, ids in enumerate(lists):
        try:
            out.append([index[i] for i in ids])
        except KeyError as exc:
            raise DataFormatError(
                path, f"item {exc.args[0]} is not in item_info.csv", line=_line(row), column=col
            ) from None
    return out


def _read_items(path: Path) -> pl.DataFrame:
    """``item_id (1..N), raw_id, features`` from ``item_info.csv``, ascending raw id."""
    df = read_delimited(path, ITEM_FIELDS, separator=" ", header=ITEM_HEADER, what="item_info.csv")
    vecs = _float_lists(path, df, "item_vec")
    if df.get_column("item_id").n_unique() != df.height:
        raise DataFormatError(path, "item_id values are not unique", column="item_id")
    order = np.argsort(df.get_column("item_id").to_numpy(), kind="stable")
    matrix = np.stack(vecs)[order].astype(np.float32)
    return pl.DataFrame(
        {
            ITEM: np.arange(1, df.height + 1, dtype=np.int32),
            RAW: df.get_column("item_id").to_numpy()[order],
        }
    ).with_columns(features_column(matrix))
