"""Faults of the real CLI, in subprocesses: ``kill -9`` at seeded random moments, two writers of one
output, a full disk.

Every command runs as ``python -m rlrec ...`` on one thread. Kill moments are drawn from a seeded
``random.Random``, one in each stratum of a span measured first on an uninterrupted run of the same
command: its start-up, the time it held its output's lock (from claiming the output to releasing
it), for a training run the time before and after its first checkpoint. A killed process is let
reach the start of its span itself, then run the drawn fraction of the CPU time the uninterrupted
run spent in the span (CPU time from ``/proc``: the same point of the work however busy the machine
is), so early, middle and late kills all happen.
After a kill the output is either absent or complete, and finishing the command (``--resume`` for a
training run) gives the same files as the uninterrupted run: the same tensors bit for bit, the same
logs and summary apart from timings, nothing duplicated and nothing left behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import tiny_train_config
from online_helpers import feature_urm, run_config, tiny_lists
from safetensors.torch import load_file
from sim_helpers import single_thread

from rlrec.config import config_to_yaml
from rlrec.data.dataset import PreparedDataset
from rlrec.train.checkpoint import latest_checkpoint, load_checkpoint

TIMEOUT = 180  # seconds any one subprocess may take
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "COLUMNS": "200",
}
LATEST = "checkpoints/latest.json"  # written with a run's first checkpoint
TIMING = ("seconds", "per_s")  # keys (and CSV columns) holding measured times or rates


# ------------------------------------------------------------------------------ running the CLI


def rlrec(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rlrec", *map(str, args)]


@dataclass
class Done:
    code: int
    out: str
    err: str


def run(cmd: list[str], cwd: Path) -> Done:
    """Run ``cmd`` to the end (with a timeout)."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return Done(proc.returncode, proc.stdout, proc.stderr)


def run_together(cmds: list[list[str]], cwd: Path) -> list[Done]:
    """Run ``cmds`` at the same time, each to the end (with a timeout; their outputs are small)."""
    procs = [
        subprocess.Popen(
            cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for cmd in cmds
    ]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done.append(Done(proc.returncode, out, err))
    return done


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(cmd: list[str], cwd: Path, log: Path) -> Started:
    """Start ``cmd`` in the background, stdout and stderr to ``log``."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    return Started(proc, log)


def finish(job: Started) -> int:
    try:
        return job.proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        job.proc.kill()
        job.proc.wait()
        pytest.fail(f"{job.proc.args} did not finish in {TIMEOUT} s:\n{job.output()}")


def cpu_seconds(job: Started) -> float:
    """The CPU time (user + system, all threads) ``job``'s process has used so far: a measure of its
    progress that does not depend on how busy the machine is."""
    try:
        fields = Path(f"/proc/{job.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.inf  # gone
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timeline:
    """The CPU time at which an uninterrupted command claimed its output (took its lock), reached a
    milestone (wrote its first checkpoint) and released the output."""

    claimed: float
    released: float
    milestone: float | None = None

    def span(self, start: str, end: str) -> float:
        """CPU seconds from mark ``start`` to mark ``end`` (``started``, ``claimed``,
        ``milestone``, ``released``)."""
        marks = {"started": 0.0, "claimed": self.claimed, "released": self.released}
        if self.milestone is not None:
            marks["milestone"] = self.milestone
        return marks[end] - marks[start]


def measure(cmd: list[str], out: Path, cwd: Path, log: Path, milestone: str = "") -> Timeline:
    """Run ``cmd`` uninterrupted (it must succeed), watching every millisecond for the lock file of
    its output ``out`` and for the file ``out / milestone``."""
    job = start(cmd, cwd, log)
    claimed = released = reached = None
    last = 0.0
    while job.proc.poll() is None:
        now, held = cpu_seconds(job), lock_holder(out) is not None
        last = now if now < math.inf else last
        if claimed is None and held:
            claimed = now
        elif claimed is not None and released is None and not held:
            released = now
        if milestone and reached is None and (out / milestone).exists():
            reached = now
        time.sleep(0.001)
    assert finish(job) == 0, job.output()
    assert claimed is not None, "the command was never seen holding its lock"
    assert reached is not None or not milestone, f"{milestone} never appeared"
    return Timeline(claimed, last if released is None else released, reached)


Stratum = tuple[str, str, float, float]  # from mark, to mark, lowest and highest fraction
Moment = tuple[str, str, float]  # from mark, to mark, fraction of the way


def moments(seed: int, strata: list[Stratum]) -> list[Moment]:
    """One seeded moment in each stratum."""
    rng = random.Random(seed)
    return [(start, end, rng.uniform(lo, hi)) for start, end, lo, hi in strata]


def kill_at(job: Started, out: Path, timeline: Timeline, moment: Moment) -> bool:
    """SIGKILL ``job`` (writing ``out``) at ``moment`` ``(start, end, fraction)``: once it reached
    mark ``start`` itself (took its lock, wrote its first checkpoint), after ``fraction`` of the CPU
    time the uninterrupted run spent from ``start`` to ``end``. False when it finished first (then
    it must have succeeded). Polled every millisecond."""
    start, end, fraction = moment
    reached = {
        "started": lambda: True,
        "claimed": lambda: lock_holder(out) == str(job.proc.pid),
        "milestone": lambda: (out / LATEST).exists(),
    }[start]
    if not wait_until(job, reached, interval=0.001):
        return False
    cpu = cpu_seconds(job) + fraction * timeline.span(start, end)
    if wait_until(job, lambda: cpu_seconds(job) >= cpu, interval=0.001):
        kill_now(job)
        return True
    return False


def wait_until(job: Started, condition: Callable[[], bool], interval: float = 0.002) -> bool:
    """Poll ``condition()`` every ``interval`` seconds: True once it holds, False when ``job``
    finished first (it must have succeeded)."""
    deadline = time.perf_counter() + TIMEOUT
    while job.proc.poll() is None:
        if condition():
            return True
        assert time.perf_counter() < deadline, f"{job.proc.args} still running"
        time.sleep(interval)
    assert job.proc.returncode == 0, job.output()
    return False


def kill_now(job: Started) -> None:
    os.kill(job.proc.pid, signal.SIGKILL)
    job.proc.wait(timeout=TIMEOUT)


def each(trials: list[Callable[[], None]]) -> None:
    """Run independent trials (each a chain of single-threaded subprocesses), two at a time where
    the machine has two CPU cores for them, one at a time otherwise; the first failure is raised."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(2 if (cores or 1) >= 2 else 1) as pool:
        futures = [pool.submit(trial) for trial in trials]
        try:
            for future in futures:
                future.result()
        finally:
            for future in futures:
                future.cancel()


def lock_holder(out: Path) -> str | None:
    """The PID written in ``out``'s lock file, or ``None`` while there is none."""
    try:
        return (out.parent / f".{out.name}.lock").read_text().strip() or None
    except FileNotFoundError:
        return None


def wait_for_lock(job: Started, out: Path, also: Callable[[], bool] = lambda: True) -> None:
    """Poll (every 2 ms) until ``job`` holds the lock of ``out`` and ``also()`` holds."""
    deadline = time.perf_counter() + TIMEOUT
    while not (lock_holder(out) == str(job.proc.pid) and also()):
        assert job.proc.poll() is None, (
            f"finished before it was seen holding the lock:\n{job.output()}"
        )
        assert time.perf_counter() < deadline, "the lock never appeared"
        time.sleep(0.002)


@contextmanager
def paused(job: Started) -> Iterator[None]:
    """``job`` stopped (SIGSTOP) inside the block, so it holds its lock whatever the machine's
    speed; always continued afterwards."""
    os.kill(job.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(job.proc.pid, signal.SIGCONT)


def error_line(err: str) -> str:
    """The one ``error:`` line of a failed command: the last line of stderr, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert "Traceback" not in err and "This is a bug" not in err, err
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


# ------------------------------------------------------------------------------ comparing outputs


def siblings(out: Path) -> list[str]:
    """Entries beside ``out`` that belong to it: ``.NAME.tmp-*``, ``.NAME.old-*``, ``.NAME.lock``."""
    if not out.parent.is_dir():
        return []
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (hidden ones too), by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def untimed(obj: Any) -> Any:
    """``obj`` without the keys that hold measured times or rates."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not any(t in k for t in TIMING)}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_ordered_logs(run_dir: Path) -> None:
    """No record logged twice, and the steps of every kind of record strictly increase."""
    seen: dict[tuple[Any, ...], int] = {}
    for r in records(run_dir):
        series = (r["kind"], r.get("checkpoint"), r.get("flag"))
        assert r["step"] > seen.get(series, -1), (series, r["step"], "logged twice or out of order")
        seen[series] = r["step"]


def assert_same_tree(ref: Path, got: Path) -> None:
    """``got`` holds the same files as ``ref``: tensors bit-equal, JSON, JSONL and CSV equal apart
    from timings, every other file byte-equal; nothing missing, nothing extra."""
    names = sorted(str(p.relative_to(ref)) for p in ref.rglob("*"))
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*")) == names
    for name in names:
        a, b = ref / name, got / name
        if a.is_dir():
            continue
        if a.suffix == ".safetensors":
            ta, tb = load_file(str(a)), load_file(str(b))
            assert ta.keys() == tb.keys(), name
            assert all(torch.equal(ta[k], tb[k]) for k in ta), name
        elif a.name == "metrics.jsonl":
            assert untimed(records(ref)) == untimed(records(got))
        elif a.suffix == ".json":
            assert untimed(json.loads(a.read_text())) == untimed(json.loads(b.read_text())), name
        elif a.suffix == ".csv":
            with open(a) as fa, open(b) as fb:
                assert untimed(list(csv.DictReader(fa))) == untimed(list(csv.DictReader(fb))), name
        elif a.name == "config.yaml":  # the resolved config names its own run directory
            ya, yb = yaml.safe_load(a.read_text()), yaml.safe_load(b.read_text())
            assert {**ya, "out": None} == {**yb, "out": None}
        else:
            assert a.read_bytes() == b.read_bytes(), name


def summary_written(run_dir: Path) -> bool:
    """``summary.json`` is being written (its temporary exists) or written."""
    return any(n.startswith((".summary.json.tmp-", "summary.json")) for n in os.listdir(run_dir))


def run_state(run_dir: Path) -> str:
    """Where a killed training command got to (for the test's report)."""
    if not run_dir.exists():
        return "no run directory"
    partial = [str(p.relative_to(run_dir)) for p in run_dir.rglob(".*.tmp*")]
    if partial:
        return f"writing {partial}"
    if (run_dir / "summary.json").exists():
        return "finished"
    pointer = run_dir / "checkpoints" / "latest.json"
    return (
        f"checkpoint {json.loads(pointer.read_text())['step']}" if pointer.exists() else "started"
    )


def resume_after_kill(cmd: list[str], run_dir: Path, cwd: Path) -> None:
    """Finish a killed training command: ``--resume`` when its run directory exists (it then has
    its config), else the same command again."""
    if run_dir.exists():
        assert (run_dir / "config.yaml").is_file(), sorted(p.name for p in run_dir.iterdir())
        cmd = [*cmd, "--resume"]
    done = run(cmd, cwd)
    assert done.code == 0, done.err


# ------------------------------------------------------------------------------ fixtures


@dataclass
class Reference:
    """A command's uninterrupted result and when it wrote it."""

    out: Path
    timeline: Timeline
    config: Path | None = None
    raw: Path | None = None


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


def prepare_cmd(raw: Path, out: Path, *extra: str) -> list[str]:
    return rlrec("data", "prepare", "synthetic", "--raw", raw, "--out", out, *extra)


@pytest.fixture(scope="module")
def prepared(work: Path) -> Reference:
    """Synthetic raw data large enough for ``data prepare`` to spend a while writing (200,000
    sessions, ≈ 9 MB), and its uninterrupted preparation."""
    raw = work / "raw"
    done = run(
        rlrec("data", "synth", "--out", raw, "--set", "n_sessions=200000", "--set", "n_items=2000"),
        work,
    )
    assert done.code == 0, done.err
    out = work / "prepared" / "ds"
    timeline = measure(prepare_cmd(raw, out), out, work, work / "prepare.log")
    return Reference(out, timeline, raw=raw)


def train_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    sets = ["--set", f"out={out}", "--set", "train.num_threads=1", "--set", "device=cpu"]
    return rlrec("train", "--config", config, *sets, *extra)


@pytest.fixture(scope="module")
def offline(work: Path, tiny_dataset: Path) -> Reference:
    """A tiny GRU/SNQN config (100 steps, a checkpoint every 10) and its uninterrupted run."""
    cfg = tiny_train_config(
        tiny_dataset,
        work / "unused",
        device="cpu",
        train={"max_steps": 100, "eval_every": 10, "log_every": 5, "tensorboard": False},
    )
    config = work / "train.yaml"
    config.write_text(config_to_yaml(cfg))
    out = work / "offline" / "run"
    timeline = measure(train_cmd(config, out), out, work, work / "train.log", LATEST)
    return Reference(out, timeline, config=config)


def sim_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return rlrec("sim", "train", "--config", config, "--out", out, *extra)


@pytest.fixture(scope="module")
def online(work: Path) -> Reference:
    """A tiny HAC config on a synthetic list dataset (checkpoint every 10 of 60 iterations) and its
    uninterrupted run."""
    data = tiny_lists(work)
    urm = feature_urm(data, work / "urm")
    cfg = run_config(
        data,
        work / "unused",
        urm,
        agent={"kind": "hac", "policy": {"dropout": 0.1}},
        seed=3,
        train={"iterations": 60, "eval_every": 10, "log_every": 5, "num_threads": 1},
    )
    config = work / "sim.yaml"
    config.write_text(config_to_yaml(cfg))
    out = work / "online" / "run"
    timeline = measure(sim_cmd(config, out), out, work, work / "sim.log", LATEST)
    return Reference(out, timeline, config=config)


# ------------------------------------------------------------------------------ kill -9


def test_prepare_killed_at_random_moments_leaves_nothing_partial(
    prepared: Reference, tmp_path: Path
) -> None:
    """New outputs (killed during start-up and at three moments while writing) and ``--overwrite``
    of a complete one (three moments while writing; the last third ends with the swap): the output
    is absent or complete, and re-running gives the same bytes and leaves nothing beside it."""
    raw, ref = prepared.raw, prepared.out
    assert raw is not None

    def trial(i: int, mode: str, when: Moment) -> None:
        out = tmp_path / f"kill{i}" / "ds"
        cmd = prepare_cmd(raw, out)
        if mode == "over":
            shutil.copytree(ref, out)  # a complete earlier output, replaced by the command
            cmd.append("--overwrite")
        kill_at(start(cmd, tmp_path, tmp_path / f"kill{i}.log"), out, prepared.timeline, when)
        print(
            f"kill {i} ({mode}) at {when}: {'complete' if out.exists() else 'absent'}, "
            f"beside it {siblings(out)}"
        )  # shown with -rP
        if out.exists():  # whatever is there is complete
            PreparedDataset.load(out)  # every file's hash checked against the manifest
            assert file_hashes(out) == file_hashes(ref)
        elif mode == "over":  # only between the two renames of the swap: the old one is kept aside
            assert any(name.startswith(".ds.old-") for name in siblings(out)), siblings(out)
        if mode == "new" and out.exists():
            cmd.append("--overwrite")
        done = run(cmd, tmp_path)
        assert done.code == 0, (mode, when, done.err)
        assert file_hashes(out) == file_hashes(ref), (mode, when)
        assert siblings(out) == [], (mode, when)

    writing: list[Stratum] = [("claimed", "released", i / 3, (i + 1) / 3) for i in range(3)]
    new = moments(11, [("started", "claimed", 0.5, 1.0), *writing])
    replace = moments(12, writing)
    plan = [("new", m) for m in new] + [("over", m) for m in replace]
    each([partial(trial, i, *p) for i, p in enumerate(plan)])


def kill_and_resume(
    ref: Reference, command: Callable[[Path], list[str]], end_kind: str, seed: int, tmp_path: Path
) -> None:
    """Kill ``command(run_dir)`` at three seeded moments, and once right after its end-of-run
    evaluation (records of ``end_kind``) was logged; each time finish it and compare it with the
    uninterrupted run ``ref``."""

    def trial(i: int, when: Moment | None) -> None:
        run_dir = tmp_path / f"kill{i}" / "run"
        cmd = command(run_dir)
        job = start(cmd, tmp_path, tmp_path / f"kill{i}.log")
        if when is None:  # once the end was logged, as soon as the summary is being written
            metrics, marker = run_dir / "metrics.jsonl", f'"kind": "{end_kind}"'
            logged = wait_until(job, lambda: metrics.is_file() and marker in metrics.read_text())
            if logged and wait_until(job, lambda: summary_written(run_dir), interval=0):
                kill_now(job)
        else:
            kill_at(job, run_dir, ref.timeline, when)
        print(f"kill {i} at {when or 'the end'}: {run_state(run_dir)}")  # shown with -rP
        resume_after_kill(cmd, run_dir, tmp_path)
        assert_same_tree(ref.out, run_dir)
        assert_ordered_logs(run_dir)
        assert siblings(run_dir) == []

    chosen = moments(
        seed,
        [
            ("claimed", "milestone", 0.0, 1.0),  # a run without a checkpoint yet
            ("milestone", "released", 0.0, 0.5),
            ("milestone", "released", 0.5, 1.0),
        ],
    )
    each([partial(trial, i, m) for i, m in enumerate(chosen)] + [partial(trial, 3, None)])


def test_train_killed_at_random_moments_resumes_bit_equal(
    offline: Reference, tmp_path: Path
) -> None:
    """``rlrec train`` killed at random moments, then resumed: the same run as an uninterrupted
    one."""
    config = offline.config
    assert config is not None
    kill_and_resume(offline, lambda out: train_cmd(config, out), "test", 7, tmp_path)


def test_sim_train_killed_at_random_moments_resumes_bit_equal(
    online: Reference, tmp_path: Path
) -> None:
    """``rlrec sim train`` killed at random moments (during the prefill, training, the final
    evaluation), then resumed: the same run as an uninterrupted one."""
    config = online.config
    assert config is not None
    kill_and_resume(online, lambda out: sim_cmd(config, out), "eval", 8, tmp_path)


def test_an_early_stopped_run_resumed_stays_stopped(tiny_dataset: Path, tmp_path: Path) -> None:
    """A run that stopped early (``train.patience``), resumed from its last checkpoint (as after a
    kill during its end-of-run evaluation): it trains no further, the result is the same. In
    process: resuming the finished run starts from the same checkpoint that a kill leaves."""
    from rlrec.train.trainer import Trainer

    run_dir = tmp_path / "run"
    train = {"max_steps": 100, "eval_every": 5, "log_every": 5, "patience": 1}
    cfg = tiny_train_config(tiny_dataset, run_dir, device="cpu", train=train)
    with single_thread():
        assert Trainer(cfg).fit()["steps"] < 100  # it stopped early
        shutil.copytree(run_dir, tmp_path / "uninterrupted")
        Trainer(cfg, resume=True).fit()
    assert_same_tree(tmp_path / "uninterrupted", run_dir)
    assert_ordered_logs(run_dir)


# ------------------------------------------------------------------------------ two writers


def test_second_writer_of_a_training_run_is_refused(offline: Reference, tmp_path: Path) -> None:
    assert offline.config is not None
    run_dir = tmp_path / "run"
    cmd = train_cmd(offline.config, run_dir)
    first = start(cmd, tmp_path, tmp_path / "first.log")
    try:
        wait_for_lock(first, run_dir, also=(run_dir / "config.yaml").is_file)
        with paused(first):
            flags = ("--resume", "--overwrite")
            for flag, second in zip(
                flags, run_together([[*cmd, flag] for flag in flags], tmp_path), strict=True
            ):
                assert second.code == 2, (flag, second.err)
                line = error_line(second.err)
                assert second.err.strip() == line  # nothing else printed
                assert f"another rlrec process (PID {first.proc.pid}) is writing it" in line
    finally:
        assert finish(first) == 0, first.output()
    assert_ordered_logs(run_dir)
    assert_same_tree(offline.out, run_dir)
    assert siblings(run_dir) == []


def test_second_writer_of_a_prepared_dataset_is_refused(
    prepared: Reference, tmp_path: Path
) -> None:
    raw = prepared.raw
    assert raw is not None
    out = tmp_path / "ds"
    first = start(prepare_cmd(raw, out), tmp_path, tmp_path / "first.log")
    try:
        wait_for_lock(first, out, also=lambda: any(n.startswith(".ds.tmp-") for n in siblings(out)))
        with paused(first):
            extras: list[list[str]] = [[], ["--overwrite"]]
            seconds = run_together([prepare_cmd(raw, out, *extra) for extra in extras], tmp_path)
            for extra, second in zip(extras, seconds, strict=True):
                assert second.code == 2, (extra, second.err)
                line = error_line(second.err)
                assert f"another rlrec process (PID {first.proc.pid}) is writing it" in line
                assert not out.exists()  # the second touched nothing
                assert [n for n in siblings(out) if n.startswith(".ds.tmp-")] != []
    finally:
        assert finish(first) == 0, first.output()
    assert file_hashes(out) == file_hashes(prepared.out)
    assert siblings(out) == []


# ------------------------------------------------------------------------------ a full disk

INJECT = """
import errno, sys

mode, target, match, nth, *args = sys.argv[1:]
calls = 0

def fails(filename):
    global calls
    if match in str(filename):
        calls += 1
        return calls == int(nth)
    return False

def enospc(filename):
    if mode == "os":
        return OSError(errno.ENOSPC, "No space left on device", str(filename))
    # what the Rust-backed writers raise when the disk is full
    if target == "safetensors":
        from safetensors import SafetensorError
        return SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )
    from polars.exceptions import ComputeError
    return ComputeError(
        "parquet: File out of specification: underlying IO error: No space left on device "
        "(os error 28)"
    )

if target == "safetensors":
    import safetensors.torch as st
    original = st.save_file
    def save_file(tensors, filename, *a, **k):
        if fails(filename):
            raise enospc(filename)
        return original(tensors, filename, *a, **k)
    st.save_file = save_file
else:
    import polars as pl
    original = pl.DataFrame.write_parquet
    def write_parquet(self, file, *a, **k):
        if fails(file):
            raise enospc(file)
        return original(self, file, *a, **k)
    pl.DataFrame.write_parquet = write_parquet
    import pyarrow.parquet as pq
    opened = pq.ParquetWriter.__init__
    def open_writer(self, where, *a, **k):
        if fails(where):  # what pyarrow raises: an OSError with the errno
            raise OSError(errno.ENOSPC, "Error writing bytes to file: No space left on device")
        return opened(self, where, *a, **k)
    pq.ParquetWriter.__init__ = open_writer

from rlrec.cli import main
sys.argv = ["rlrec", *args]
main()
"""


def injected(
    tmp_path: Path, mode: str, target: str, match: str, nth: int, cmd: list[str]
) -> list[str]:
    """``cmd`` (an ``rlrec`` command line) with the ``nth`` write by ``target`` (``safetensors`` or
    ``polars``) to a path containing ``match`` failing: disk full."""
    script = tmp_path / "inject.py"
    script.write_text(INJECT)
    return [sys.executable, str(script), mode, target, match, str(nth), *cmd[3:]]


def assert_disk_full(done: Done) -> None:
    assert done.code == 2, done.err
    assert "No space left on device" in error_line(done.err)


def no_partial_checkpoints(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".step_*.tmp")]


@pytest.mark.parametrize(
    ("mode", "match", "nth"),
    [("os", "", 3), ("library", "optim", 2)],  # the first checkpoint's model; a later optimiser
)
def test_disk_full_during_train_overwrite_keeps_the_old_run(
    mode: str, match: str, nth: int, offline: Reference, tmp_path: Path
) -> None:
    assert offline.config is not None
    run_dir = tmp_path / "run"
    shutil.copytree(offline.out, run_dir)
    before = file_hashes(run_dir)
    cmd = train_cmd(offline.config, run_dir, "--overwrite")
    assert_disk_full(run(injected(tmp_path, mode, "safetensors", match, nth, cmd), tmp_path))
    assert file_hashes(run_dir) == before
    assert siblings(run_dir) == []
    assert no_partial_checkpoints(tmp_path) == []


@pytest.mark.parametrize("mode", ["library"])
def test_disk_full_during_a_run_in_place_keeps_its_last_checkpoint(
    mode: str, offline: Reference, tmp_path: Path
) -> None:
    """A new run fails writing its second checkpoint: the first stays loadable, nothing partial is
    left, and ``--resume`` (space freed) ends where an uninterrupted run ends."""
    assert offline.config is not None
    run_dir = tmp_path / "run"
    cmd = train_cmd(offline.config, run_dir)
    assert_disk_full(run(injected(tmp_path, mode, "safetensors", "optim", 2, cmd), tmp_path))
    assert no_partial_checkpoints(run_dir) == []
    last = latest_checkpoint(run_dir / "checkpoints")
    assert last is not None and last.name == "step_000000010"
    load_checkpoint(last)
    assert siblings(run_dir) == []
    done = run([*cmd, "--resume"], tmp_path)
    assert done.code == 0, done.err
    assert_same_tree(offline.out, run_dir)


@pytest.mark.parametrize("mode", ["os", "library"])
def test_disk_full_during_prepare_overwrite_keeps_the_old_dataset(
    mode: str, prepared: Reference, tmp_path: Path
) -> None:
    raw = prepared.raw
    assert raw is not None
    out = tmp_path / "ds"
    shutil.copytree(prepared.out, out)
    before = file_hashes(out)
    cmd = prepare_cmd(raw, out, "--overwrite")
    for nth in (1, 4):
        assert_disk_full(run(injected(tmp_path, mode, "polars", "", nth, cmd), tmp_path))
        assert file_hashes(out) == before
        assert siblings(out) == []


@contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` (the test is skipped where mounting is not
    permitted)."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], timeout=30, check=False)


def allocated(root: Path) -> int:
    """Bytes ``root``'s files and directories take on a file system of 4 KiB pages."""
    pages = sum(-(-p.stat().st_size // 4096) if p.is_file() else 1 for p in root.rglob("*"))
    return 4096 * (pages + 1)


def test_a_really_full_disk_keeps_the_old_outputs(
    prepared: Reference, offline: Reference, tmp_path: Path
) -> None:
    """``--overwrite`` on a tmpfs with room for 1.5 copies of the output: the new one cannot be
    completed, the old one stays as it was."""
    raw, config = prepared.raw, offline.config
    assert raw is not None and config is not None
    for name, ref, cmd in (
        ("ds", prepared.out, lambda out: prepare_cmd(raw, out, "--overwrite")),
        ("run", offline.out, lambda out: train_cmd(config, out, "--overwrite")),
    ):
        with tmpfs(tmp_path / f"fs_{name}", allocated(ref) * 3 // 2) as fs:
            out = fs / name
            shutil.copytree(ref, out)
            before = file_hashes(out)
            assert_disk_full(run(cmd(out), tmp_path))
            assert file_hashes(out) == before
            assert siblings(out) == []
            assert no_partial_checkpoints(fs) == []
