"""Shared helpers of the online-agent tests: a tiny list dataset, a URM whose users like one item
feature direction, and small run configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlrec.config import build_config, deep_merge
from rlrec.online.config import OnlineTrainConfig
from rlrec.sim.dataset import ListDataset
from rlrec.sim.loaders.synthetic import SyntheticListSource
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists
from rlrec.sim.urm import URM, URMConfig
from rlrec.sim.urm_store import save_urm

TINY_LISTS = {
    "n_users": 60,
    "n_items": 40,
    "mean_lists": 6,
    "max_lists": 12,
    "slate_size": 4,
    "user_dim": 4,
    "item_dim": 6,
    "planted": {"dim": 8, "hidden_dims": [8], "n_heads": 2, "dropout": 0.0, "max_history": 8},
}
SMALL_POLICY = {"dim": 8, "n_heads": 2, "ff_dim": 16, "user_hidden": [8], "max_history": 8}


def tiny_lists(root: Path, **overrides: Any) -> Path:
    """A prepared synthetic list dataset (60 users, 40 items, slates of 4, history window 8)."""
    out = root / "lists"
    prepare_lists(ListPrepareConfig(source=SyntheticListSource(**{**TINY_LISTS, **overrides})), out)
    return out


def feature_urm(data: Path, out: Path, strength: float = 3.0) -> Path:
    """A URM whose click logit of item ``i`` is ``strength · x_i[0]`` for every user and history:
    users like the items whose first feature is large. Saved for ``data``'s catalogue."""
    ds = ListDataset.load(data)
    items, users = ds.item_features(), ds.user_features()
    h = TINY_LISTS["planted"]["max_history"]
    cfg = URMConfig(dim=4, hidden_dims=[], n_heads=1, dropout=0.0, max_history=h)
    urm = URM(cfg, users.shape[1], items.shape[1], ds.n_items)
    with torch.no_grad():
        for p in urm.parameters():
            p.zero_()
        urm.item_embed.weight[0, 0] = 1.0
        assert urm.fuse is not None
        urm.fuse.bias[0] = strength
    save_urm(out, urm.eval(), cfg, {"role": "train"}, ds.manifest, items, users)
    return out


def run_config(
    data: Path, out: Path, urm: Path | None = None, **overrides: Any
) -> OnlineTrainConfig:
    """A run config small enough for tests (tiny networks, 16 users, short loop)."""
    agent = overrides.pop("agent", {"kind": "hac"})
    policy = deep_merge(SMALL_POLICY, agent.pop("policy", {}))
    agent = {**agent, "policy": policy}
    if agent["kind"] not in ("online_sl", "offline_sl"):
        agent.setdefault("critic", {"hidden": [32, 16]})
    base: dict[str, Any] = {
        "data": str(data),
        "out": str(out),
        "device": "cpu",
        "agent": agent,
        "train": {
            "iterations": 40,
            "num_envs": 16,
            "batch_size": 32,
            "buffer_size": 1000,
            "prefill": 64,
            "log_every": 10,
            "eval_every": 20,
        },
        "eval": {"users": 48, "val_users": 16, "batch_size": 48},
    }
    if urm is not None:
        base["urm"] = str(urm)
    return build_config(OnlineTrainConfig, cli=deep_merge(base, overrides))
