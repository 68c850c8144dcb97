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

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field as PydField

from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import Field, iter_delimited, scan_delimited
from rlrec.data.parts import ROW, in_memory, select_sessions
from rlrec.data.schema import IS_BUY, ITEM, SESSION, TIMESTAMP
from rlrec.errors import DataFormatError

CLICKS_FILE = "yoochoose-clicks.dat"
BUYS_FILE = "yoochoose-buys.dat"
CLICK_FIELDS = (
    Field(SESSION, "int"),
    Field(TIMESTAMP, "iso_ts"),
    Field(ITEM, "int"),
    Field("category", "skip"),
)
COLUMNS = (SESSION, ITEM, TIMESTAMP, IS_BUY)
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

    @property
    def streams(self) -> bool:
        return True

    clicks_file: str = CLICKS_FILE
    buys_file: str = BUYS_FILE
    min_clicks: int = PydField(3, ge=1, description="sessions need at least this many click rows")
    sample_sessions: int | None = PydField(
        200_000, ge=1, description="seeded sample size; null keeps every session"
    )

    def input_files(self) -> list[Path]:
        return [self.path / self.clicks_file, self.path / self.buys_file]

    def load(self, seed: int) -> pl.DataFrame:
        parts = in_memory(lambda: self.batches(seed))
        (events,) = parts
        (keep,) = select_sessions(self, parts, seed)
        assert keep is not None
        return events.filter(pl.col(SESSION).is_in(keep.implode())).drop(ROW)

    def batches(self, seed: int) -> Iterator[pl.DataFrame]:
        """Every click row (``is_buy`` 0), then every buy row (1); the selection of sessions is
        :meth:`session_stats` and :meth:`choose_sessions`."""
        clicks, buys = self._files()
        for path, fields, flag, what in (
            (clicks, CLICK_FIELDS, 0, "YooChoose clicks file"),
            (buys, BUY_FIELDS, 1, "YooChoose buys file"),
        ):
            for batch in iter_delimited(path, fields, separator=",", what=what):
                yield batch.with_columns(pl.lit(flag, pl.Int8).alias(IS_BUY)).select(COLUMNS)

    def session_ids(self, seed: int, every: int) -> pl.Series:
        clicks, buys = self._files()
        ids = [
            scan_delimited(
                path,
                [f if f.name == SESSION else Field(f.name, "skip") for f in fields],
                separator=",",
                header=None,
                quoted=False,
            ).gather_every(every)
            for path, fields in ((clicks, CLICK_FIELDS), (buys, BUY_FIELDS))
        ]
        try:
            return pl.concat(ids).collect(engine="streaming").get_column(SESSION)
        except pl.exceptions.PolarsError as exc:  # malformed: the checked read names the line
            for _batch in self.batches(seed):
                pass
            raise DataFormatError(self.path, f"could not be read ({exc})") from None

    def session_stats(self, events: pl.DataFrame) -> pl.DataFrame:
        """Per session: its click rows and, for the sample, the position of its first click."""
        stats = [pl.len().alias("clicks")]
        if self.sample_sessions is not None:
            stats.append(pl.col(ROW).min().alias("first"))
        clicks = events.filter(pl.col(IS_BUY) == 0)
        return clicks.group_by(SESSION).agg(stats).sort(SESSION)

    def choose_sessions(self, stats: pl.DataFrame, seed: int) -> pl.Series:
        clicks_path = self.input_files()[0]
        enough = stats.get_column("clicks") >= self.min_clicks
        if not enough.any():
            raise DataFormatError(
                clicks_path, f"no session has at least {self.min_clicks} clicks (source.min_clicks)"
            )
        if self.sample_sessions is None:
            return enough
        ids = stats.filter(enough).sort("first").get_column(SESSION).to_numpy()
        if self.sample_sessions > len(ids):
            raise DataFormatError(
                clicks_path,
                f"cannot sample {self.sample_sessions} sessions: only {len(ids)} have at least "
                f"{self.min_clicks} clicks (lower source.sample_sessions or set it to null)",
            )
        if self.sample_sessions == len(ids):
            return enough
        chosen = np.random.RandomState(seed).choice(ids, self.sample_sessions, replace=False)
        return stats.get_column(SESSION).is_in(pl.Series(chosen).implode())

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            raise DataFormatError(
                self.path, f"expected a directory holding {self.clicks_file} and {self.buys_file}"
            )
        return self.input_files()
