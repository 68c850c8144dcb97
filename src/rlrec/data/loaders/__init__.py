"""Raw-data sources. Each module holds one source's config model and its loader.

``Source`` is the tagged union of all source configs, selected by ``kind``.
"""

from __future__ import annotations

from rlrec.config import tagged_union, union_kinds
from rlrec.data.loaders.base import SourceConfig
from rlrec.data.loaders.generic import GenericSource
from rlrec.data.loaders.movielens import MovieLensSource
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.loaders.retailrocket import RetailRocketSource
from rlrec.data.loaders.synthetic import SyntheticSource
from rlrec.data.loaders.yoochoose import YooChooseSource

SOURCES = (
    YooChooseSource,
    RetailRocketSource,
    MovieLensSource,
    RecBoleSource,
    GenericSource,
    SyntheticSource,
)
Source = tagged_union(SOURCES)
SOURCE_KINDS = union_kinds(SOURCES)

__all__ = ["SOURCE_KINDS", "Source", "SourceConfig"]
