"""YooChoose / RC15 (RecSys Challenge 2015): ``yoochoose-clicks.dat`` + ``yoochoose-buys.dat``.

Raw format (docs/data.md), no header, comma separated:

* clicks: ``session_id,timestamp,item_id,category`` e.g. ``1,2014-04-07T10:51:09.277Z,214536502,0``
* buys: ``session_id,timestamp,item_id,price,quantity``

Pipeline of Xin et al. (WSDM'22 §4.1.1), with the reference code's defects fixed:

1. keep sessions with at least ``min_clicks`` click rows (clicks only, duplicates count, buys ignored);
2. sample ``sample_sessions`` of them uniformly without replacement — seeded here
   (``numpy.random.RandomState(seed).choice`` over the surviving ids in order of first appearance,
   i.e. the reference's ``np.random.choice`` after ``np.random.seed(seed)``); the reference is unseeded;
3. keep the buys of the sampled sessions; the item vocabulary is fitted on clicks *and* buys (the
   reference fits on clicks only and crashes on an unseen bought item);
4. concatenate clicks then buys; prepare sorts stably by ``(session_id, timestamp)`` with parsed
   timestamps, so on equal timestamps a click stays before a buy (as in the reference's stable sort).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field as PydField

from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import Field, read_delimited
from rlrec.data.schema import IS_BUY, ITEM, SESSION, TIMESTAMP
from rlrec.errors import DataFormatError

CLICK_FIELDS = (
    Field(SESSION, "int"),
    Field(TIMESTAMP, "iso_ts"),
    Field(ITEM, "int"),
    Field("category", "skip"),
)
BUY_FIELDS = (
    Field(SESSION, "int"),
    Field(TIMESTAMP, "iso_ts"),
    Field(ITEM, "int"),
    Field("price", "skip"),
    Field("quantity", "skip"),
)


class YooChooseSource(SourceConfig):
    """RC15 from the raw YooChoose files. ``path``: the directory holding both files."""

    kind: Literal["yoochoose"] = "yoochoose"
    clicks_file: str = "yoochoose-clicks.dat"
    buys_file: str = "yoochoose-buys.dat"
    min_clicks: int = PydField(3, ge=1, description="sessions need at least this many click rows")
    sample_sessions: int | None = PydField(
        200_000, ge=1, description="seeded sample size; null keeps every session"
    )

    def input_files(self) -> list[Path]:
        return [self.path / self.clicks_file, self.path / self.buys_file]

    def load(self, seed: int) -> pl.DataFrame:
        if not self.path.is_dir():
            raise DataFormatError(
                self.path, f"expected a directory holding {self.clicks_file} and {self.buys_file}"
            )
        clicks_path, buys_path = self.input_files()
        clicks = read_delimited(
            clicks_path, CLICK_FIELDS, separator=",", what="YooChoose clicks file"
        )
        clicks = clicks.filter(pl.len().over(SESSION) >= self.min_clicks)
        if clicks.height == 0:
            raise DataFormatError(
                clicks_path, f"no session has at least {self.min_clicks} clicks (source.min_clicks)"
            )
        if self.sample_sessions is not None:
            ids = clicks.get_column(SESSION).unique(maintain_order=True).to_numpy()
            if self.sample_sessions > len(ids):
                raise DataFormatError(
                    clicks_path,
                    f"cannot sample {self.sample_sessions} sessions: only {len(ids)} have at least "
                    f"{self.min_clicks} clicks (lower source.sample_sessions or set it to null)",
                )
            if self.sample_sessions < len(ids):
                chosen = np.random.RandomState(seed).choice(
                    ids, self.sample_sessions, replace=False
                )
                clicks = clicks.filter(pl.col(SESSION).is_in(pl.Series(chosen).implode()))
        buys = read_delimited(buys_path, BUY_FIELDS, separator=",", what="YooChoose buys file")
        buys = buys.filter(pl.col(SESSION).is_in(clicks.get_column(SESSION).unique().implode()))
        return pl.concat(
            [
                clicks.with_columns(pl.lit(0, pl.Int8).alias(IS_BUY)),
                buys.with_columns(pl.lit(1, pl.Int8).alias(IS_BUY)),
            ]
        ).select(SESSION, ITEM, TIMESTAMP, IS_BUY)
