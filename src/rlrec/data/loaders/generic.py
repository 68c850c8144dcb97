"""The user's own logs: any CSV/TSV or Parquet file, or a directory of Parquet parts, with a
column mapping.

Example config (``configs/data/generic_example.yaml``)::

    source:
      kind: generic
      path: my_log.csv
      columns: {session: visitor, item: product, timestamp: ts, event: action}
      timestamp_unit: ms            # s | ms | iso (ISO-8601 text) | a strftime format
      purchase_events: [purchase]   # event values that are purchases; other events are clicks
      drop_events: [refund]         # event values removed before anything else

``path`` may be a directory of Parquet parts with the same columns, as Spark, DuckDB or BigQuery
exports write them (``part-00000-….parquet``, Hive-style ``key=value/`` subdirectories); the parts
are read in path order, so the result equals one file holding their rows in that order.

How a row becomes a purchase, by the first mapped column of: ``is_buy`` (0/1), ``event`` (value in
``purchase_events``), ``rating`` (≥ ``purchase_min_rating``); with none of them every row is a click.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field as PydField

from rlrec.config import StrictModel
from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import (
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    Field,
    check_file,
    read_delimited,
)
from rlrec.data.schema import (
    IS_BUY,
    ITEM,
    RATING,
    SESSION,
    TIMESTAMP,
    id_is_integer,
    ids_as,
    ids_to_canonical,
)
from rlrec.errors import DataFormatError


class ColumnMap(StrictModel):
    """Names of the user's columns for each canonical role (``None``: not present)."""

    session: str
    item: str
    timestamp: str
    event: str | None = None
    is_buy: str | None = None
    rating: str | None = None


class GenericSource(SourceConfig):
    """A CSV/TSV/Parquet log with named columns (see the module docstring)."""

    kind: Literal["generic"] = "generic"
    format: Literal["auto", "csv", "parquet"] = "auto"
    separator: str = PydField(",", min_length=1)
    columns: ColumnMap = ColumnMap(session="session_id", item="item_id", timestamp="timestamp")
    timestamp_unit: str = "s"
    purchase_events: list[str] = ["purchase", "buy", "transaction"]
    drop_events: list[str] = []
    purchase_min_rating: float | None = 4.0

    def input_files(self) -> list[Path]:
        if Path(self.path).is_dir():
            return parquet_parts(Path(self.path))
        return [check_file(self.path, "log file")]

    def _roles(self) -> dict[str, str]:
        roles = {"event": "event", "is_buy": IS_BUY, "rating": RATING}
        mapped = {
            self.columns.session: SESSION,
            self.columns.item: ITEM,
            self.columns.timestamp: TIMESTAMP,
        }
        for attr, role in roles.items():
            name = getattr(self.columns, attr)
            if name is not None:
                mapped[name] = role
        return mapped

    @property
    def streams(self) -> bool:
        """A Parquet log is read one file (part) at a time; a CSV log in one go."""
        return self._is_parquet()

    def _is_parquet(self) -> bool:
        path = Path(self.path)
        return (
            path.is_dir()
            or self.format == "parquet"
            or (self.format == "auto" and path.suffix.lower() in (".parquet", ".pq"))
        )

    def load(self, seed: int) -> pl.DataFrame:
        frames = list(self.batches(seed))
        return pl.concat(frames) if len(frames) > 1 else frames[0]

    def batches(self, seed: int) -> Iterator[pl.DataFrame]:
        """One batch per Parquet file (a part of a directory) or the whole CSV file. Whether the ids
        are integers is decided over all the parts first, so every part gets the same types."""
        files = self.input_files()
        path = Path(self.path)
        roles = self._roles()
        if path.is_dir() and self.format == "csv":
            raise DataFormatError(path, "a directory of parts is read as Parquet (format: parquet)")
        if not self._is_parquet():
            yield self._canonical(
                _read_csv_columns(path, roles, self.separator, self.timestamp_unit), path, roles
            )
            return
        ids = {name: role for name, role in roles.items() if role in (SESSION, ITEM)}
        integer = {role: True for role in ids.values()}
        for file in files:
            columns = _read_parquet_columns(file, list(roles), only=list(ids))
            for name, role in ids.items():
                integer[role] = integer[role] and id_is_integer(columns.get_column(name))
        for file in files:
            yield self._canonical(_read_parquet_columns(file, list(roles)), file, roles, integer)

    def _canonical(
        self,
        df: pl.DataFrame,
        path: Path,
        roles: dict[str, str],
        integer: dict[str, bool] | None = None,
    ) -> pl.DataFrame:
        df = df.rename(roles)
        df = ids_to_canonical(df, (SESSION, ITEM)) if integer is None else ids_as(df, integer)
        df = df.with_columns(_timestamp_ms(df, path, self.timestamp_unit))
        if "event" in df.columns:
            df = df.filter(~pl.col("event").cast(pl.String).is_in(self.drop_events))
        rating = [pl.col(RATING).cast(pl.Float32)] if RATING in df.columns else []
        return df.with_columns(self._is_buy(df)).select(SESSION, ITEM, TIMESTAMP, IS_BUY, *rating)

    def _is_buy(self, df: pl.DataFrame) -> pl.Expr:
        if IS_BUY in df.columns:
            flag = pl.col(IS_BUY)
        elif "event" in df.columns:
            flag = pl.col("event").cast(pl.String).is_in(self.purchase_events)
        elif RATING in df.columns and self.purchase_min_rating is not None:
            flag = pl.col(RATING) >= self.purchase_min_rating
        else:
            flag = pl.lit(0)
        return flag.cast(pl.Int8).alias(IS_BUY)


def parquet_parts(directory: Path) -> list[Path]:
    """The Parquet files of a directory written by Spark, DuckDB, BigQuery or pyarrow: every
    ``*.parquet``/``*.pq`` file below it (Hive-style ``key=value/`` subdirectories included), in path
    order, skipping the names those tools use for metadata and markers (``_SUCCESS``,
    ``_metadata``, ``.crc`` and other names starting with ``_`` or ``.``)."""

    def hidden(p: Path) -> bool:
        return any(part.startswith(("_", ".")) for part in p.relative_to(directory).parts)

    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix.lower() in (".parquet", ".pq") and not hidden(p)
    )
    if not files:
        raise DataFormatError(directory, "directory has no Parquet parts (*.parquet)")
    return [check_file(p, "Parquet part") for p in files]


def _read_parquet_columns(
    path: Path, names: list[str], only: list[str] | None = None
) -> pl.DataFrame:
    """The columns ``names`` of a Parquet file (all required, no empty values); ``only``: read just
    these of them (after checking that every one of ``names`` exists)."""
    try:
        available = pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from None
    missing = [n for n in names if n not in available]
    if missing:
        raise DataFormatError(
            path, f"missing column(s) {', '.join(missing)} (has: {', '.join(available)})"
        )
    df = pl.read_parquet(path, columns=only or names)
    if df.height == 0:
        raise DataFormatError(path, "file has no rows")
    for name in only or names:
        nulls = df.get_column(name).null_count()
        if nulls:
            row = int(df.get_column(name).is_null().arg_true()[0])
            raise DataFormatError(path, f"empty value in row {row}", column=name)
    return df


def _read_csv_columns(
    path: Path, roles: dict[str, str], separator: str, timestamp_unit: str
) -> pl.DataFrame:
    check_file(path, "log file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = [c.strip().strip('"') for c in fh.readline().rstrip("\r\n").split(separator)]
    missing = [n for n in roles if n not in header]
    if missing:
        hint = "" if len(header) > 1 else f" (is the separator '{separator}'?)"
        raise DataFormatError(
            path,
            f"header has no column(s) {', '.join(missing)}; found {', '.join(header)[:200]}{hint}",
            line=1,
        )
    kinds = {SESSION: "str", ITEM: "str", "event": "str", IS_BUY: "int", RATING: "float"}
    kinds[TIMESTAMP] = "float" if timestamp_unit in ("s", "ms") else "str"
    limit = {"s": MAX_EPOCH_S, "ms": MAX_EPOCH_MS}.get(timestamp_unit)
    fields = [
        Field(
            c,
            kinds[roles[c]] if c in roles else "skip",  # type: ignore[arg-type]
            max_abs=limit if roles.get(c) == TIMESTAMP else None,
        )
        for c in header
    ]
    return read_delimited(
        path, fields, separator=separator, header=header, what="log file", quoted=True
    )


def _timestamp_ms(df: pl.DataFrame, path: Path, unit: str) -> pl.Series:
    ts = df.get_column(TIMESTAMP)
    if unit in ("s", "ms"):
        if not ts.dtype.is_numeric():
            ts = ts.cast(pl.Float64, strict=False)
        scale = 1000 if unit == "s" else 1
        out = (ts.cast(pl.Float64) * scale).round().cast(pl.Int64)
    else:
        fmt = None if unit == "iso" else unit
        parsed = ts.cast(pl.String).str.to_datetime(fmt, time_unit="ms", strict=False)
        out = parsed.dt.epoch("ms")
    bad = out.is_null() & ts.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataFormatError(
            path,
            f"unparseable timestamp '{ts[row]}' in data row {row + 1} (timestamp_unit={unit})",
            column=TIMESTAMP,
        )
    return out.alias(TIMESTAMP)
