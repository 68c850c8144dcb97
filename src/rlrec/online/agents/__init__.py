"""The online agents, one module each; ``AgentSpec`` is the tagged union of their configs (by ``kind``).

Config → create → fit::

    agent = HACConfig(hyper_coef=0.1).create(item_x, user_x, slate_size)
    OnlineTrainer(cfg).fit()          # or through a run config (rlrec.online.config)
"""

from __future__ import annotations

from rlrec.config import tagged_union, union_kinds
from rlrec.online.agents.a2c import A2C, A2CConfig
from rlrec.online.agents.base import Action, Agent, AgentConfig
from rlrec.online.agents.ddpg import DDPG, DDPGConfig
from rlrec.online.agents.hac import HAC, HACConfig
from rlrec.online.agents.offline_sl import OfflineSL, OfflineSLConfig
from rlrec.online.agents.online_sl import OnlineSL, OnlineSLConfig
from rlrec.online.agents.pgra import PGRA, PGRAConfig
from rlrec.online.agents.td3 import TD3, TD3Config

AGENT_CONFIGS = (
    HACConfig,
    DDPGConfig,
    TD3Config,
    A2CConfig,
    PGRAConfig,
    OnlineSLConfig,
    OfflineSLConfig,
)
AgentSpec = tagged_union(AGENT_CONFIGS)
AGENT_KINDS = union_kinds(AGENT_CONFIGS)
CONFIG_OF: dict[str, type[AgentConfig]] = dict(zip(AGENT_KINDS, AGENT_CONFIGS, strict=True))

__all__ = [
    "A2C",
    "AGENT_KINDS",
    "CONFIG_OF",
    "DDPG",
    "HAC",
    "PGRA",
    "TD3",
    "A2CConfig",
    "Action",
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "DDPGConfig",
    "HACConfig",
    "OfflineSL",
    "OfflineSLConfig",
    "OnlineSL",
    "OnlineSLConfig",
    "PGRAConfig",
    "TD3Config",
]
