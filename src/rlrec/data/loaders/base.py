"""What every raw-data source provides: a config model that knows how to load its files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from rlrec.config import StrictModel
from rlrec.data.filters import FilterConfig
from rlrec.data.schema import SESSION


class SourceConfig(StrictModel):
    """Base of the per-source configs. ``path`` is a raw file or the directory that holds them."""

    path: Path

    def load(self, seed: int) -> pl.DataFrame:
        """Read the raw files into the canonical event table (see :mod:`rlrec.data.schema`)."""
        raise NotImplementedError

    @property
    def streams(self) -> bool:
        """Whether :meth:`batches` reads the files in bounded memory (out-of-core preparation)."""
        return False

    def batches(self, seed: int) -> Iterator[pl.DataFrame]:
        """The canonical events in source order, in batches (by default :meth:`load`, in one)."""
        yield self.load(seed)

    def session_ids(self, seed: int, every: int) -> pl.Series:
        """Every ``every``-th session id of :meth:`batches`, in source order (part boundaries)."""
        picked, offset = [], 0
        for batch in self.batches(seed):
            ids = batch.get_column(SESSION)
            picked.append(ids.gather_every(every, (-offset) % every))
            offset += len(ids)
        return pl.concat(picked)

    def session_stats(self, events: pl.DataFrame) -> pl.DataFrame | None:
        """What :meth:`choose_sessions` needs of each session of ``events`` (one row per session,
        sorted by id), or ``None`` when the source keeps every session (the default)."""
        return None

    def choose_sessions(self, stats: pl.DataFrame, seed: int) -> pl.Series:
        """Which sessions of the whole log's ``stats`` to keep (a Boolean mask over its rows)."""
        raise NotImplementedError

    def input_files(self) -> list[Path]:
        """The raw files read, for provenance hashes in the manifest."""
        raise NotImplementedError

    def default_filters(self) -> FilterConfig:
        """Session/item filters of the source's reference pipeline (none by default)."""
        return FilterConfig()
