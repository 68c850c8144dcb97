"""What every list-data source provides, and the shared path for per-item event logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from rlrec.config import StrictModel
from rlrec.errors import ConfigError
from rlrec.sim.features import features_column, random_codes
from rlrec.sim.lists import build_records
from rlrec.sim.schema import RAW, ListTables

Progress = Callable[[str], None]


def quiet(_msg: str) -> None:
    """A progress callback that says nothing."""


class ListSourceConfig(StrictModel):
    """Base of the list-source configs: ``load`` turns raw files into :class:`ListTables`."""

    def load(self, seed: int, say: Progress = quiet) -> ListTables:
        """Read the raw files; ``seed`` drives random feature codes and synthetic draws."""
        raise NotImplementedError

    def input_files(self) -> list[Path]:
        """The raw files read, for provenance hashes in the manifest."""
        raise NotImplementedError


class EventListSource(ListSourceConfig):
    """A per-item interaction log cut into lists of ``slate_size`` (P-HAC A.1).

    ``features``: ``random_codes`` (the reference: i.i.d. N(0, 1) codes of ``feature_dim``),
    ``side_info`` (the source's own user/item attributes, where it has them) or
    ``side_info_and_codes`` (the attributes, and for items a random code beside them: the attributes
    say what an item is, the code keeps items with equal attributes apart — for the URM and for the
    agents, which embed items by their features; users keep their attributes alone).
    """

    slate_size: int = Field(10, ge=1)
    features: Literal["random_codes", "side_info", "side_info_and_codes"] = "random_codes"
    feature_dim: int = Field(32, ge=1)

    def events(self, say: Progress) -> tuple[pl.DataFrame, dict[str, Any]]:
        """``(events, notes)``: columns ``user, item, timestamp, label`` in source order."""
        raise NotImplementedError

    def side_info(self, users: pl.DataFrame, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(user features (U, d_u), item features (N, d_i))`` for the tables' raw ids, in order."""
        raise ConfigError(f"source '{getattr(self, 'kind', '?')}' has no side information")

    def load(self, seed: int, say: Progress = quiet) -> ListTables:
        events, notes = self.events(say)
        say("cutting lists")
        records, users, items = build_records(events, self.slate_size)
        if self.features == "random_codes":
            user_x = random_codes(users.height, self.feature_dim, seed, "users")
            item_x = random_codes(items.height, self.feature_dim, seed, "items")
        else:
            user_x, item_x = self.side_info(users, items)
            if self.features == "side_info_and_codes":
                codes = random_codes(items.height, self.feature_dim, seed, "items")
                item_x = np.hstack([item_x, codes])
        return ListTables(
            records=records,
            users=users.with_columns(features_column(user_x)),
            items=items.with_columns(features_column(item_x)),
            notes=notes,
        )


def raw_ids(table: pl.DataFrame) -> list[Any]:
    """The raw ids of a users/items table, in dense order."""
    return table.get_column(RAW).to_list()
