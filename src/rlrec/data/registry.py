"""Where the raw data sets rlrec reads come from: official source, terms, the files and their hashes.

One :class:`DataSet` per raw data set: its key, title, official source, the ``rlrec`` commands
that read it, its licence or terms in a few words, and the files rlrec reads from it
(:class:`ExpectedFile`: path relative to the folder the command is pointed at, whether it is
required, and size and SHA-256 **only where they were measured** on the official distribution;
``None`` means rlrec records no hash for that file). ``rlrec data verify`` (:mod:`rlrec.data.verify`)
checks a folder or archive against these entries.

The file names come from the loaders' own constants, so the registry and what the loaders read
cannot drift apart; ``tests/test_data_verify.py`` checks each loader finds exactly these files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rlrec.data.loaders.movielens import ML1M_RATINGS, ML100K_RATINGS
from rlrec.data.loaders.retailrocket import EVENTS_FILE
from rlrec.data.loaders.yoochoose import BUYS_FILE, CLICKS_FILE
from rlrec.errors import RlrecError
from rlrec.sim.loaders.kuairand import RANDOM_LOGS, STANDARD_LOGS
from rlrec.sim.loaders.movielens import ML1M_MOVIES, ML1M_USERS
from rlrec.sim.loaders.obd import ARCHIVE_FOLDER as OBD_FOLDER
from rlrec.sim.loaders.obd import ITEM_CONTEXT
from rlrec.sim.loaders.rl4rs import ITEM_INFO
from rlrec.sim.loaders.rl4rs import NAMES as RL4RS_NAMES

Need = Literal["required", "one of", "optional"]
"""``required``: must be present; ``one of``: at least one of the data set's ``one of`` files must
be present (OBD: any campaign's log); ``optional``: checked when present."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ExpectedFile:
    """One file of a data set. ``path`` is relative (``/``-separated) to the folder rlrec reads, and
    may be a glob pattern (``*``) for names that vary between releases; a pattern has no hash."""

    path: str
    need: Need = "required"
    bytes: int | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"{self.path}: sha256 must be 64 lower-case hex digits")
        if self.is_pattern and (self.sha256 is not None or self.bytes is not None):
            raise ValueError(f"{self.path}: a glob pattern cannot have a size or hash")

    @property
    def is_pattern(self) -> bool:
        """Whether ``path`` is a glob pattern rather than one file's name."""
        return any(c in self.path for c in "*?[")


@dataclass(frozen=True)
class DataSet:
    """A raw data set: where it comes from, which commands read it, and its files.

    ``archive_prefix``: the data set's folder inside its official archive or wheel (and in an
    extracted copy of it), so that ``verify`` also accepts the archive or the folder above it;
    empty where the files sit at the top or the layout is not known.
    """

    key: str
    title: str
    source: str
    commands: tuple[str, ...]
    terms: str
    files: tuple[ExpectedFile, ...]
    archive_prefix: str = ""

    def __post_init__(self) -> None:
        if len({f.path for f in self.files}) != len(self.files):
            raise ValueError(f"{self.key}: a file is listed twice")

    def layout(self) -> str:
        """The files in a few words, for messages: required ones, the ``one of`` group, and how
        many are optional."""
        parts = [f.path for f in self.files if f.need == "required"]
        group = [f.path for f in self.files if f.need == "one of"]
        if group:
            parts.append(f"one of ({' | '.join(group)})")
        optional = sum(f.need == "optional" for f in self.files)
        return ", ".join(parts) + (f" (+{optional} optional)" if optional else "")


GROUPLENS_TERMS = "GroupLens Research: research use, acknowledge the source, do not redistribute"


def _obd_campaign(
    folder: str, log: tuple[int, str], context: tuple[int, str]
) -> tuple[ExpectedFile, ExpectedFile]:
    """A campaign folder of the OBD sample (``random/all``, …): its log ``<campaign>.csv`` (one of
    the logs must be present) and its ``item_context.csv``, with their measured sizes and hashes."""
    campaign = folder.rsplit("/", 1)[1]
    return (
        ExpectedFile(f"{folder}/{campaign}.csv", "one of", *log),
        ExpectedFile(f"{folder}/{ITEM_CONTEXT}", "optional", *context),
    )


DATASETS: tuple[DataSet, ...] = (
    DataSet(
        key="ml-100k-recbole",
        title="MovieLens 100K as RecBole atomic files",
        source="the recbole 1.2.1 wheel on PyPI, recbole/dataset_example/ml-100k/ "
        "(pip download --no-deps recbole==1.2.1)",
        commands=("rlrec data prepare recbole", "rlrec sim prepare recbole"),
        terms=GROUPLENS_TERMS,
        files=(
            ExpectedFile(
                "ml-100k.inter",
                "required",
                1979230,
                "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            ),
            ExpectedFile(
                "ml-100k.item",
                "optional",
                66632,
                "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            ),
            ExpectedFile(
                "ml-100k.user",
                "optional",
                22697,
                "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            ),
        ),
        archive_prefix="recbole/dataset_example/ml-100k",
    ),
    DataSet(
        key="ml-100k",
        title="MovieLens 100K (GroupLens)",
        source="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        commands=("rlrec data prepare movielens", "rlrec sim prepare movielens"),
        terms=GROUPLENS_TERMS,
        files=(ExpectedFile(ML100K_RATINGS),),
        archive_prefix="ml-100k",
    ),
    DataSet(
        key="ml-1m",
        title="MovieLens 1M (GroupLens)",
        source="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        commands=("rlrec data prepare movielens", "rlrec sim prepare movielens"),
        terms=GROUPLENS_TERMS,
        files=(
            ExpectedFile(ML1M_RATINGS),
            ExpectedFile(ML1M_USERS, "optional"),
            ExpectedFile(ML1M_MOVIES, "optional"),
        ),
        archive_prefix="ml-1m",
    ),
    DataSet(
        key="yoochoose",
        title="YooChoose clicks and buys (RecSys Challenge 2015, RC15)",
        source="https://recsys.acm.org/recsys15/challenge/",
        commands=("rlrec data prepare yoochoose",),
        terms="YOOCHOOSE GmbH; the RecSys Challenge 2015 terms of use",
        files=(ExpectedFile(CLICKS_FILE), ExpectedFile(BUYS_FILE)),
    ),
    DataSet(
        key="retailrocket",
        title="RetailRocket e-commerce events",
        source="https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
        commands=("rlrec data prepare retailrocket",),
        terms="Retailrocket; the licence stated on its Kaggle page",
        files=(ExpectedFile(EVENTS_FILE),),
    ),
    DataSet(
        key="kuairand",
        title="KuaiRand-1K interaction logs",
        source="https://kuairand.com/ (KuaiRand-1K; rlrec reads its data/ folder)",
        commands=("rlrec sim prepare kuairand",),
        terms="Kuaishou; CC BY-SA 4.0",
        files=(ExpectedFile(STANDARD_LOGS), ExpectedFile(RANDOM_LOGS, "optional")),
        archive_prefix="KuaiRand-1K/data",
    ),
    DataSet(
        key="rl4rs",
        title="RL4RS dataset B (sequential slates)",
        source="https://github.com/fuxiAIlab/RL4RS",
        commands=("rlrec sim prepare rl4rs",),
        terms="NetEase Fuxi AI Lab; CC BY 4.0",
        files=(*(ExpectedFile(name, "one of") for name in RL4RS_NAMES), ExpectedFile(ITEM_INFO)),
    ),
    DataSet(
        key="obd",
        title="Open Bandit Dataset sample (ZOZOTOWN)",
        source="the obp 0.4.1 wheel on PyPI, obp/dataset/obd/ (pip download --no-deps obp==0.4.1)",
        commands=("rlrec sim prepare obd",),
        terms="ZOZO, Inc.; CC BY 4.0",
        files=(
            *_obd_campaign(
                "bts/all",
                (5084456, "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106"),
                (10041, "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153"),
            ),
            *_obd_campaign(
                "bts/men",
                (3240432, "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527"),
                (4287, "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d"),
            ),
            *_obd_campaign(
                "bts/women",
                (3722697, "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8"),
                (5792, "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4"),
            ),
            *_obd_campaign(
                "random/all",
                (5039451, "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1"),
                (10041, "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358"),
            ),
            *_obd_campaign(
                "random/men",
                (3336811, "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb"),
                (4287, "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09"),
            ),
            *_obd_campaign(
                "random/women",
                (3817771, "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34"),
                (5792, "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147"),
            ),
        ),
        archive_prefix=OBD_FOLDER,
    ),
)
"""Every raw data set rlrec reads (the synthetic data and users' own logs have no fixed files)."""


def find_dataset(key: str) -> DataSet:
    """The data set ``key``; an unknown key is one error listing the known ones."""
    for dataset in DATASETS:
        if dataset.key == key:
            return dataset
    known = ", ".join(d.key for d in DATASETS)
    raise RlrecError(f"unknown data set '{key}' (known: {known})")
