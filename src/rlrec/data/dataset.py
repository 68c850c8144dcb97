"""Reading a prepared dataset directory back, with its manifest checked.

A split is exposed as a :class:`SessionLog`: flat per-event arrays plus session offsets, from which
transitions are cut at batch time (:mod:`rlrec.data.transitions`), so memory grows with the number of
events, never with events × window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rlrec.data.prepare import FORMAT, FORMAT_VERSION, ITEM_INDEX, ITEMS
from rlrec.data.schema import IS_BUY, SESSION
from rlrec.data.splits import SPLITS
from rlrec.errors import DataFormatError
from rlrec.manifest import read_manifest

REQUIRED_KEYS = ("format", "format_version", "n_items", "pad_id", "state_size", "splits", "files")


@dataclass(frozen=True)
class SessionLog:
    """One split as flat arrays: session ``k`` is ``items[starts[k]:starts[k + 1]]``.

    ``items``: ``[E]`` int64 item indices in ``0..n-1``; ``is_buy``: ``[E]`` int8; ``starts``: ``[S+1]``
    int64 offsets; ``session_ids``: ``[S]`` raw session ids.
    """

    items: np.ndarray
    is_buy: np.ndarray
    starts: np.ndarray
    session_ids: pl.Series

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> SessionLog:
        """Build from events sorted by session (each session contiguous)."""
        sessions = df.get_column(SESSION)
        change = np.flatnonzero((sessions != sessions.shift(1)).fill_null(True).to_numpy())
        return cls(
            items=df.get_column(ITEM_INDEX).to_numpy().astype(np.int64),
            is_buy=df.get_column(IS_BUY).to_numpy().astype(np.int8),
            starts=np.append(change, df.height).astype(np.int64),
            session_ids=sessions.gather(change),
        )

    @property
    def n_sessions(self) -> int:
        return len(self.starts) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)


class PreparedDataset:
    """A directory written by ``rlrec data prepare``."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.n_items: int = manifest["n_items"]
        self.pad_id: int = manifest["pad_id"]
        self.state_size: int = manifest["state_size"]

    @classmethod
    def load(cls, path: Path, *, verify: bool = True) -> PreparedDataset:
        """Open ``path``; with ``verify`` every data file's SHA-256 is checked against the manifest."""
        manifest = read_manifest(
            path,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            required=REQUIRED_KEYS,
            what="dataset",
            command="rlrec data prepare",
            verify=verify,
        )
        return cls(path, manifest)

    def frame(self, split: str) -> pl.DataFrame:
        """The events of one split as a DataFrame."""
        if split not in SPLITS:
            raise DataFormatError(
                self.path, f"unknown split '{split}' (expected train, val or test)"
            )
        return pl.read_parquet(self.path / f"{split}.parquet")

    def split(self, split: str) -> SessionLog:
        """The events of one split as flat arrays."""
        return SessionLog.from_frame(self.frame(split))

    @cached_property
    def items(self) -> pl.DataFrame:
        """``item`` index → raw ``item_id``, ``count_all``, ``count_train``."""
        return pl.read_parquet(self.path / ITEMS)
