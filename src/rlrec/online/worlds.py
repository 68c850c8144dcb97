"""The environments of a run (P-HAC §3.1.4): training, validation and evaluation simulators
over one list dataset, built from a run config.

* **train** — the training URM, start users from ``env.start_split`` minus the validation users;
* **val** — the same URM, ``eval.val_users`` start records held out of the training pool (selection);
* **eval** — the evaluation URM (``eval_urm``, default: the training one), ``eval.users`` start
  records of ``eval.start_split`` (reporting).

The agent sees the same raw item/user feature vectors as the simulators (its kernel Φ maps them,
P-HAC §2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlrec.device import resolve_device
from rlrec.errors import ConfigError
from rlrec.online.config import OnlineTrainConfig
from rlrec.seeding import derive_seed
from rlrec.sim.build import dataset_urm, evaluation_starts, start_pool
from rlrec.sim.dataset import ListDataset
from rlrec.sim.env import EnvConfig, ListRecSimulator, StartPool
from rlrec.sim.urm_store import LoadedURM


@dataclass
class Arena:
    """A simulator and the start records a policy is evaluated from (``starts`` ``(E,)``)."""

    sim: ListRecSimulator
    starts: torch.Tensor


@dataclass
class Worlds:
    """What a run trains and is evaluated in; ``item_x`` ``(N+1, d_i)``, ``user_x`` ``(U, d_u)``,
    observations with histories of ``max_history`` items."""

    dataset: ListDataset
    item_x: torch.Tensor
    user_x: torch.Tensor
    train: ListRecSimulator | None
    val: Arena | None
    eval: Arena | None
    urm_info: dict[str, Any]
    max_history: int  # the history window of the observations (the training URM's)

    @property
    def slate_size(self) -> int:
        return self.dataset.slate_size


def build_worlds(cfg: OnlineTrainConfig, *, train: bool = True, evaluation: bool = True) -> Worlds:
    """The simulators of ``cfg`` (``train=False`` skips training and validation, ``evaluation=False``
    the evaluation environment)."""
    device = resolve_device(cfg.device)
    dataset = ListDataset.load(cfg.data)
    urm = dataset_urm(dataset, cfg.urm, device)
    user_x = dataset.user_features().to(device)
    env_cfg = cfg.env.model_copy(update={"device": str(device)})  # "auto" resolved once
    h = urm.model.cfg.max_history
    info: dict[str, Any] = {"urm": _describe(urm)}
    train_sim, val = None, None
    if train:
        pool = start_pool(dataset, cfg.env.start_split, h)
        n_val = cfg.eval.val_users
        if n_val >= len(pool):
            raise ConfigError(
                f"eval.val_users ({n_val}) leaves no training users of the {len(pool)} "
                f"'{cfg.env.start_split}' records; lower it"
            )
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.eval.seed))
        train_pool = pool.index(order[n_val:].sort().values)
        train_sim = _simulator(
            urm,
            user_x,
            train_pool,
            dataset,
            env_cfg,
            cfg.train.num_envs,
            derive_seed(cfg.seed, "train_env"),
        )
        if n_val:
            val_pool = pool.index(order[:n_val].sort().values)
            val_sim = _simulator(
                urm, user_x, val_pool, dataset, env_cfg, cfg.eval.batch_size, cfg.eval.seed
            )
            val = Arena(val_sim, torch.arange(n_val))
    arena = None
    if evaluation:
        eval_urm = dataset_urm(dataset, cfg.eval_urm or cfg.urm, device)
        info["eval_urm"] = _describe(eval_urm)
        pool = start_pool(dataset, cfg.eval.start_split, eval_urm.model.cfg.max_history)
        if cfg.eval.users > len(pool):
            raise ConfigError(
                f"eval.users ({cfg.eval.users}) exceeds the {len(pool)} '{cfg.eval.start_split}' "
                "records of the dataset; lower it (--set eval.users=N)"
            )
        starts = evaluation_starts(len(pool), cfg.eval.users, cfg.eval.seed)
        sim = _simulator(
            eval_urm, user_x, pool, dataset, env_cfg, cfg.eval.batch_size, cfg.eval.seed
        )
        arena = Arena(sim, starts)
    return Worlds(dataset, urm.item_features, user_x, train_sim, val, arena, info, h)


def _simulator(
    urm: LoadedURM,
    user_x: torch.Tensor,
    pool: StartPool,
    dataset: ListDataset,
    env_cfg: EnvConfig,
    num_envs: int,
    seed: int,
) -> ListRecSimulator:
    return ListRecSimulator(
        urm.model,
        urm.item_features,
        user_x,
        pool,
        num_envs=num_envs,
        slate_size=dataset.slate_size,
        cfg=env_cfg,
        seed=seed,
    )


def _describe(urm: LoadedURM) -> dict[str, Any]:
    """Where a URM came from and how good it is (logged with every run)."""
    selected = urm.meta.get("selected", {})
    return {
        "path": str(urm.path),
        "role": urm.meta.get("role"),
        "fit_split": urm.meta.get("fit_split"),
        "catalogue_hash": urm.catalogue_hash,
        **{k: v for k, v in selected.items() if k.startswith("val_")},
    }
