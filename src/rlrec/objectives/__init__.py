"""Offline objectives: one module each, a config documenting the loss and its paper.

``Objective`` is the tagged union of their configs, selected by ``kind``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rlrec.objectives.base import LossInputs, LossOutput, ObjectiveConfig, Phase
from rlrec.objectives.ccql import CCQLConfig
from rlrec.objectives.co import COConfig
from rlrec.objectives.dqn import DQNConfig
from rlrec.objectives.sa2c import SA2CConfig
from rlrec.objectives.sac import SACConfig
from rlrec.objectives.snqn import SNQNConfig
from rlrec.objectives.sqn import SQNConfig
from rlrec.objectives.supervised import SupervisedConfig

Objective = Annotated[
    SupervisedConfig
    | SQNConfig
    | SACConfig
    | SNQNConfig
    | SA2CConfig
    | DQNConfig
    | COConfig
    | CCQLConfig,
    Field(discriminator="kind"),
]

__all__ = ["LossInputs", "LossOutput", "Objective", "ObjectiveConfig", "Phase"]
