"""``rlrec sweep``: one run config × a grid of overrides × seeds (or a search), each run its own
process.

A sweep file names a run config — ``rlrec train`` or ``rlrec sim train`` (:mod:`.kinds`) — and what
to vary (several seeds, mean ± std)::

    base: configs/ccql/rc15/sasrec_ccql.yaml   # an ``rlrec train`` or ``rlrec sim train`` config
    out: runs/sweeps/ccql_alpha                 # the sweep's directory
    seeds: [0, 1, 2, 3, 4]
    grid:                                       # every combination of these values
      objective.cql_alpha: [0.01, 0.1]
      objective.num_negatives: [10, 50]
    overrides: {train.epochs: 20}               # applied to every run
    jobs: 2                                     # processes at a time

or, instead of the grid, a hyper-parameter search (``search:``, :mod:`.search`, optuna). Each run is
``python -m rlrec train|sim train --config BASE --set KEY=VALUE …`` in its own process, with
``train.num_threads`` (and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``) set by
:func:`~rlrec.experiments.launch.thread_plan`. Runs go to ``out/seed_<s>`` (no grid),
``out/point_<i>/seed_<s>`` or ``out/trial_<n>`` — hyper-parameters are not encoded in directory
names; ``out/sweep.json`` maps every run to its grid point, command, status and time, and
``out/logs/`` keeps each run's output. Every run's config is resolved and checked (config keys and
values, device, the data and URM directories' manifests) before anything starts or is created. A
finished run (``summary.json``) is skipped, an interrupted one resumed, so re-running a sweep
completes it. ``rlrec report OUT`` then tabulates and plots the sweep.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import Field

from rlrec.config import StrictModel
from rlrec.device import available_cpus
from rlrec.errors import ConfigError, RlrecError
from rlrec.experiments.kinds import SIM_SELECT, RunKind, detect, run_kind
from rlrec.experiments.launch import Launcher, RunSpec, omp_threads, thread_plan, yaml_value
from rlrec.experiments.search import SearchConfig
from rlrec.fsutil import atomic_write_json
from rlrec.outputs import reusable_output

SWEEP_INDEX = "sweep.json"
DEFAULT_SEEDS = [0, 1, 2, 3, 4]


class SweepConfig(StrictModel):
    """What to run: ``base`` × every combination of ``grid`` × ``seeds``, or ``search`` trials
    (see the module doc)."""

    base: Path
    out: Path
    seeds: list[int] | None = Field(
        None, min_length=1, description="default: 0-4 (a search: 0; its trials train one seed)"
    )
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    jobs: int | None = Field(
        None, ge=1, description="processes at a time (default: one per usable CPU)"
    )
    threads_per_job: int | None = Field(
        None,
        ge=1,
        description="default: OMP_NUM_THREADS, else 1 when jobs >= CPUs, else CPUs // jobs",
    )
    search: SearchConfig | None = None

    @property
    def seed_list(self) -> list[int]:
        return self.seeds or ([0] if self.search else DEFAULT_SEEDS)


def run_overrides(cfg: SweepConfig, point: dict[str, Any], seed: int, out: Path) -> list[str]:
    """The ``--set`` overrides of one run: the sweep's overrides ← the point ← seed and output."""
    settings = {**cfg.overrides, **point, "seed": seed, "out": str(out)}
    return [f"{k}={yaml_value(v)}" for k, v in settings.items()]


def check_run(
    kind: RunKind, base: Path, overrides: list[str], checked: set[tuple[str, ...]], where: str
) -> Any:
    """Resolve and check one run's config (:meth:`RunKind.check`); an error names ``where``."""
    try:
        run_cfg = kind.build(base, overrides)
        kind.check(run_cfg, checked)
    except RlrecError as exc:
        raise ConfigError(f"sweep run {where}: {exc}") from None
    return run_cfg


def describe(point: dict[str, Any]) -> str:
    """`` (key=value, …)`` of a grid point, empty for none."""
    return " (" + ", ".join(f"{k}={yaml_value(v)}" for k, v in point.items()) + ")" if point else ""


def plan(cfg: SweepConfig, kind: RunKind | None = None) -> list[RunSpec]:
    """Every run of the grid sweep, each config resolved and checked (a bad key or value, a missing
    dataset fails before any run)."""
    if cfg.search is not None and cfg.grid:
        raise ConfigError("give either grid or search, not both")
    for key, values in cfg.grid.items():
        if not values:
            raise ConfigError(f"grid.{key}: needs at least one value")
    kind = kind or detect(cfg.base)
    keys = list(cfg.grid)
    points = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*cfg.grid.values())
    ]
    specs = []
    checked: set[tuple[str, ...]] = set()
    for index, point in enumerate(points):
        for seed in cfg.seed_list:
            name = f"seed_{seed}" if not keys else f"point_{index:03d}/seed_{seed}"
            out = cfg.out / name
            overrides = run_overrides(cfg, point, seed, out)
            check_run(kind, cfg.base, overrides, checked, name + describe(point))
            specs.append(RunSpec(name, point, seed, out, overrides))
    return specs


def threads(cfg: SweepConfig) -> tuple[int, int]:
    """``(processes at a time, threads each)`` on this process's usable CPUs (affinity, cgroup
    quota) and under the user's ``OMP_NUM_THREADS`` (:func:`thread_plan`)."""
    omp = omp_threads(os.environ.get("OMP_NUM_THREADS"))
    return thread_plan(available_cpus(), cfg.jobs, cfg.threads_per_job, omp)


def run_sweep(
    cfg: SweepConfig,
    *,
    overwrite: bool = False,
    on_event: Callable[[RunSpec, int, int], None] | None = None,
) -> list[RunSpec]:
    """Run (or complete) the sweep; ``on_event(spec, done, total)`` after each run ends."""
    if cfg.search is None:
        return run_sweeps([cfg], overwrite=overwrite, on_event=on_event)[0]
    from rlrec.experiments.search import Search

    if overwrite:
        raise ConfigError("--overwrite does not apply to a search; give another out instead")
    jobs, per_run = threads(cfg)
    search = Search(cfg, detect(cfg.base), jobs, per_run)  # all checks before the directory exists
    # its own kind: a grid sweep into a search's directory (or back) is refused, not merged
    with reusable_output(cfg.out, "search", inputs=[cfg.base]):
        return search.run(on_event)


def write_index(
    cfg: SweepConfig, kind: RunKind, jobs: int, per_run: int, specs: list[RunSpec], **extra: Any
) -> None:
    """``out/sweep.json``: the sweep's settings and every run's point, command and outcome."""
    atomic_write_json(
        cfg.out / SWEEP_INDEX,
        {
            "kind": kind.name,
            "base": str(cfg.base),
            "grid": cfg.grid,
            "seeds": cfg.seed_list,
            "overrides": cfg.overrides,
            "jobs": jobs,
            "threads_per_job": per_run,
            **extra,
            "runs": [asdict(s) | {"out": str(s.out)} for s in specs],
        },
    )


def run_sweeps(
    cfgs: list[SweepConfig],
    *,
    overwrite: bool = False,
    on_event: Callable[[RunSpec, int, int], None] | None = None,
) -> list[list[RunSpec]]:
    """Run (or complete) several grid sweeps through one pool of processes — e.g. one sweep per
    method config, so that no process slot idles between them. The first config's ``jobs`` and
    ``threads_per_job`` apply; every run of every sweep is checked before any starts."""
    if any(c.search is not None for c in cfgs):
        raise ConfigError("run_sweeps runs grid sweeps; run a search with run_sweep")
    kinds = [detect(c.base) for c in cfgs]
    plans = [plan(c, k) for c, k in zip(cfgs, kinds, strict=True)]
    jobs, per_run = threads(cfgs[0])
    launchers = [
        Launcher(k, c.base, c.out / "logs", per_run) for c, k in zip(cfgs, kinds, strict=True)
    ]
    work = [(i, spec) for i, specs in enumerate(plans) for spec in specs]
    lock = threading.Lock()
    done = 0

    def save(i: int) -> None:
        write_index(cfgs[i], kinds[i], jobs, per_run, plans[i])

    def execute(i: int, spec: RunSpec) -> None:
        nonlocal done
        if (spec.out / "summary.json").is_file() and not overwrite:
            spec.status, spec.message = "done", "already finished"
        else:
            launchers[i].run(spec, overwrite=overwrite)
        with lock:
            done += 1
            save(i)
            if on_event is not None:
                on_event(spec, done, len(work))

    with ExitStack() as claims:
        for i, c in enumerate(cfgs):
            claims.enter_context(reusable_output(c.out, "sweep", inputs=[c.base]))
            save(i)
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            for future in [pool.submit(execute, i, s) for i, s in work]:
                future.result()
        except BaseException:
            for launcher in launchers:
                launcher.terminate_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    failed = [(i, s) for i, s in work if s.status == "failed"]
    if failed:
        i, first = failed[0]
        raise RlrecError(
            f"{len(failed)} of {len(work)} sweep runs failed; first: {cfgs[i].out / first.name}: "
            f"{first.message} (log: {cfgs[i].out / 'logs'}; rerun the sweep to retry them)"
        )
    return plans


def summary_metric(spec: RunSpec) -> tuple[str, str, float] | None:
    """``(split, metric, value)`` of a finished run's selection metric on test (``rlrec train``) or
    in the evaluation environment (``rlrec sim train``), from its ``summary.json`` (progress lines)."""
    path = spec.out / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        kind = run_kind(summary)
        key = summary.get("select_metric", SIM_SELECT)
        value = (kind.final_metrics(summary) or {}).get(key)
    except (OSError, ValueError, AttributeError):
        return None  # a progress line only: report shows the run's problem
    if not isinstance(value, (int, float)):
        return None
    return ("test" if kind.name == "train" else "evaluation"), key, float(value)
