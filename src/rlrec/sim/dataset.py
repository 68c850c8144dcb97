"""Reading a prepared list dataset back (manifest checked) and turning records into tensors.

:meth:`ListDataset.tensors` gives the loader output for a whole split at once:
histories clipped to the last ``H`` items and **left**-padded with 0 (reference ``padding_and_clip``),
a mask that is True on real items, exposures and labels, and the user's response counts before the
list — how many items the user was shown and responded to positively in the earlier lists of the
data set (any split, by ``seq_idx``): what the positive-only history hides, the user's own rate.
Item features are looked up from :meth:`ListDataset.item_features`, whose row 0 (padding) is the
zero vector.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from rlrec.errors import DataFormatError
from rlrec.manifest import read_manifest
from rlrec.sim.features import features_matrix
from rlrec.sim.prepare import FORMAT, FORMAT_VERSION, ITEMS, USERS
from rlrec.sim.schema import EXPOSURE, HISTORY, LABELS, SEQ, TIME, USER
from rlrec.sim.splits import ORDER, SPLITS

REQUIRED_KEYS = ("format", "format_version", "slate_size", "n_items", "n_users", "files")


@dataclass(frozen=True)
class ListTensors:
    """A split as tensors. ``user`` ``(R,)``; ``history`` ``(R, H)`` left-padded ids;
    ``history_mask`` ``(R, H)`` bool; ``exposure`` ``(R, K)``; ``labels`` ``(R, K)`` float32;
    ``timestamp`` ``(R,)``; ``seen`` and ``positives`` ``(R,)`` float32: items shown to the user and
    positive responses in the user's earlier lists."""

    user: torch.Tensor
    history: torch.Tensor
    history_mask: torch.Tensor
    exposure: torch.Tensor
    labels: torch.Tensor
    timestamp: torch.Tensor
    seen: torch.Tensor
    positives: torch.Tensor

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def index(self, idx: torch.Tensor) -> ListTensors:
        """The rows ``idx``."""
        return ListTensors(*(getattr(self, f.name)[idx] for f in fields(self)))

    def to(self, device: torch.device | str) -> ListTensors:
        return ListTensors(*(getattr(self, f.name).to(device) for f in fields(self)))


def pad_left(lists: pl.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Last ``width`` elements of each list, left-padded with 0: ``(ids (R, width), mask (R, width))``."""
    tail = lists.list.tail(width)
    lens = tail.list.len().to_numpy().astype(np.int64)
    flat = tail.explode(empty_as_null=False, keep_nulls=False).to_numpy().astype(np.int64)
    rows = np.repeat(np.arange(len(lens)), lens)
    starts = np.cumsum(lens) - lens
    cols = width - lens[rows] + (np.arange(len(flat)) - starts[rows])
    ids = np.zeros((len(lens), width), dtype=np.int64)
    mask = np.zeros((len(lens), width), dtype=bool)
    ids[rows, cols] = flat
    mask[rows, cols] = True
    return ids, mask


def response_counts(records: pl.DataFrame) -> pl.DataFrame:
    """``user_id, seq_idx, seen, positives``: per record, the exposures and positive labels of the
    same user's records with a smaller ``seq_idx``."""
    per = records.select(
        pl.col(USER),
        pl.col(SEQ),
        pl.col(EXPOSURE).list.len().cast(pl.Float64).alias("_n"),
        pl.col(LABELS).list.sum().cast(pl.Float64).alias("_pos"),
    ).sort([USER, SEQ])
    return per.select(
        USER,
        SEQ,
        (pl.col("_n").cum_sum().over(USER) - pl.col("_n")).alias("seen"),
        (pl.col("_pos").cum_sum().over(USER) - pl.col("_pos")).alias("positives"),
    )


def _fixed(lists: pl.Series, dtype: npt.DTypeLike) -> np.ndarray:
    """A column of equal-length lists as an ``(R, K)`` array."""
    k = int(cast(int, lists.list.len().max())) if len(lists) else 0
    return lists.explode(empty_as_null=False).to_numpy().astype(dtype).reshape(len(lists), k)


class ListDataset:
    """A directory written by ``rlrec sim prepare``."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.slate_size: int = manifest["slate_size"]
        self.n_items: int = manifest["n_items"]
        self.n_users: int = manifest["n_users"]

    @classmethod
    def load(cls, path: Path, *, verify: bool = True) -> ListDataset:
        """Open ``path``; with ``verify`` every data file's SHA-256 is checked against the manifest."""
        manifest = read_manifest(
            path,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            required=REQUIRED_KEYS,
            what="list dataset",
            command="rlrec sim prepare",
            verify=verify,
        )
        return cls(path, manifest)

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def catalogue_hash(self) -> str:
        return self.manifest["catalogue_hash"]

    def records(self, split: str) -> pl.DataFrame:
        """The records of ``train``, ``test`` or ``all`` (= train ∪ test), in global time order."""
        if split == "all":
            both = pl.concat([self.records(s) for s in SPLITS])
            return both.sort(ORDER, maintain_order=True)
        if split not in SPLITS:
            raise DataFormatError(
                self.path, f"unknown split '{split}' (expected train, test or all)"
            )
        return pl.read_parquet(self.path / f"{split}.parquet")

    @cached_property
    def users(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / USERS)

    @cached_property
    def items(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / ITEMS)

    def user_features(self) -> torch.Tensor:
        """``(U, d_u)`` float32, row = dense user id."""
        return torch.from_numpy(features_matrix(self.users))

    def item_features(self) -> torch.Tensor:
        """``(N+1, d_i)`` float32, row = dense item id; row 0 (padding) is zero."""
        x = features_matrix(self.items)
        return torch.from_numpy(np.vstack([np.zeros((1, x.shape[1]), np.float32), x]))

    def tensors(self, split: str, max_history: int) -> ListTensors:
        """The split as :class:`ListTensors` with histories clipped/padded to ``max_history``."""
        df = self.records(split)
        counts = df.select(USER, SEQ).join(
            self._counts, on=[USER, SEQ], how="left", maintain_order="left"
        )
        hist, mask = pad_left(df.get_column(HISTORY), max_history)
        return ListTensors(
            user=torch.from_numpy(df.get_column(USER).to_numpy().astype(np.int64)),
            history=torch.from_numpy(hist),
            history_mask=torch.from_numpy(mask),
            exposure=torch.from_numpy(_fixed(df.get_column(EXPOSURE), np.int64)),
            labels=torch.from_numpy(_fixed(df.get_column(LABELS), np.float32)),
            timestamp=torch.from_numpy(df.get_column(TIME).to_numpy().astype(np.int64)),
            seen=torch.from_numpy(counts.get_column("seen").to_numpy().astype(np.float32)),
            positives=torch.from_numpy(
                counts.get_column("positives").to_numpy().astype(np.float32)
            ),
        )

    @cached_property
    def _counts(self) -> pl.DataFrame:
        return response_counts(self.records("all"))
