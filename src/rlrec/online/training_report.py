"""The reference code's training-time report (docs/online.md): what P-HAC's numbers are.

The HAC code has no policy evaluation; its published numbers are training metrics, computed
in the **training** environment with exploration on, and rlrec rebuilds them exactly from the
finished training sessions a run logs (``episodes`` records of ``metrics.jsonl``):

1. the environment keeps a reward history and a depth history, both starting with a dummy ``0``;
   after every env step at which at least one session finished it appends the total reward and the
   depth of the **last finished slot** in index order only (``last_only``; ``last_only=False``
   appends every finished session in slot order instead);
2. every ``check_episode = 10`` iterations (``i = 0, 10, 20, …``, after that iteration's env step) a
   report line takes the last 10 history entries: ``average_total_reward`` (mean),
   ``reward_variance`` (``np.var``, ddof 0), ``max/min_total_reward``, ``average_n_step`` (mean
   depth), ``max/min_n_step``;
3. each series is smoothed with a centred moving average of ``window`` report lines (300 or 1,000 in
   the paper's notebook), truncated at the edges: position ``j`` averages lines
   ``[max(0, j − w//2), min(j − w//2 + w, L))``;
4. the **last** smoothed value of each series is the run's number; runs (seeds) are averaged.

Only the main loop's sessions count (the prefill phase ends with a reset). Use it to put a run next
to the paper's tables; use :mod:`rlrec.online.evaluate` (frozen policy, fixed users, common random
numbers, P-HAC §3.1.4) to compare methods.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from rlrec.errors import DataFormatError, RlrecError

EPISODES = "episodes"
"""Kind of the ``metrics.jsonl`` records listing finished training sessions (lists of
:data:`EPISODE_FIELDS`, one entry per session)."""
EPISODE_FIELDS = ("iteration", "slot", "total_reward", "depth")
CHECK_EPISODE = 10
"""Iterations between report lines, and history entries per line (the reference's ``check_episode``
and its window of the last 10 episodes)."""
SERIES = (
    "average_total_reward",
    "reward_variance",
    "max_total_reward",
    "min_total_reward",
    "average_n_step",
    "max_n_step",
    "min_n_step",
)


def read_episodes(run_dir: Path) -> tuple[dict[str, list[Any]], int]:
    """The finished training sessions of a run (``EPISODE_FIELDS`` → lists, in logging order) and
    the number of iterations it ran (``summary.json``, else its last logged ``train`` step)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise RlrecError(f"{run_dir}: not an rlrec sim run directory (no metrics.jsonl)")
    episodes: dict[str, list[Any]] = {f: [] for f in EPISODE_FIELDS}
    last_step = 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataFormatError(path, "not a JSON line", line=n) from None
        if record.get("kind") == "train":
            last_step = max(last_step, int(record["step"]))
        if record.get("kind") == EPISODES:
            for f in EPISODE_FIELDS:
                episodes[f].extend(record[f])
    summary = Path(run_dir) / "summary.json"
    iterations = json.loads(summary.read_text())["iterations"] if summary.is_file() else last_step
    if not episodes["iteration"]:
        raise RlrecError(f"{run_dir}: no finished training sessions logged ({EPISODES} records)")
    return episodes, iterations


def history(
    episodes: dict[str, list[Any]], last_only: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(iteration, total reward, depth)`` of the history entries (step 1 of the module docstring),
    the dummy leading ``0`` included (at iteration −1)."""
    its = np.asarray(episodes["iteration"], dtype=np.int64)
    slots = np.asarray(episodes["slot"], dtype=np.int64)
    order = np.lexsort((slots, its))  # by iteration, then slot
    its = its[order]
    keep = np.ones(len(its), dtype=bool)
    if last_only:
        keep[:-1] = its[1:] != its[:-1]  # the last slot of each iteration
    rewards = np.asarray(episodes["total_reward"], dtype=np.float64)[order][keep]
    depths = np.asarray(episodes["depth"], dtype=np.float64)[order][keep]
    return (
        np.concatenate([[-1], its[keep]]),
        np.concatenate([[0.0], rewards]),
        np.concatenate([[0.0], depths]),
    )


def report_lines(
    its: np.ndarray, rewards: np.ndarray, depths: np.ndarray, iterations: int
) -> dict[str, np.ndarray]:
    """The report series (:data:`SERIES`), one value per line at ``i = 0, 10, … < iterations``."""
    lines: dict[str, list[float]] = {k: [] for k in SERIES}
    for i in range(0, iterations, CHECK_EPISODE):
        end = int(np.searchsorted(its, i, side="right"))  # entries appended up to iteration i
        r = rewards[max(0, end - CHECK_EPISODE) : end]
        d = depths[max(0, end - CHECK_EPISODE) : end]
        for key, value in zip(
            SERIES, (r.mean(), r.var(), r.max(), r.min(), d.mean(), d.max(), d.min()), strict=True
        ):
            lines[key].append(float(value))
    return {k: np.asarray(v) for k, v in lines.items()}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average, truncated at the edges (step 3 of the module docstring)."""
    n, half = len(values), window // 2
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    out = np.empty(n)
    for j in range(n):
        lo, hi = max(0, j - half), min(j - half + window, n)
        out[j] = (sums[hi] - sums[lo]) / (hi - lo)
    return out


def run_report(run_dir: Path, window: int = 300, last_only: bool = True) -> dict[str, float]:
    """One run's numbers: the last smoothed value of every report series."""
    episodes, iterations = read_episodes(run_dir)
    lines = report_lines(*history(episodes, last_only), iterations)
    if not len(lines[SERIES[0]]):
        raise RlrecError(f"{run_dir}: no report line (the run has no iteration yet)")
    return {k: float(smooth(v, window)[-1]) for k, v in lines.items()}


def hac_online_report(
    run_dirs: list[Path], window: int = 300, last_only: bool = True
) -> dict[str, Any]:
    """The reference's training-time numbers of several runs (seeds): per run and the mean ± sample
    std over runs of every series (module docstring)."""
    if window < 1:
        raise RlrecError(f"window must be at least 1 report line, got {window}")
    runs = {str(d): run_report(Path(d), window, last_only) for d in run_dirs}
    mean = {
        k: (
            statistics.fmean(r[k] for r in runs.values()),
            statistics.stdev(r[k] for r in runs.values()) if len(runs) > 1 else 0.0,
        )
        for k in SERIES
    }
    return {"window": window, "last_only": last_only, "runs": runs, "mean": mean}
