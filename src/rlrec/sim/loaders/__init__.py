"""List-data sources (P-HAC §3.1.1, A.1), one module each; ``ListSource`` is their tagged union."""

from __future__ import annotations

from rlrec.config import tagged_union, union_kinds
from rlrec.sim.loaders.base import ListSourceConfig
from rlrec.sim.loaders.kuairand import KuaiRandListSource
from rlrec.sim.loaders.movielens import MovieLensListSource, RecBoleListSource
from rlrec.sim.loaders.obd import OBDListSource
from rlrec.sim.loaders.rl4rs import RL4RSListSource
from rlrec.sim.loaders.synthetic import SyntheticListSource

LIST_SOURCES = (
    MovieLensListSource,
    RecBoleListSource,
    KuaiRandListSource,
    RL4RSListSource,
    OBDListSource,
    SyntheticListSource,
)
ListSource = tagged_union(LIST_SOURCES)
LIST_SOURCE_KINDS = union_kinds(LIST_SOURCES)

__all__ = ["LIST_SOURCE_KINDS", "ListSource", "ListSourceConfig"]
