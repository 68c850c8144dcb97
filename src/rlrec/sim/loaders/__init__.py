"""List-data sources (spec-online §A), one module each; ``ListSource`` is their tagged union."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rlrec.sim.loaders.base import ListSourceConfig
from rlrec.sim.loaders.kuairand import KuaiRandListSource
from rlrec.sim.loaders.movielens import MovieLensListSource, RecBoleListSource
from rlrec.sim.loaders.obd import OBDListSource
from rlrec.sim.loaders.rl4rs import RL4RSListSource
from rlrec.sim.loaders.synthetic import SyntheticListSource

ListSource = Annotated[
    MovieLensListSource
    | RecBoleListSource
    | KuaiRandListSource
    | RL4RSListSource
    | OBDListSource
    | SyntheticListSource,
    Field(discriminator="kind"),
]

LIST_SOURCE_KINDS = ("movielens", "recbole", "kuairand", "rl4rs", "obd", "synthetic")

__all__ = ["LIST_SOURCE_KINDS", "ListSource", "ListSourceConfig"]
