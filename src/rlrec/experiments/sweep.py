"""``rlrec sweep``: one training config × a grid of overrides × seeds, each run its own process.

A sweep file names a training config and what to vary (several seeds, mean ± std)::

    base: configs/ccql/rc15/sasrec_ccql.yaml   # an ``rlrec train`` config
    out: runs/sweeps/ccql_alpha                 # the sweep's directory
    seeds: [0, 1, 2, 3, 4]
    grid:                                       # every combination of these values
      objective.cql_alpha: [0.01, 0.1]
      objective.num_negatives: [10, 50]
    overrides: {train.epochs: 20}               # applied to every run
    jobs: 2                                     # processes at a time

Each run is ``python -m rlrec train --config BASE --set KEY=VALUE …`` in its own process, with
``train.num_threads`` set so that ``jobs`` runs share the machine's cores (by default one 1-thread
run per usable CPU, the fastest way through several seeds). Runs go to
``out/seed_<s>`` (no grid) or ``out/point_<i>/seed_<s>`` — hyper-parameters are not encoded in
directory names; ``out/sweep.json`` maps every run to its grid point, command, status and time, and
``out/logs/`` keeps each run's output. Every run's config is validated before anything starts. A
finished run (``summary.json``) is skipped, an interrupted one resumed, so re-running a sweep
completes it. ``rlrec report OUT`` then tabulates and plots the sweep.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from rlrec.config import StrictModel, build_config
from rlrec.data.dataset import PreparedDataset
from rlrec.device import available_cpus
from rlrec.errors import ConfigError, RlrecError
from rlrec.fsutil import atomic_write_json
from rlrec.outputs import reusable_output
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import check_select_metric

SWEEP_INDEX = "sweep.json"


class SweepConfig(StrictModel):
    """What to run: ``base`` × every combination of ``grid`` × ``seeds`` (see the module doc)."""

    base: Path
    out: Path
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    jobs: int | None = Field(
        None, ge=1, description="processes at a time (default: one per usable CPU)"
    )
    threads_per_job: int | None = Field(None, ge=1, description="default: CPUs // jobs")


@dataclass
class RunSpec:
    """One run of the sweep and its outcome."""

    name: str
    point: dict[str, Any]
    seed: int
    out: Path
    overrides: list[str]
    status: str = "pending"
    returncode: int | None = None
    seconds: float | None = None
    message: str = ""
    command: list[str] = field(default_factory=list)


def _yaml_value(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def plan(cfg: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, each config validated (a bad key or value fails before any run)."""
    for key, values in cfg.grid.items():
        if not values:
            raise ConfigError(f"grid.{key}: needs at least one value")
    keys = list(cfg.grid)
    points = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*cfg.grid.values())
    ]
    specs = []
    datasets: set[Path] = set()  # checked to exist before any run starts
    for index, point in enumerate(points):
        for seed in cfg.seeds:
            name = f"seed_{seed}" if not keys else f"point_{index:03d}/seed_{seed}"
            out = cfg.out / name
            settings = {**cfg.overrides, **point, "seed": seed, "out": str(out)}
            overrides = [f"{k}={_yaml_value(v)}" for k, v in settings.items()]
            try:
                run_cfg = build_config(TrainConfig, path=cfg.base, overrides=overrides)
                if run_cfg.data not in datasets:
                    PreparedDataset.load(run_cfg.data, verify=False)
                    datasets.add(run_cfg.data)
                check_select_metric(run_cfg)
            except RlrecError as exc:
                raise ConfigError(f"sweep run {name}: {exc}") from None
            specs.append(RunSpec(name, point, seed, out, overrides))
    return specs


def _threads(cfg: SweepConfig) -> tuple[int, int]:
    """(processes at a time, threads each). By default one single-threaded run per usable CPU:
    on 2 cores, two 1-thread runs train 1.3–2.1× the transitions of one 2-thread run
    (benchmarks/README.md, "Threads")."""
    cores = available_cpus()
    jobs = cfg.jobs or max(1, cores // (cfg.threads_per_job or 1))
    return jobs, cfg.threads_per_job or max(1, cores // jobs)


def run_sweep(
    cfg: SweepConfig,
    *,
    overwrite: bool = False,
    on_event: Callable[[RunSpec, int, int], None] | None = None,
) -> list[RunSpec]:
    """Run (or complete) the sweep; ``on_event(spec, done, total)`` after each run ends."""
    specs = plan(cfg)
    with reusable_output(cfg.out, "sweep", inputs=[cfg.base]):
        return _run(cfg, specs, overwrite, on_event)


def _run(
    cfg: SweepConfig,
    specs: list[RunSpec],
    overwrite: bool,
    on_event: Callable[[RunSpec, int, int], None] | None,
) -> list[RunSpec]:
    jobs, threads = _threads(cfg)
    (cfg.out / "logs").mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    done = 0
    children: set[subprocess.Popen[bytes]] = set()

    def save_index() -> None:
        atomic_write_json(
            cfg.out / SWEEP_INDEX,
            {
                "base": str(cfg.base),
                "grid": cfg.grid,
                "seeds": cfg.seeds,
                "overrides": cfg.overrides,
                "jobs": jobs,
                "threads_per_job": threads,
                "runs": [asdict(s) | {"out": str(s.out)} for s in specs],
            },
        )

    def execute(spec: RunSpec) -> None:
        nonlocal done
        if (spec.out / "summary.json").is_file() and not overwrite:
            spec.status, spec.message = "done", "already finished"
        else:
            mode = (
                "--overwrite"
                if overwrite or not (spec.out / "config.yaml").is_file()
                else "--resume"
            )
            spec.command = [sys.executable, "-m", "rlrec", "train", "--config", str(cfg.base)]
            for item in [*spec.overrides, f"train.num_threads={threads}"]:
                spec.command += ["--set", item]
            spec.command.append(mode)
            log = cfg.out / "logs" / f"{spec.name.replace('/', '_')}.log"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            t0 = time.perf_counter()
            with open(log, "wb") as fh:
                child = subprocess.Popen(spec.command, stdout=fh, stderr=subprocess.STDOUT, env=env)
                with lock:
                    children.add(child)
                spec.returncode = child.wait()
                with lock:
                    children.discard(child)
            spec.seconds = time.perf_counter() - t0
            tail = log.read_text(errors="replace").strip().splitlines()
            spec.status = "done" if spec.returncode == 0 else "failed"
            spec.message = "" if spec.returncode == 0 else (tail[-1] if tail else "no output")
        with lock:
            done += 1
            save_index()
            if on_event is not None:
                on_event(spec, done, len(specs))

    save_index()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in [pool.submit(execute, s) for s in specs]:
            future.result()
    except BaseException:
        with lock:
            for child in children:
                child.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    failed = [s for s in specs if s.status == "failed"]
    if failed:
        first = failed[0]
        raise RlrecError(
            f"{len(failed)} of {len(specs)} sweep runs failed; first: {first.name}: {first.message} "
            f"(log: {cfg.out / 'logs'}; rerun the sweep to retry them)"
        )
    return specs


def summary_metric(spec: RunSpec, key: str) -> float | None:
    """A finished run's test ``key`` from its ``summary.json`` (for progress lines)."""
    path = spec.out / "summary.json"
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("test", {}).get(key)
    except (OSError, ValueError, AttributeError):
        return None  # a progress line only: report shows the run's problem
    return float(value) if isinstance(value, (int, float)) else None
