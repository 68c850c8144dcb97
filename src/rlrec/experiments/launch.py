"""One sweep run as its own process: the command, its CPU threads, its log, and stopping it early.

Every run of a sweep (a grid point × seed, or a search trial) is ``python -m rlrec train`` or
``python -m rlrec sim train`` with ``--set`` overrides, started in a new process so runs are as
independent as separate commands. :func:`thread_plan` shares the usable CPUs between the runs that
go at a time; :class:`Launcher` starts them, keeps each one's output in ``logs/`` and can stop a run
whose ``watch`` says so (a pruned search trial).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlrec.errors import ConfigError
from rlrec.experiments.kinds import RunKind


@dataclass
class RunSpec:
    """One run of a sweep and its outcome (``status``: pending, done, failed or pruned)."""

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
    trial: int | None = None  # the optuna trial number of a search run
    value: float | None = None  # a search trial's objective value


def yaml_value(value: Any) -> str:
    """``value`` as the YAML text of a ``--set KEY=VALUE`` override (one line)."""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def omp_threads(value: str | None) -> int | None:
    """The (outermost) thread count of an ``OMP_NUM_THREADS`` value, ``None`` when unset or empty."""
    if value is None or not value.strip():
        return None
    first = value.split(",")[0].strip()
    if not first.isdigit() or int(first) < 1:
        raise ConfigError(f"OMP_NUM_THREADS='{value}': not a positive number of threads")
    return int(first)


def thread_plan(
    cores: int, jobs: int | None, threads: int | None, omp: int | None
) -> tuple[int, int]:
    """``(runs at a time, threads per run)`` on ``cores`` usable CPUs.

    Threads per run: ``threads`` if given, else ``omp`` (the user's ``OMP_NUM_THREADS``), else 1 when
    ``jobs ≥ cores`` and ``cores // jobs`` otherwise. Runs at a time: ``jobs`` if given, else as many
    as the threads leave cores for (at least one) — by default one single-threaded run per core: on
    2 cores two 1-thread runs train 1.3–2.1× the transitions of one 2-thread run
    (benchmarks/README.md, "Threads").
    """
    per_run = threads or omp
    if jobs is None:
        jobs = max(1, cores // (per_run or 1))
    if per_run is None:
        per_run = 1 if jobs >= cores else cores // jobs
    return jobs, per_run


class Launcher:
    """Starts the runs of one sweep: ``rlrec <kind.command> --config base --set …`` per run."""

    def __init__(self, kind: RunKind, base: Path, logs: Path, threads: int) -> None:
        self.kind = kind
        self.base = base
        self.logs = logs
        self.threads = threads
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()

    def command(self, spec: RunSpec, overwrite: bool) -> list[str]:
        """The run's command line: a new (or ``overwrite``) run starts over, an interrupted one
        (its ``config.yaml`` exists) resumes."""
        mode = (
            "--overwrite" if overwrite or not (spec.out / "config.yaml").is_file() else "--resume"
        )
        command = [sys.executable, "-m", "rlrec", *self.kind.command, "--config", str(self.base)]
        for item in [*spec.overrides, f"train.num_threads={self.threads}"]:
            command += ["--set", item]
        return [*command, mode]

    def run(
        self,
        spec: RunSpec,
        *,
        overwrite: bool = False,
        watch: Callable[[], bool] | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        """Run ``spec`` to its end and record the outcome in it. ``watch()`` is called every
        ``poll_seconds`` while the run goes; when it returns True the run is stopped (SIGTERM) and
        marked ``pruned``."""
        spec.command = self.command(spec, overwrite)
        threads = str(self.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        log = self.logs / f"{spec.name.replace('/', '_')}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        stopped = False
        with open(log, "wb") as fh:
            child = subprocess.Popen(spec.command, stdout=fh, stderr=subprocess.STDOUT, env=env)
            with self._lock:
                self._children.add(child)
            try:
                while True:
                    try:
                        spec.returncode = child.wait(timeout=poll_seconds if watch else None)
                        break
                    except subprocess.TimeoutExpired:
                        if watch is not None and watch():
                            stopped = True
                            child.terminate()
                            spec.returncode = child.wait()
                            break
            finally:
                with self._lock:
                    self._children.discard(child)
        spec.seconds = time.perf_counter() - t0
        if stopped:
            spec.status, spec.message = "pruned", "stopped early on its validation metric"
        elif spec.returncode == 0:
            spec.status, spec.message = "done", ""
        else:
            tail = log.read_text(errors="replace").strip().splitlines()
            spec.status, spec.message = "failed", tail[-1] if tail else "no output"

    def terminate_all(self) -> None:
        """Stop every running child (the sweep was interrupted)."""
        with self._lock:
            for child in self._children:
                child.terminate()
