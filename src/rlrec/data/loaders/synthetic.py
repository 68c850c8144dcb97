"""Directories written by ``rlrec data synth``: ``events.parquet`` in the canonical schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl

from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import check_file
from rlrec.data.schema import REQUIRED_COLUMNS, canonical
from rlrec.errors import DataFormatError

EVENTS_FILE = "events.parquet"
ITEMS_FILE = "items.parquet"


class SyntheticSource(SourceConfig):
    """Synthetic sessions. ``path``: the directory written by ``rlrec data synth``."""

    kind: Literal["synthetic"] = "synthetic"

    def input_files(self) -> list[Path]:
        return [check_file(self.path / EVENTS_FILE, "synthetic events file")]

    @property
    def streams(self) -> bool:
        return True

    def load(self, seed: int) -> pl.DataFrame:
        return pl.concat(list(self.batches(seed)))

    def batches(self, seed: int) -> Iterator[pl.DataFrame]:
        (path,) = self.input_files()
        try:
            columns = pl.read_parquet_schema(path)
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise DataFormatError(path, f"missing column(s) {', '.join(missing)}")
            for batch in pl.scan_parquet(path).collect_batches(chunk_size=1 << 20):
                yield canonical(batch)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataFormatError(path, f"not a readable Parquet file ({exc})") from None
