"""Directories written by ``rlrec data synth``: ``events.parquet`` in the canonical schema."""

from __future__ import annotations

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

    def load(self, seed: int) -> pl.DataFrame:
        (path,) = self.input_files()
        try:
            df = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataFormatError(path, f"not a readable Parquet file ({exc})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise DataFormatError(path, f"missing column(s) {', '.join(missing)}")
        return canonical(df)
