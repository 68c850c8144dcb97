"""Train/test splits of list records (P-HAC §3.1.4).

* ``time`` (P-HAC §3.1.4): all records sorted globally by ``(timestamp, user_id, seq_idx)``; the first
  ``floor(train_frac·R)`` train, the rest test. Histories were built on the full timeline before the
  split, so a test record's history holds train-period positives (the user's real past).
* ``rl4rs_official``: the RL4RS release's own split, ``session_id % 10 <= 5`` → train (needs integer
  raw user ids).

``all`` = train ∪ test, in the same global time order.
"""

from __future__ import annotations

import math
from typing import Literal

import polars as pl
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.errors import ConfigError
from rlrec.sim.schema import RAW, SEQ, TIME, USER

SPLITS = ("train", "test")
ORDER = [TIME, USER, SEQ]


class ListSplitConfig(StrictModel):
    """How list records are divided into train and test."""

    kind: Literal["time", "rl4rs_official"] = "time"
    train_frac: float = Field(0.8, gt=0.0, lt=1.0)


def split_records(
    records: pl.DataFrame, users: pl.DataFrame, cfg: ListSplitConfig
) -> dict[str, pl.DataFrame]:
    """``{"train": ..., "test": ...}``, each in global time order."""
    ordered = records.sort(ORDER, maintain_order=True)
    if cfg.kind == "time":
        cut = math.floor(round(cfg.train_frac * ordered.height, 9))
        return {"train": ordered.head(cut), "test": ordered.slice(cut)}
    raw = users.get_column(RAW)
    if not raw.dtype.is_integer():
        raise ConfigError("split.kind 'rl4rs_official' needs integer session ids (RL4RS data)")
    train_users = users.filter(pl.col(RAW) % 10 <= 5).get_column(USER)
    is_train = pl.col(USER).is_in(train_users.implode())
    return {"train": ordered.filter(is_train), "test": ordered.filter(~is_train)}
