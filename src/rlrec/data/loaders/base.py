"""What every raw-data source provides: a config model that knows how to load its files."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rlrec.config import StrictModel
from rlrec.data.filters import FilterConfig


class SourceConfig(StrictModel):
    """Base of the per-source configs. ``path`` is a raw file or the directory that holds them."""

    path: Path

    def load(self, seed: int) -> pl.DataFrame:
        """Read the raw files into the canonical event table (see :mod:`rlrec.data.schema`)."""
        raise NotImplementedError

    def input_files(self) -> list[Path]:
        """The raw files read, for provenance hashes in the manifest."""
        raise NotImplementedError

    def default_filters(self) -> FilterConfig:
        """Session/item filters of the source's reference pipeline (none by default)."""
        return FilterConfig()
