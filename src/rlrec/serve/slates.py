"""Greedy slates of a trained online agent (a ``rlrec sim train`` run), in raw ids.

``SlateRecommender.from_run(RUN_DIR)`` rebuilds the agent from the run's ``config.yaml`` with the
item and user features of its list dataset and URM (no simulator is built), and loads its
``best`` (selected on the validation users) or ``last`` weights — safetensors only. A slate is the
agent's noise-free top-K for a user of the list dataset and a history of items, exactly what
``rlrec sim evaluate`` shows the simulated users: the observation's history is the last
``max_history`` items, left-padded, as the simulator keeps it (:mod:`rlrec.sim.env`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rlrec.config import build_config
from rlrec.errors import RlrecError
from rlrec.online.agents.base import Agent
from rlrec.online.config import OnlineTrainConfig
from rlrec.online.evaluate import BEST, LAST, load_policy
from rlrec.online.worlds import build_worlds
from rlrec.sim.schema import ITEM, RAW, USER


@dataclass(frozen=True)
class SlateQuery:
    """One slate to choose: the user's dense id and the history's dense item ids (oldest first)."""

    user: int
    history: list[int]


class SlateRecommender:
    """An online agent choosing greedy slates for users of its list dataset."""

    def __init__(self, cfg: OnlineTrainConfig, agent: Agent, worlds: Any, run_dir: Path) -> None:
        self.cfg, self.agent, self.run_dir = cfg, agent, Path(run_dir)
        self.dataset = worlds.dataset
        self.max_history: int = worlds.max_history
        self.slate_size: int = worlds.slate_size
        self.device = worlds.user_x.device
        items = self.dataset.items.sort(ITEM)
        self.item_raw: list[Any] = [None, *items.get_column(RAW).to_list()]  # dense 1..N → raw
        self.item_index = {raw: i for i, raw in enumerate(self.item_raw) if i}
        users = self.dataset.users
        self.user_index = dict(
            zip(users.get_column(RAW).to_list(), users.get_column(USER).to_list(), strict=True)
        )
        self.gen = torch.Generator(device=self.device)  # unused by greedy slates; act() takes one
        self.checkpoint: dict[str, Any] = {}

    @classmethod
    def from_run(cls, run_dir: Path, checkpoint: str = BEST) -> SlateRecommender:
        """The agent of ``run_dir`` with its ``best`` or ``last`` (also: ``latest``) weights."""
        run_dir = Path(run_dir)
        which = LAST if checkpoint in (LAST, "latest") else checkpoint
        if which not in (BEST, LAST):
            raise RlrecError(f"checkpoint must be best or latest, got {checkpoint!r}")
        if not (run_dir / "config.yaml").is_file():
            raise RlrecError(f"{run_dir}: not an rlrec sim run directory (no config.yaml)")
        cfg = build_config(OnlineTrainConfig, path=run_dir / "config.yaml")
        worlds = build_worlds(cfg, train=False, evaluation=False)
        agent = cfg.agent.create(worlds.item_x, worlds.user_x, worlds.slate_size)
        load_policy(run_dir, which, agent)
        rec = cls(cfg, agent, worlds, run_dir)
        rec.checkpoint = {"which": which}
        return rec

    def lookup(
        self, history: Sequence[Any], unknown: Literal["error", "skip"] = "error"
    ) -> tuple[list[int], list[Any]]:
        """Dense item ids of a history of raw ids and the ids the catalogue does not know
        (``"error"``: raise naming them; ``"skip"``: leave them out and return them)."""
        missing = [h for h in history if h not in self.item_index]
        if missing and unknown == "error":
            shown = ", ".join(map(str, missing[:5]))
            raise RlrecError(
                f"history: {len(missing)} item id(s) not in the list dataset's catalogue ({shown})"
            )
        return [self.item_index[h] for h in history if h in self.item_index], missing

    def user(self, raw: Any) -> int:
        """The dense id of a raw user id of the list dataset."""
        if raw not in self.user_index:
            raise RlrecError(f"user: {raw!r} is not a user of the list dataset")
        return self.user_index[raw]

    def observation(self, queries: Sequence[SlateQuery]) -> dict[str, torch.Tensor]:
        """``user`` ``(B,)`` and ``history`` ``(B, H)`` (the last ``H`` items, left-padded with 0)."""
        h = self.max_history
        history = torch.zeros((len(queries), h), dtype=torch.long)
        for row, q in enumerate(queries):
            last = q.history[-h:]
            if last:
                history[row, h - len(last) :] = torch.tensor(last)
        user = torch.tensor([q.user for q in queries], dtype=torch.long)
        return {"user": user.to(self.device), "history": history.to(self.device)}

    @torch.inference_mode()
    def slates(self, queries: Sequence[SlateQuery]) -> list[list[Any]]:
        """The agent's greedy slate (K raw item ids, best first) for each query."""
        slate = self.agent.act(self.observation(queries), self.gen, explore=False).slate
        return [[self.item_raw[i] for i in row] for row in slate.tolist()]
