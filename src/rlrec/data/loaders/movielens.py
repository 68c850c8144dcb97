"""MovieLens 100K (``u.data``) and 1M (``ratings.dat``) as click/purchase logs.

Raw formats: ``u.data`` is tab-separated ``user item rating timestamp`` without header;
``ratings.dat`` is ``UserID::MovieID::Rating::Timestamp``. Timestamps are Unix seconds.

Protocol (``shared/datasets/README.md``): one session per user, events in timestamp order with a
stable tie-break on file order, rating ≥ ``purchase_min_rating`` (default 4) = purchase, otherwise click.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import MAX_EPOCH_S, Field, find_file, read_delimited
from rlrec.data.schema import IS_BUY, ITEM, RATING, SESSION, TIMESTAMP

FIELDS = (
    Field(SESSION, "int"),
    Field(ITEM, "int"),
    Field(RATING, "float"),
    Field(TIMESTAMP, "int", max_abs=MAX_EPOCH_S),
)
ML100K_RATINGS = "u.data"
ML1M_RATINGS = "ratings.dat"
FILES = {ML100K_RATINGS: "\t", ML1M_RATINGS: "::"}
"""The ratings files and their separators."""


def rating_events(df: pl.DataFrame, min_rating: float, time_scale: int) -> pl.DataFrame:
    """Canonical events from (session, item, rating, timestamp): purchase iff rating ≥ threshold."""
    return df.select(
        SESSION,
        ITEM,
        (pl.col(TIMESTAMP) * time_scale).round().cast(pl.Int64).alias(TIMESTAMP),
        (pl.col(RATING) >= min_rating).cast(pl.Int8).alias(IS_BUY),
        pl.col(RATING).cast(pl.Float32),
    )


class MovieLensSource(SourceConfig):
    """MovieLens 100K/1M. ``path``: ``u.data``, ``ratings.dat`` or the directory holding one."""

    kind: Literal["movielens"] = "movielens"
    purchase_min_rating: float = 4.0

    def input_files(self) -> list[Path]:
        return [find_file(self.path, list(FILES), "MovieLens ratings file")]

    def load(self, seed: int) -> pl.DataFrame:
        (path,) = self.input_files()
        separator = FILES.get(path.name, "::" if path.suffix == ".dat" else "\t")
        df = read_delimited(path, FIELDS, separator=separator, what="MovieLens ratings file")
        return rating_events(df, self.purchase_min_rating, time_scale=1000)
