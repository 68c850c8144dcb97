"""KuaiRand-1K as list data (P-HAC A.1).

Raw files (comma-separated, with header): ``log_standard_*.csv`` (read in name order and concatenated;
``include_random_log`` also adds ``log_random_*.csv``). Columns used: ``user_id``,
``video_id``, ``time_ms``, ``play_time_ms``, ``duration_ms`` (the others are ignored, in any order).

Pipeline: videos occurring fewer than ``min_item_count`` (50) times in the concatenated log are
dropped (counts taken once, before anything else; users are not filtered, so one pass is a fixed
point); label = ``play_time_ms / duration_ms > watch_ratio_above`` (0.8); rows with
``duration_ms <= 0`` get label 0 and are counted in the manifest notes; then lists of ``slate_size``
as in :mod:`rlrec.sim.lists` (stable sort by ``(user_id, time_ms, file order)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field as PydField

from rlrec.data.loaders.delimited import Field, check_file, read_delimited
from rlrec.errors import DataFormatError
from rlrec.sim.lists import EV_ITEM, EV_LABEL, EV_TIME, EV_USER
from rlrec.sim.loaders.base import EventListSource, Progress

STANDARD_LOGS = "log_standard_*.csv"
RANDOM_LOGS = "log_random_*.csv"
USED = {
    "user_id": "int",
    "video_id": "int",
    "time_ms": "int",
    "play_time_ms": "float",
    "duration_ms": "float",
}


class KuaiRandListSource(EventListSource):
    """KuaiRand logs. ``path``: the directory holding ``log_standard_*.csv`` (or one log file)."""

    kind: Literal["kuairand"] = "kuairand"
    path: Path
    include_random_log: bool = False
    min_item_count: int = PydField(50, ge=1)
    watch_ratio_above: float = 0.8

    def input_files(self) -> list[Path]:
        if not self.path.is_dir():
            return [check_file(self.path, "KuaiRand log file")]
        patterns = [STANDARD_LOGS] + ([RANDOM_LOGS] if self.include_random_log else [])
        files = [p for pattern in patterns for p in sorted(self.path.glob(pattern))]
        if not files:
            raise DataFormatError(
                self.path,
                f"no KuaiRand log found in this directory (looked for {', '.join(patterns)})",
            )
        return files

    def events(self, say: Progress) -> tuple[pl.DataFrame, dict[str, Any]]:
        frames = []
        for path in self.input_files():
            say(f"reading {path.name}")
            frames.append(_read_log(path))
        log = pl.concat(frames, how="vertical")
        counts = log.group_by("video_id").len()
        keep = counts.filter(pl.col("len") >= self.min_item_count).get_column("video_id")
        kept = log.filter(pl.col("video_id").is_in(keep.implode()))
        if kept.height == 0:
            raise DataFormatError(
                self.path,
                f"no video occurs at least {self.min_item_count} times; lower 'source.min_item_count'",
            )
        zero = int((kept.get_column("duration_ms") <= 0).sum())
        ratio = pl.col("play_time_ms") / pl.col("duration_ms")
        events = kept.select(
            pl.col("user_id").alias(EV_USER),
            pl.col("video_id").alias(EV_ITEM),
            pl.col("time_ms").alias(EV_TIME),
            pl.when(pl.col("duration_ms") > 0)
            .then(ratio > self.watch_ratio_above)
            .otherwise(False)
            .cast(pl.Int8)
            .alias(EV_LABEL),
        )
        if zero:
            say(f"{zero} rows with duration_ms <= 0 labelled negative")
        notes = {
            "log_rows": log.height,
            "rows_after_item_filter": kept.height,
            "rows_with_nonpositive_duration": zero,
        }
        return events, notes


def _read_log(path: Path) -> pl.DataFrame:
    """One KuaiRand log with the used columns typed (header checked by name)."""
    path = check_file(path, "KuaiRand log file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = [c.strip().strip('"') for c in fh.readline().rstrip("\r\n").split(",")]
    missing = [c for c in USED if c not in header]
    if missing:
        raise DataFormatError(
            path,
            f"header lacks column(s) {', '.join(missing)} (found '{','.join(header)[:200]}')",
            line=1,
        )
    fields = [Field(c, USED.get(c, "skip")) for c in header]  # type: ignore[arg-type]
    df = read_delimited(path, fields, separator=",", header=header, what="KuaiRand log file")
    return df.select(list(USED))
