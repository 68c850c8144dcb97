"""Assembling simulators from files (dataset + URM) or from the embedded synthetic default, and the
common-random-number rollout used to compare policies on a fixed set of users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlrec.config import build_config
from rlrec.errors import ConfigError
from rlrec.seeding import generator
from rlrec.sim.dataset import ListDataset, pad_left, response_counts
from rlrec.sim.env import EnvConfig, ListRecSimulator, StartPool
from rlrec.sim.features import features_matrix
from rlrec.sim.loaders.synthetic import SyntheticListSource
from rlrec.sim.prepare import PLANTED
from rlrec.sim.schema import HISTORY, SEQ, USER
from rlrec.sim.splits import ListSplitConfig, split_records
from rlrec.sim.urm_store import LoadedURM, check_catalogue, load_urm

COUNTS = ("seen", "positives")
Policy = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def start_pool(dataset: ListDataset, split: str, max_history: int) -> StartPool:
    """Start states from a dataset split's records (their user and history before the list)."""
    data = dataset.tensors(split, max_history)
    if len(data) == 0:
        raise ConfigError(f"{dataset.path}: the '{split}' split has no records to start users from")
    return StartPool(data.user, data.history, data.history_mask, data.seen, data.positives)


def make_simulator(
    data: Path | str | None = None,
    urm: Path | str | None = None,
    *,
    num_envs: int = 32,
    cfg: EnvConfig | None = None,
    seed: int = 0,
    synthetic: dict[str, Any] | None = None,
) -> ListRecSimulator:
    """A simulator over ``data`` (a prepared list dataset) answered by ``urm`` (a URM directory).

    ``urm`` may be omitted for synthetic datasets (their planted URM is used). Without ``data``, a
    synthetic data set is generated in memory (``synthetic``: :class:`SyntheticListSource` fields)
    and its planted URM simulates the users. A URM trained on another item catalogue is refused.
    """
    cfg = cfg or EnvConfig()
    if data is None:
        if urm is not None:
            raise ConfigError("a URM needs the dataset it was trained on (pass data=...)")
        return _synthetic_simulator(num_envs, cfg, seed, synthetic or {})
    dataset = ListDataset.load(Path(data))
    loaded = dataset_urm(dataset, urm, cfg.device)
    pool = start_pool(dataset, cfg.start_split, loaded.model.cfg.max_history)
    return ListRecSimulator(
        loaded.model,
        loaded.item_features,
        dataset.user_features(),
        pool,
        num_envs=num_envs,
        slate_size=dataset.slate_size,
        cfg=cfg,
        seed=seed,
    )


def urm_path(dataset: ListDataset, urm: Path | str | None) -> Path:
    """The URM directory of a config's ``urm`` (``None``: the dataset's planted one, synthetic data
    only)."""
    if urm is not None:
        return Path(urm)
    if "planted_urm" not in dataset.manifest:
        raise ConfigError(
            f"{dataset.path}: no URM given and the dataset has no planted one; "
            "train one with rlrec sim train-urm"
        )
    return dataset.path / PLANTED


def dataset_urm(
    dataset: ListDataset, urm: Path | str | None, device: torch.device | str
) -> LoadedURM:
    """The URM at ``urm`` (default: the dataset's planted one, synthetic data only), checked against
    the dataset's item catalogue."""
    loaded = load_urm(urm_path(dataset, urm), device)
    check_catalogue(loaded.meta, loaded.path, dataset.path, dataset.manifest)
    return loaded


def _synthetic_simulator(
    num_envs: int, cfg: EnvConfig, seed: int, options: dict[str, Any]
) -> ListRecSimulator:
    src = build_config(SyntheticListSource, cli=options)
    tables = src.load(seed)
    model, urm_cfg = tables.extras["planted_urm"]
    parts = split_records(tables.records, tables.users, ListSplitConfig())
    records = parts[cfg.start_split] if cfg.start_split != "all" else tables.records
    hist, mask = pad_left(records.get_column(HISTORY), urm_cfg.max_history)
    counts = records.select(USER, SEQ).join(
        response_counts(tables.records), on=[USER, SEQ], how="left", maintain_order="left"
    )
    pool = StartPool(
        torch.from_numpy(records.get_column(USER).to_numpy().astype("int64")),
        torch.from_numpy(hist),
        torch.from_numpy(mask),
        *(torch.from_numpy(counts.get_column(c).to_numpy().astype("float32")) for c in COUNTS),
    )
    item_x = features_matrix(tables.items)
    items = torch.cat([torch.zeros(1, item_x.shape[1]), torch.from_numpy(item_x)])
    return ListRecSimulator(
        model,
        items,
        torch.from_numpy(features_matrix(tables.users)),
        pool,
        num_envs=num_envs,
        slate_size=src.slate_size,
        cfg=cfg,
        seed=seed,
    )


def evaluation_starts(pool_size: int, n_users: int, seed: int) -> torch.Tensor:
    """A fixed, seeded set of ``n_users`` distinct start records (3,200 by default)."""
    if n_users > pool_size:
        raise ConfigError(f"cannot draw {n_users} evaluation users from {pool_size} start records")
    return torch.randperm(pool_size, generator=generator(seed, "eval_users"))[:n_users]


@torch.no_grad()
def rollout_fixed_users(
    sim: ListRecSimulator, policy: Policy, starts: torch.Tensor, seed: int
) -> dict[str, torch.Tensor]:
    """Run ``policy`` once from every start record (batches of ``B``, no refill) until each session
    ends; returns per-session ``total_reward`` and ``depth`` ``(E,)`` in ``starts`` order.

    The response noise depends only on ``(seed, start record, depth, item)``, so two policies run on
    the same ``starts`` and ``seed`` are compared with common random numbers.
    """
    b = sim.num_envs
    totals, depths = [], []
    for lo in range(0, len(starts), b):
        chunk = starts[lo : lo + b]
        padded = torch.cat([chunk, chunk[:1].expand(b - len(chunk))]) if len(chunk) < b else chunk
        obs = sim.reset(seed=seed, starts=padded)
        ret = torch.zeros(b, dtype=torch.float64, device=sim.device)
        dep = torch.zeros(b, dtype=torch.int64, device=sim.device)
        while bool(sim.active.any()):
            out = sim.step(policy(obs))
            ret = torch.where(out.done, out.episode_return, ret)
            dep = torch.where(out.done, out.episode_depth, dep)
            obs = out.obs
        totals.append(ret[: len(chunk)].cpu())
        depths.append(dep[: len(chunk)].cpu())
    return {"total_reward": torch.cat(totals), "depth": torch.cat(depths)}
