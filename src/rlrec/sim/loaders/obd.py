"""The Open Bandit Dataset (ZOZOTOWN) samples as list data: real slate click logs.

The ``obp`` wheel ships, per behaviour policy (``random``, ``bts``) and campaign (``all``, ``men``,
``women``), a CSV of 10,000 logged impressions (``obp/dataset/obd/<policy>/<campaign>/<campaign>.csv``)
and ``item_context.csv``. rlrec reads them from a path the user gives: the wheel (``.whl``/``.zip``),
the extracted ``obd`` tree (or any folder above it), the campaign folder, or the CSV itself; it never
depends on ``obp``.

Columns used: ``timestamp`` (``2019-11-24 00:00:34.762830+00:00``), ``item_id`` (0-based),
``position``, ``click``, ``user_feature_0..3`` (hashed categories). One row is one item shown at one
position; the sample has no user ids. rlrec's reading: a *user* is a distinct combination of the four
user features (a user segment); each segment's rows, stably sorted by timestamp, are cut into lists of
``slate_size`` (3, the number of positions) exactly as for MovieLens (:mod:`rlrec.sim.lists`), and the
click is the label.

Side information (the default): users = one-hot of the four user features; items =
``item_feature_0`` and the one-hot of ``item_feature_1..3`` from ``item_context.csv``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from rlrec.data.loaders.delimited import check_file
from rlrec.errors import DataFormatError
from rlrec.sim.features import one_hot
from rlrec.sim.lists import EV_ITEM, EV_LABEL, EV_TIME, EV_USER
from rlrec.sim.loaders.base import EventListSource, Progress, raw_ids

USER_COLS = tuple(f"user_feature_{i}" for i in range(4))
REQUIRED = ("timestamp", "item_id", "position", "click", *USER_COLS)
ITEM_COLS = ("item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.f%:z"
ARCHIVE_FOLDER = "obp/dataset/obd"
"""The ``obd`` folder inside the ``obp`` wheel (and an extracted copy of it)."""
ITEM_CONTEXT = "item_context.csv"


class OBDListSource(EventListSource):
    """Open Bandit Dataset samples. ``path``: the ``obp`` wheel, an extracted folder or the CSV."""

    kind: Literal["obd"] = "obd"
    path: Path
    behavior_policy: Literal["random", "bts"] = "random"
    campaign: Literal["all", "men", "women"] = "all"
    slate_size: int = Field(3, ge=1)
    features: Literal["random_codes", "side_info"] = "side_info"

    @property
    def _member(self) -> str:
        return f"{ARCHIVE_FOLDER}/{self.behavior_policy}/{self.campaign}"

    def _locate(self) -> tuple[Path, str | None, str | None]:
        """``(file, member of the log, member of item_context)``; members only inside an archive."""
        path = self.path
        name = f"{self.campaign}.csv"
        if path.is_file() and path.suffix in (".whl", ".zip"):
            return path, f"{self._member}/{name}", f"{self._member}/{ITEM_CONTEXT}"
        if path.is_dir():
            tail = Path(self._member)
            for base in (path, path / tail.relative_to(ARCHIVE_FOLDER), path / tail):
                if (base / name).is_file():
                    return base / name, None, None
            raise DataFormatError(
                path,
                f"no {name} found here, in {self.behavior_policy}/{self.campaign}/ or in {tail}/",
            )
        return check_file(path, "OBD log"), None, None

    def input_files(self) -> list[Path]:
        path, member, _ = self._locate()
        return [path] if member else [path, path.parent / ITEM_CONTEXT]

    def _read(self, member_of: int) -> tuple[pl.DataFrame, str]:
        """A CSV of the data set as all-text columns, and its display name."""
        path, log_member, ctx_member = self._locate()
        if member_of == 0:
            member, plain = log_member, path
        else:
            member, plain = ctx_member, path.parent / ITEM_CONTEXT
        if member is None:
            check_file(plain, "OBD file")
            data, shown = plain.read_bytes(), str(plain)
        else:
            try:
                with zipfile.ZipFile(path) as zf:
                    data = zf.read(member)
            except KeyError:
                raise DataFormatError(path, f"archive has no member {member}") from None
            except zipfile.BadZipFile as exc:
                raise DataFormatError(path, f"not a readable zip/wheel archive ({exc})") from None
            shown = f"{path}!{member}"
        try:
            df = pl.read_csv(io.BytesIO(data), infer_schema=False)
        except pl.exceptions.PolarsError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DataFormatError(shown, f"could not be read as CSV: {first}") from None
        return df, shown

    def events(self, say: Progress) -> tuple[pl.DataFrame, dict[str, Any]]:
        df, shown = self._read(0)
        say(f"read {shown}")
        _require(shown, df, REQUIRED)
        ts = pl.col("timestamp").str.strip_chars().str.to_datetime(TIME_FORMAT, strict=False)
        typed = df.select(
            ts.dt.epoch("ms").alias("timestamp"),
            pl.col("item_id").str.strip_chars().cast(pl.Int64, strict=False),
            pl.col("click").str.strip_chars().cast(pl.Int8, strict=False),
            pl.concat_str([pl.col(c).str.strip_chars() for c in USER_COLS], separator="|").alias(
                "user"
            ),
        )
        for col in ("timestamp", "item_id", "click", "user"):
            bad = typed.get_column(col).is_null()
            if col == "click":
                bad = bad | ~typed.get_column(col).is_in([0, 1])
            if bad.any():
                row = int(bad.arg_true()[0])
                raw = df.get_column(col if col != "user" else USER_COLS[0])[row]
                raise DataFormatError(
                    shown,
                    f"invalid value '{raw}'",
                    line=row + 2,
                    column=col if col != "user" else None,
                )
        events = typed.select(
            pl.col("user").alias(EV_USER),
            pl.col("item_id").alias(EV_ITEM),
            pl.col("timestamp").alias(EV_TIME),
            pl.col("click").alias(EV_LABEL),
        )
        return events, {"rows": df.height, "clicks": int(typed.get_column("click").sum())}

    def side_info(self, users: pl.DataFrame, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        parts = [str(u).split("|") for u in raw_ids(users)]
        user_x = np.hstack([one_hot([p[i] for p in parts]) for i in range(len(USER_COLS))])
        ctx, shown = self._read(1)
        _require(shown, ctx, ITEM_COLS)
        ctx = ctx.with_columns(pl.col("item_id").str.strip_chars().cast(pl.Int64, strict=False))
        by_id = {r[0]: r for r in ctx.select(ITEM_COLS).iter_rows()}
        missing = [i for i in raw_ids(items) if i not in by_id]
        if missing:
            raise DataFormatError(shown, f"item(s) {missing[:5]} of the log are not listed")
        rows = [by_id[i] for i in raw_ids(items)]
        try:
            numeric = np.array([[float(r[1])] for r in rows], dtype=np.float32)
        except (TypeError, ValueError):
            raise DataFormatError(
                shown, "item_feature_0 must be numeric", column="item_feature_0"
            ) from None
        cats = [one_hot([r[j] for r in rows]) for j in (2, 3, 4)]
        return user_x, np.hstack([numeric, *cats])


def _require(shown: str, df: pl.DataFrame, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataFormatError(
            shown, f"header lacks column(s) {', '.join(missing)} (is this an OBD file?)", line=1
        )
