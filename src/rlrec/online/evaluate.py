"""Evaluating a policy in a simulator (P-HAC §3.1.4), which the reference code lacks.

A frozen policy (eval mode, no noise, greedy top-K by default) runs **once from every one of a fixed
set of start records**, in batches without refill, until each session ends; every session counts:

* ``total_reward_mean`` — mean over sessions of ``R_e = Σ_t r_t`` (undiscounted);
* ``depth_mean`` — mean number of requests, counting the one after which the user left;
* ``total_reward_var`` — variance of ``R_e`` **across sessions** (ddof 0, ``np.var``), P-HAC's
  "Reward Variance" (lower = more stable), plus its std and the standard error of the mean;
* ``reward_per_step`` (``Σ R / Σ D``), ``positive_rate`` (from the reward when it is the plain mean
  with cost ``c``: ``(ΣR/ΣD + c)/(1 + c)``) and ``coverage`` (distinct items shown / N).

The response noise depends only on ``(seed, start record, depth, item)``, so every method evaluated on
the same users meets the same randomness (common random numbers). Across training seeds results are
reported as mean ± sample std (:func:`across_seeds`).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch

from rlrec.config import build_config
from rlrec.errors import DataFormatError, RlrecError
from rlrec.experiments.report import _plot_panels, matplotlib_available
from rlrec.experiments.results import Group, Run
from rlrec.online.agents import Agent
from rlrec.online.config import EvalConfig, OnlineTrainConfig
from rlrec.online.worlds import Arena, build_worlds
from rlrec.seeding import generator
from rlrec.sim.build import rollout_fixed_users
from rlrec.train.checkpoint import load_checkpoint, load_modules

BEST, LAST = "best", "last"
HEADLINE = ("total_reward_mean", "depth_mean", "total_reward_var")
TRAIN_PANELS: tuple[tuple[str, str, bool], ...] = (  # key, title, log scale
    ("train_total_reward", "total reward (training episodes)", False),
    ("train_depth", "depth (training episodes)", False),
    ("train_reward_var", "reward variance (training episodes)", False),
    ("critic_loss", "critic loss L_TD", True),
    ("actor_loss", "actor loss", False),
    ("hyper_loss", "alignment loss L_Hyper", True),
    ("behavior_loss", "supervision loss L_BCE", True),
    ("q_mean", "mean Q (or V)", False),
)
VAL_PANELS: tuple[tuple[str, str, bool], ...] = (
    ("total_reward_mean", "validation total reward", False),
    ("depth_mean", "validation depth", False),
    ("total_reward_var", "validation reward variance", False),
    ("coverage", "validation coverage", False),
)


def episode_metrics(
    total_reward: torch.Tensor, depth: torch.Tensor, cost: float | None
) -> dict[str, float]:
    """The per-session statistics of ``R_e`` ``(E,)`` and ``D_e`` ``(E,)`` (module docstring);
    ``cost``: the negative-item cost of a plain mean reward, ``None`` under a reward transform."""
    r, d = total_reward.double(), depth.double()
    n = r.numel()
    out = {
        "total_reward_mean": float(r.mean()),
        "total_reward_var": float(r.var(unbiased=False)),
        "total_reward_std": float(r.std(unbiased=False)),
        "total_reward_se": float(r.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0,
        "depth_mean": float(d.mean()),
        "reward_per_step": float(r.sum() / d.sum()),
        "episodes": float(n),
    }
    if cost is not None:
        out["positive_rate"] = (out["reward_per_step"] + cost) / (1.0 + cost)
    return out


@torch.no_grad()
def evaluate_policy(agent: Agent, arena: Arena, cfg: EvalConfig) -> dict[str, float]:
    """Run ``agent`` once from every start record of ``arena`` (see the module docstring)."""
    sim = arena.sim
    seen = torch.zeros(sim.n_items + 1, dtype=torch.bool, device=sim.device)
    gen = generator(cfg.seed, "eval_policy")
    explore = cfg.policy == "as_trained"

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        slate = agent.act(obs, gen, explore=explore).slate
        seen[slate[sim.active]] = True
        return slate

    out = rollout_fixed_users(sim, policy, arena.starts, cfg.seed)
    plain = sim.cfg.reward_transform == "none"
    metrics = episode_metrics(
        out["total_reward"], out["depth"], sim.cfg.zero_reward_cost if plain else None
    )
    metrics["coverage"] = float(seen[1:].double().mean())
    return metrics


def across_seeds(results: list[dict[str, float]]) -> dict[str, tuple[float, float, int]]:
    """``metric → (mean, sample std, n)`` over runs (std 0 for one run)."""
    keys = [k for k in results[0] if all(k in r for r in results)] if results else []
    out = {}
    for key in keys:
        values = [r[key] for r in results]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        out[key] = (statistics.fmean(values), std, len(values))
    return out


def load_policy(run_dir: Path, checkpoint: str, agent: Agent) -> None:
    """Load the ``best`` (selected on validation) or ``last`` weights of a run into ``agent``."""
    path = Path(run_dir) / checkpoint
    if not path.is_dir():
        raise DataFormatError(path, f"no '{checkpoint}' weights (has the run finished?)")
    tensors, _, _ = load_checkpoint(path)
    load_modules(agent.nets, tensors, path)


def evaluate_run(
    run_dir: Path, *, episodes: int | None = None, checkpoint: str = BEST
) -> dict[str, Any]:
    """Rebuild a run's evaluation environment and agent from its directory and evaluate its
    ``checkpoint`` weights on ``episodes`` users (default: the run's ``eval.users``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RlrecError(f"{run_dir}: not an rlrec sim run directory (no config.yaml)")
    cfg = build_config(OnlineTrainConfig, path=run_dir / "config.yaml")
    if episodes is not None:
        cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"users": episodes})})
    worlds = build_worlds(cfg, train=False)
    assert worlds.eval is not None
    agent = cfg.agent.create(worlds.item_x, worlds.user_x, worlds.slate_size)
    load_policy(run_dir, checkpoint, agent)
    metrics = evaluate_policy(agent, worlds.eval, cfg.eval)
    return {
        "run": str(run_dir),
        "agent": cfg.label,
        "seed": cfg.seed,
        "checkpoint": checkpoint,
        "users": cfg.eval.users,
        "start_split": cfg.eval.start_split,
        "eval_seed": cfg.eval.seed,
        "metrics": metrics,
    }


def write_curves(groups: dict[str, list[Path]], out_dir: Path) -> list[Path]:
    """Learning curves (mean over seeds ± std band) of runs grouped by label: ``train_curves.png``
    (training-episode rewards and losses) and ``val_curves.png`` (validation metrics) in ``out_dir``.
    Needs matplotlib (``pip install 'rlrec[plot]'``)."""
    if not matplotlib_available():
        raise RlrecError("the plots need matplotlib: pip install 'rlrec[plot]'")
    runs = [Group(label, [Run(p, {}, {}, {}) for p in paths]) for label, paths in groups.items()]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, panels in (("train", TRAIN_PANELS), ("val", VAL_PANELS)):
        path = out_dir / f"{kind}_curves.png"
        if _plot_panels(runs, kind, list(panels), path, ncols=4):
            written.append(path)
    return written
