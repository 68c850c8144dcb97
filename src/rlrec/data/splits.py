"""Train/validation/test splits by session (P-SA2C §4.1.2).

* ``random`` — the papers' split: the unique session ids in ascending order are shuffled with
  ``numpy.random.RandomState(seed).shuffle`` (the reference's unseeded ``np.random.shuffle``, made
  reproducible: with ``np.random.seed(seed)`` the reference gives the same permutation) and cut at
  ``floor(r_train·N)`` and ``floor((r_train + r_val)·N)``.
* ``time`` — sessions ordered by their first event (ties by session id); the earliest fraction trains,
  the latest is the test set. Avoids the temporal leakage of the random split.
* ``file`` — a CSV or Parquet file with columns ``session_id,split`` (``train``/``val``/``test``),
  so results can be compared with other tools on identical splits. Every session of the prepared
  data must be listed; ids in the file that the filters removed are ignored (and counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import field_validator, model_validator

from rlrec.config import StrictModel
from rlrec.data.loaders.delimited import check_file
from rlrec.data.schema import SESSION
from rlrec.errors import DataFormatError

SPLITS = ("train", "val", "test")


class SplitConfig(StrictModel):
    """How sessions are assigned to train/val/test (see the module docstring)."""

    kind: Literal["random", "time", "file"] = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    file: Path | None = None

    @field_validator("ratios")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or abs(sum(v) - 1.0) > 1e-9:
            raise ValueError("ratios must be non-negative and sum to 1")
        return v

    @model_validator(mode="after")
    def _file_given(self) -> SplitConfig:
        if (self.kind == "file") != (self.file is not None):
            raise ValueError("split.file is required for kind 'file' and only allowed there")
        return self


def cut_points(n: int, ratios: tuple[float, float, float]) -> tuple[int, int]:
    """Indices where the ordered session list is cut: ``floor(r0·n)``, ``floor((r0+r1)·n)``."""
    first = int(np.floor(round(ratios[0] * n, 9)))
    second = int(np.floor(round((ratios[0] + ratios[1]) * n, 9)))
    return first, second


START = "_start"
"""Column of the sessions table: the session's first timestamp (the ``time`` split's order)."""


def assign_splits(sessions: pl.DataFrame, cfg: SplitConfig, seed: int) -> pl.DataFrame:
    """A table ``session_id → split`` (Enum of train/val/test) for every session of ``sessions``:
    one row per session id, sorted by id, with its first timestamp in :data:`START`."""
    split_type = pl.Enum(list(SPLITS))
    ids = sessions.get_column(SESSION)
    if cfg.kind == "file":
        assert cfg.file is not None
        return _read_split_file(cfg.file, ids, split_type)
    if cfg.kind == "random":
        shuffled = ids.to_numpy().copy()
        np.random.RandomState(seed).shuffle(shuffled)
        order = pl.Series(SESSION, shuffled, dtype=ids.dtype)
    else:
        order = sessions.sort([START, SESSION]).get_column(SESSION)
    a, b = cut_points(len(order), cfg.ratios)
    codes = pl.Series(np.repeat(np.arange(3, dtype=np.uint8), [a, b - a, len(order) - b]))
    labels = codes.replace_strict(dict(enumerate(SPLITS)), return_dtype=split_type)
    return pl.DataFrame({SESSION: order, "split": labels})


def _read_split_file(path: Path, sessions: pl.Series, split_type: pl.Enum) -> pl.DataFrame:
    check_file(path, "split file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pl.read_parquet(path)
        else:
            table = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(path, f"split file could not be read ({exc})") from None
    if set(table.columns) < {SESSION, "split"}:
        raise DataFormatError(
            path, f"split file needs columns session_id,split; found {','.join(table.columns)}"
        )
    table = table.select(SESSION, pl.col("split").cast(pl.String))
    labels = table.get_column("split")
    bad = ~labels.is_in(list(SPLITS)) | labels.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataFormatError(
            path,
            f"split must be one of train, val, test; found '{labels[row]}'",
            line=row + 2,
            column="split",
        )
    ids = table.get_column(SESSION)
    if sessions.dtype == pl.Int64:
        as_int = ids.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
        if as_int.null_count() > ids.null_count():
            row = int((as_int.is_null() & ids.is_not_null()).arg_true()[0])
            raise DataFormatError(
                path,
                f"session id '{ids[row]}' is not an integer like the data's ids",
                line=row + 2,
                column=SESSION,
            )
        ids = as_int
    else:
        ids = ids.cast(pl.String)
    table = pl.DataFrame({SESSION: ids, "split": table.get_column("split")})
    dup = table.get_column(SESSION).is_duplicated()
    if dup.any():
        row = int(dup.arg_true()[0])
        raise DataFormatError(path, f"session {ids[row]} is listed more than once", line=row + 2)
    table = table.filter(pl.col(SESSION).is_in(sessions.implode()))
    missing = sessions.filter(~sessions.is_in(table.get_column(SESSION).implode()))
    if len(missing):
        raise DataFormatError(
            path,
            f"{len(missing)} session(s) of the data have no split here (e.g. session {missing[0]})",
        )
    return table.with_columns(pl.col("split").cast(split_type))
