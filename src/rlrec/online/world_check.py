"""Does a simulated world tell policies apart? Random, most-popular and oracle slates on the same users.

A simulator is useful for comparing agents only if a policy that knows what users like earns clearly
more than one that does not. Three reference policies run once from the same fixed start records,
with common random numbers (:func:`rlrec.sim.build.rollout_fixed_users`):

* ``random`` — ``K`` distinct items drawn uniformly per request (seeded);
* ``popular`` — the ``K`` items with the most positive responses in the data set's training split,
  the same slate for everyone (ties to the lower id);
* ``oracle`` — the ``K`` items of highest response probability under the simulator's own URM for
  the user's current state (greedy, myopic: the best single slate, not a planned sequence).

Each gets the evaluation statistics of :func:`rlrec.online.evaluate.episode_metrics` (total reward,
depth, reward variance) and the oracle's margin over the better of the two others is reported in
standard errors of the difference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from rlrec.online.evaluate import episode_metrics
from rlrec.online.policy import greedy_slate
from rlrec.seeding import generator
from rlrec.sim.build import Policy, dataset_urm, evaluation_starts, rollout_fixed_users, start_pool
from rlrec.sim.dataset import ListDataset
from rlrec.sim.env import EnvConfig, ListRecSimulator

POLICIES = ("random", "popular", "oracle")


def random_slates(n_items: int, k: int, seed: int) -> Policy:
    """``K`` distinct uniform items per row, from a seeded stream."""
    gen = generator(seed, "world_check_random")

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        b = obs["user"].shape[0]
        keys = torch.rand((b, n_items), generator=gen)
        return keys.topk(k, dim=1).indices.to(obs["user"].device) + 1

    return policy


def popular_slates(dataset: ListDataset, k: int) -> Policy:
    """The ``K`` items with the most positive training responses, for every user."""
    train = dataset.tensors("train", 1)
    counts = torch.zeros(dataset.n_items + 1, dtype=torch.float64)
    counts.index_add_(0, train.exposure.reshape(-1), train.labels.reshape(-1).double())
    slate = greedy_slate(counts[1:][None], k)  # (1, K) ids

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return slate.to(obs["user"].device).expand(obs["user"].shape[0], -1)

    return policy


def oracle_slates(sim: ListRecSimulator, k: int) -> Policy:
    """The top-``K`` items of the simulator's own response probabilities for each current user."""

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return greedy_slate(sim.catalogue_probabilities(), k)

    return policy


def world_check(
    data: Path,
    urm: Path | None,
    *,
    users: int = 1000,
    start_split: str = "test",
    seed: int = 0,
    batch_size: int = 256,
    env: EnvConfig | None = None,
) -> dict[str, Any]:
    """The three reference policies on ``users`` fixed start records of ``start_split``:
    ``{"policies": {name: metrics}, "oracle_margin": …, "oracle_margin_in_se": …}``."""
    env = (env or EnvConfig()).model_copy(update={"auto_reset": False})
    dataset = ListDataset.load(Path(data))
    loaded = dataset_urm(dataset, urm, env.device)
    pool = start_pool(dataset, start_split, loaded.model.cfg.max_history)
    users = min(users, len(pool))
    starts = evaluation_starts(len(pool), users, seed)
    sim = ListRecSimulator(
        loaded.model,
        loaded.item_features,
        dataset.user_features(),
        pool,
        num_envs=min(batch_size, users),
        slate_size=dataset.slate_size,
        cfg=env,
        seed=seed,
    )
    k = dataset.slate_size
    policies = {
        "random": random_slates(dataset.n_items, k, seed),
        "popular": popular_slates(dataset, k),
        "oracle": oracle_slates(sim, k),
    }
    cost = env.zero_reward_cost if env.reward_transform == "none" else None
    totals, metrics = {}, {}
    for name, policy in policies.items():
        out = rollout_fixed_users(sim, policy, starts, seed)
        totals[name] = out["total_reward"].double()
        metrics[name] = episode_metrics(out["total_reward"], out["depth"], cost)
    runner_up = max(("random", "popular"), key=lambda n: metrics[n]["total_reward_mean"])
    diff = totals["oracle"] - totals[runner_up]  # paired: same users, same response noise
    se = float(diff.std(unbiased=True) / math.sqrt(diff.numel())) if diff.numel() > 1 else 0.0
    margin = float(diff.mean())
    return {
        "data": str(data),
        "urm": str(loaded.path),
        "users": users,
        "start_split": start_split,
        "seed": seed,
        "policies": metrics,
        "oracle_minus": runner_up,
        "oracle_margin": margin,
        "oracle_margin_in_se": margin / se if se > 0 else math.inf,
    }
