"""RecBole atomic ``.inter`` files (tab-separated, typed header ``name:type``).

Example (the ML-100K shipped with RecBole, ``shared/datasets/ml-100k/ml-100k.inter``)::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

The session is ``session_field`` (a user id by default), the rating threshold decides purchases as for
MovieLens, and events are ordered by ``time_field`` (Unix seconds by default) with ties kept in file
order. Token ids that are all integers become Int64 ids; otherwise they stay strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.delimited import (
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    Field,
    check_file,
    read_delimited,
)
from rlrec.data.loaders.movielens import rating_events
from rlrec.data.schema import ITEM, RATING, SESSION, TIMESTAMP, ids_to_canonical
from rlrec.errors import DataFormatError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


class RecBoleSource(SourceConfig):
    """A RecBole ``.inter`` file. ``path``: the file, or a directory holding exactly one."""

    kind: Literal["recbole"] = "recbole"
    session_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"
    rating_field: str = "rating"
    purchase_min_rating: float = 4.0
    time_unit: Literal["s", "ms"] = "s"

    def input_files(self) -> list[Path]:
        if self.path.is_dir():
            found = sorted(self.path.glob("*.inter"))
            if len(found) != 1:
                raise DataFormatError(
                    self.path,
                    f"expected exactly one .inter file in this directory, found {len(found)}",
                )
            return found
        return [check_file(self.path, "RecBole .inter file")]

    def load(self, seed: int) -> pl.DataFrame:
        (path,) = self.input_files()
        header = _read_header(path)
        names = [name for name, _ in header]
        roles = {
            self.session_field: SESSION,
            self.item_field: ITEM,
            self.time_field: TIMESTAMP,
            self.rating_field: RATING,
        }
        for field_name, role in roles.items():
            if field_name not in names:
                raise DataFormatError(
                    path,
                    f"header has no field '{field_name}' for the {role} "
                    f"(fields: {', '.join(names)}; set source.*_field)",
                    line=1,
                )
        fields = []
        for name, _type in header:
            if name == self.time_field:
                limit = MAX_EPOCH_S if self.time_unit == "s" else MAX_EPOCH_MS
                fields.append(Field(name, "float", max_abs=limit))
            elif name == self.rating_field:
                fields.append(Field(name, "float"))
            elif name in (self.session_field, self.item_field):
                fields.append(Field(name, "str"))
            else:
                fields.append(Field(name, "skip"))
        raw_header = [f"{n}:{t}" for n, t in header]
        df = read_delimited(
            path, fields, separator="\t", header=raw_header, what="RecBole .inter file"
        )
        df = ids_to_canonical(df.rename(roles), (SESSION, ITEM))
        scale = 1000 if self.time_unit == "s" else 1
        return rating_events(df, self.purchase_min_rating, time_scale=scale)


def _read_header(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
    header = []
    for token in first.split("\t"):
        name, sep, atomic_type = token.partition(":")
        if not sep or atomic_type not in ATOMIC_TYPES:
            raise DataFormatError(
                path,
                f"header field '{token}' is not of the form name:type "
                f"with type in {', '.join(ATOMIC_TYPES)} (is the file tab-separated?)",
                line=1,
            )
        header.append((name, atomic_type))
    return header
