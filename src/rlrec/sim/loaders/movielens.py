"""MovieLens as list data (P-HAC A.1): ML-1M ``.dat`` files and RecBole atomic files (ML-100K).

Label ``y = 1[rating > positive_above]`` (default 3: ratings 4 and 5 are positive); each user's
ratings, stably sorted by timestamp, are cut into lists of ``slate_size`` (10) as in
:mod:`rlrec.sim.lists`. Ratings are read through the offline loaders (line-numbered diagnostics);
timestamps become milliseconds.

Side information (``features: side_info``): ML-1M ``users.dat`` (gender, age group, occupation:
one-hot) and ``movies.dat`` (genres multi-hot, release year from the title, standardised); RecBole
``.user`` (age standardised, gender and occupation one-hot) and ``.item`` (``class`` multi-hot,
``release_year`` standardised). Missing years (ML-100K's ``unkonwn``) become 0 after standardising.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from rlrec.data.loaders.delimited import find_file
from rlrec.data.loaders.movielens import ML1M_RATINGS, ML100K_RATINGS, MovieLensSource
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.schema import ITEM, RATING, SESSION, TIMESTAMP
from rlrec.errors import DataFormatError
from rlrec.sim.features import multi_hot, one_hot, standardize
from rlrec.sim.lists import EV_ITEM, EV_LABEL, EV_TIME, EV_USER
from rlrec.sim.loaders.base import EventListSource, Progress, raw_ids
from rlrec.sim.loaders.sideinfo import frame_of, lookup, parse_float, read_rows

_YEAR = re.compile(r"\((\d{4})\)\s*$")
ML1M_USERS = "users.dat"
ML1M_MOVIES = "movies.dat"


def rating_lists(events: pl.DataFrame, positive_above: float) -> pl.DataFrame:
    """Canonical rating events → the list-builder's event table (label = rating > threshold)."""
    return events.select(
        pl.col(SESSION).alias(EV_USER),
        pl.col(ITEM).alias(EV_ITEM),
        pl.col(TIMESTAMP).alias(EV_TIME),
        (pl.col(RATING) > positive_above).cast(pl.Int8).alias(EV_LABEL),
    )


class MovieLensListSource(EventListSource):
    """MovieLens 1M (``ratings.dat``, ``users.dat``, ``movies.dat``) or 100K ``u.data``.

    ``path``: ``ratings.dat``/``u.data`` or the directory holding it (side information is read from
    ``users.dat`` and ``movies.dat`` beside it). ``drop_first_row`` reproduces the reference's
    ``skiprows=1`` on the headerless file (1,000,208 ratings instead of 1,000,209, as in P-HAC
    Table 1).
    """

    kind: Literal["movielens"] = "movielens"
    path: Path
    positive_above: float = 3.0
    drop_first_row: bool = False

    def _ratings(self) -> Path:
        return find_file(self.path, [ML1M_RATINGS, ML100K_RATINGS], "MovieLens ratings file")

    def input_files(self) -> list[Path]:
        files = [self._ratings()]
        if self.features != "random_codes":
            files += [files[0].parent / ML1M_USERS, files[0].parent / ML1M_MOVIES]
        return files

    def events(self, say: Progress) -> tuple[pl.DataFrame, dict[str, Any]]:
        path = self._ratings()
        say(f"reading {path.name}")
        events = MovieLensSource(path=path).load(seed=0)
        if self.drop_first_row:
            events = events.slice(1)
        return rating_lists(events, self.positive_above), {"ratings": events.height}

    def side_info(self, users: pl.DataFrame, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        folder = self._ratings().parent
        upath, mpath = folder / ML1M_USERS, folder / ML1M_MOVIES
        _, urows = read_rows(upath, 5, separator="::", encoding="latin-1", what=ML1M_USERS)
        u = frame_of(
            lookup(upath, urows, 0, raw_ids(users), "user"),
            ["user", "gender", "age", "occupation", "zip"],
        )
        user_x = np.hstack(
            [one_hot(u.get_column(c).to_list()) for c in ("gender", "age", "occupation")]
        )
        _, mrows = read_rows(mpath, 3, separator="::", encoding="latin-1", what=ML1M_MOVIES)
        m = lookup(mpath, mrows, 0, raw_ids(items), "movie")
        genres = [parts[2].strip().split("|") for _, parts in m]
        years = [
            float(match.group(1)) if (match := _YEAR.search(parts[1].strip())) else np.nan
            for _, parts in m
        ]
        item_x = np.hstack([multi_hot(genres), standardize(np.array(years))])
        return user_x, item_x


class RecBoleListSource(EventListSource):
    """A RecBole atomic ``.inter`` file (e.g. ``shared/datasets/ml-100k``), same rules as ML-1M.

    ``path``: the ``.inter`` file or the directory holding exactly one; side information comes from
    the ``.user``/``.item`` files of the same name beside it.
    """

    kind: Literal["recbole"] = "recbole"
    path: Path
    positive_above: float = 3.0

    def _inter(self) -> Path:
        return RecBoleSource(path=self.path).input_files()[0]

    def input_files(self) -> list[Path]:
        inter = self._inter()
        files = [inter]
        if self.features != "random_codes":
            files += [inter.with_suffix(".user"), inter.with_suffix(".item")]
        return files

    def events(self, say: Progress) -> tuple[pl.DataFrame, dict[str, Any]]:
        say(f"reading {self._inter().name}")
        events = RecBoleSource(path=self.path).load(seed=0)
        return rating_lists(events, self.positive_above), {"ratings": events.height}

    def side_info(self, users: pl.DataFrame, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        inter = self._inter()
        upath, ipath = inter.with_suffix(".user"), inter.with_suffix(".item")
        uhead, urows = _atomic(upath, "RecBole .user file")
        need = ("user_id", "age", "gender", "occupation")
        col = _columns(upath, uhead, need)
        rows = lookup(upath, urows, col["user_id"], raw_ids(users), "user")
        ages = np.array(
            [parse_float(upath, ln, "age", p[col["age"]], missing_ok=True) for ln, p in rows]
        )
        user_x = np.hstack(
            [
                standardize(ages),
                one_hot([p[col["gender"]].strip() for _, p in rows]),
                one_hot([p[col["occupation"]].strip() for _, p in rows]),
            ]
        )
        ihead, irows = _atomic(ipath, "RecBole .item file")
        icol = _columns(ipath, ihead, ("item_id", "release_year", "class"))
        rows = lookup(ipath, irows, icol["item_id"], raw_ids(items), "item")
        years = np.array([_year(p[icol["release_year"]]) for _, p in rows])
        classes = [p[icol["class"]].split() for _, p in rows]
        return user_x, np.hstack([multi_hot(classes), standardize(years)])


def _year(text: str) -> float:
    """A release year, or NaN when the file has none (ML-100K writes 'unkonwn')."""
    try:
        return float(text.strip())
    except ValueError:
        return float("nan")


def _atomic(path: Path, what: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header names (without ``:type``) and rows of a tab-separated RecBole atomic file."""
    with open(find_file(path, [path.name], what), encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n").split("\t")
    head, rows = read_rows(path, len(first), separator="\t", header=True, what=what)
    assert head is not None
    return [h.partition(":")[0] for h in head], rows


def _columns(path: Path, header: list[str], names: tuple[str, ...]) -> dict[str, int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise DataFormatError(
            path, f"header lacks field(s) {', '.join(missing)} (found {', '.join(header)})", line=1
        )
    return {n: header.index(n) for n in names}
