"""Benchmark ``rlrec data prepare yoochoose`` at YooChoose (RC15) scale.

What it measures
    Wall-clock time and peak resident memory (max RSS) of one ``rlrec data prepare yoochoose`` run,
    executed as a separate child process through the CLI, on a synthetic raw log shaped like the real
    ``yoochoose-clicks.dat`` / ``yoochoose-buys.dat`` (33.0M clicks in ~9.2M sessions, ~52.7k items with
    Zipf-like popularity, 1.1M buys in ~0.5M sessions). Two variants are run:

    * ``unsampled``: ``--set source.sample_sessions=null`` (every session with >= 3 clicks is kept);
    * ``sampled``: the default config (a seeded sample of 200,000 sessions; ``--sample-sessions``).

    The child's peak RSS comes from ``/usr/bin/time -v`` when present, otherwise from
    ``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process that only ever runs that one child. The
    per-stage durations printed by the CLI ("reading", "sorting and encoding", ...) are reported too.
    Note that the raw files are usually in the page cache (just generated or read by the previous
    variant), so the numbers are for warm-cache reads.

Steps
    ``generate``  writes the raw log into ``--workdir`` (vectorised numpy + polars ``write_csv`` in
                  chunks, seeded). It is skipped when the files already exist with the same parameters
                  (recorded in ``generate.json`` next to them).
    ``run``       runs the prepare pipeline once per variant, then prints a Markdown table and the
                  machine facts (optionally appended to ``--results``).

How to run (from the repository root)::

    # full size: generate (~1.5 GB on disk, once) and time both variants
    .venv/bin/python benchmarks/prepare_yoochoose_scale.py

    # a quick end-to-end check at 1/100 scale (the sample must fit the smaller log)
    .venv/bin/python benchmarks/prepare_yoochoose_scale.py --clicks 330000 --buys 11000 \\
        --workdir benchmarks/_work/yoochoose-small --sample-sessions 20000

    # only one step / one variant; --workdir may also point at the real YooChoose files
    .venv/bin/python benchmarks/prepare_yoochoose_scale.py --only generate
    .venv/bin/python benchmarks/prepare_yoochoose_scale.py --only run --variants unsampled \\
        --results benchmarks/_work/results.md
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO / "benchmarks" / "_work" / "yoochoose"
CLICKS_FILE = "yoochoose-clicks.dat"
BUYS_FILE = "yoochoose-buys.dat"
SIDECAR = "generate.json"
GENERATOR_VERSION = 1
ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"
VARIANTS = ("unsampled", "sampled", "unsampled-ooc", "sampled-ooc")

# Shape of the real log (see the module docstring).
N_ITEMS = 52_700
ITEM_ID_LOW, ITEM_ID_HIGH = 214_500_000, 214_860_000
ZIPF_EXPONENT, ZIPF_OFFSET = 1.05, 10.0
P_LEN1, P_LEN2 = 0.20, 0.25  # 45% of sessions have fewer than 3 clicks
TAIL_MU, TAIL_SIGMA = 0.35, 1.15  # length >= 3: 3 + floor(lognormal); overall mean ~3.6
MAX_LEN = 200
MEAN_ID_GAP = 11.5 / 9.25  # session ids 1..~11.5M for ~9.25M sessions
P_REPEAT = 0.2  # a click re-views the previous click's item
BUYS_PER_SESSION = 2.15  # 1.1M buy rows in ~510k buy sessions (real: 1.15M rows)
P_BUY_CLICKED = 0.9  # bought items are usually items clicked in the session
T_START = int(datetime(2014, 4, 1, tzinfo=timezone.utc).timestamp() * 1000)
T_END = int(datetime(2014, 9, 30, tzinfo=timezone.utc).timestamp() * 1000)
HOUR_MS = 3_600_000


# --------------------------------------------------------------------------------------------------
# generate


@dataclass
class Vocabulary:
    """Item ids, their popularity (as a CDF over popularity ranks) and their category strings."""

    ids: np.ndarray  # int64, by popularity rank (rank 0 is the most popular)
    cdf: np.ndarray  # float64 cumulative popularity over ranks
    categories: pl.Series  # String, by popularity rank


def make_vocabulary(rng: np.random.Generator) -> Vocabulary:
    ids = ITEM_ID_LOW + rng.choice(ITEM_ID_HIGH - ITEM_ID_LOW, N_ITEMS, replace=False)
    weights = (np.arange(N_ITEMS) + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    u = rng.random(N_ITEMS)
    small = rng.integers(1, 13, N_ITEMS).astype(str)
    brand = rng.integers(10_000_000, 5_000_000_000, N_ITEMS).astype(str)
    cats = np.where(u < 0.55, "0", np.where(u < 0.65, "S", np.where(u < 0.85, small, brand)))
    return Vocabulary(ids=ids.astype(np.int64), cdf=cdf, categories=pl.Series(cats.tolist()))


def session_lengths(rng: np.random.Generator, n_clicks: int) -> np.ndarray:
    """Heavy-tailed session lengths summing to exactly ``n_clicks``."""
    est = int(n_clicks / 3.4) + 1000
    lengths = np.empty(0, dtype=np.int64)
    while lengths.sum() < n_clicks:
        u = rng.random(est)
        tail = 3 + np.floor(rng.lognormal(TAIL_MU, TAIL_SIGMA, est)).astype(np.int64)
        more = np.where(u < P_LEN1, 1, np.where(u < P_LEN1 + P_LEN2, 2, np.minimum(tail, MAX_LEN)))
        lengths = np.concatenate([lengths, more])
    ends = np.cumsum(lengths)
    n_sessions = int(np.searchsorted(ends, n_clicks)) + 1
    lengths = lengths[:n_sessions]
    lengths[-1] -= int(ends[n_sessions - 1]) - n_clicks
    return lengths


def choose_buy_sessions(
    rng: np.random.Generator, lengths: np.ndarray, n_buys: int
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted session indices, buy rows per session) with exactly ``n_buys`` rows in all.

    Sessions are drawn without replacement with probability proportional to their length
    (Efraimidis-Spirakis keys); extra rows beyond one per session follow the same weights.
    """
    if n_buys == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    k = min(len(lengths), max(1, round(n_buys / BUYS_PER_SESSION)))
    keys = np.log(rng.random(len(lengths))) / lengths
    chosen = np.sort(np.argpartition(keys, len(keys) - k)[len(keys) - k :])
    w = lengths[chosen].astype(np.float64)
    counts = 1 + rng.multinomial(n_buys - k, w / w.sum())
    return chosen.astype(np.int64), counts.astype(np.int64)


def draw_items(rng: np.random.Generator, vocab: Vocabulary, n: int) -> np.ndarray:
    """Popularity ranks of ``n`` independent draws."""
    return np.searchsorted(vocab.cdf, rng.random(n), side="right").clip(max=N_ITEMS - 1)


def generate(workdir: Path, n_clicks: int, n_buys: int, seed: int, chunk_rows: int) -> dict:
    """Write the two raw files into ``workdir`` (unless identical ones exist); returns the sidecar."""
    params = {
        "clicks": n_clicks,
        "buys": n_buys,
        "seed": seed,
        "chunk_rows": chunk_rows,
        "generator_version": GENERATOR_VERSION,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    sidecar = load_sidecar(workdir)
    if sidecar is not None and sidecar.get("params") == params:
        files = sidecar.get("files", {})
        if all(
            (workdir / name).is_file() and (workdir / name).stat().st_size == size
            for name, size in files.items()
        ) and set(files) == {CLICKS_FILE, BUYS_FILE}:
            print(f"generate: {workdir} already holds this log ({params}); skipping")
            return sidecar
    (workdir / SIDECAR).unlink(missing_ok=True)

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary(rng)
    lengths = session_lengths(rng, n_clicks)
    n_sessions = len(lengths)
    session_ids = np.cumsum(1 + rng.poisson(MEAN_ID_GAP - 1.0, n_sessions)).astype(np.int64)
    session_ids += 1 - session_ids[0]
    buy_sessions, buy_counts = choose_buy_sessions(rng, lengths, n_buys)
    row_ends = np.cumsum(lengths)
    seen = np.zeros(N_ITEMS, dtype=bool)

    tmp_clicks = workdir / (CLICKS_FILE + ".tmp")
    tmp_buys = workdir / (BUYS_FILE + ".tmp")
    with open(tmp_clicks, "wb") as fc, open(tmp_buys, "wb") as fb:
        s0 = 0
        while s0 < n_sessions:
            base = int(row_ends[s0 - 1]) if s0 else 0
            s1 = int(np.searchsorted(row_ends, base + chunk_rows, side="right"))
            s1 = min(max(s1, s0 + 1), n_sessions)
            b0, b1 = np.searchsorted(buy_sessions, [s0, s1])
            write_chunk(
                rng,
                vocab,
                seen,
                fc,
                fb,
                first_session=s0,
                n_sessions=n_sessions,
                lengths=lengths[s0:s1],
                ids=session_ids[s0:s1],
                buy_sessions=buy_sessions[b0:b1] - s0,
                buy_counts=buy_counts[b0:b1],
            )
            s0 = s1
    tmp_clicks.replace(workdir / CLICKS_FILE)
    tmp_buys.replace(workdir / BUYS_FILE)
    seconds = time.perf_counter() - t0
    sidecar = {
        "params": params,
        "files": {name: (workdir / name).stat().st_size for name in (CLICKS_FILE, BUYS_FILE)},
        "stats": {
            "click_rows": n_clicks,
            "buy_rows": n_buys,
            "sessions": n_sessions,
            "sessions_ge3": int((lengths >= 3).sum()),
            "share_sessions_lt3": round(float((lengths < 3).mean()), 4),
            "mean_session_length": round(float(lengths.mean()), 3),
            "max_session_length": int(lengths.max()),
            "max_session_id": int(session_ids[-1]),
            "distinct_clicked_items": int(seen.sum()),
            "buy_sessions": len(buy_sessions),
        },
        "seconds": round(seconds, 1),
    }
    (workdir / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    sizes = ", ".join(f"{n}: {s / 1e9:.2f} GB" for n, s in sidecar["files"].items())
    print(f"generate: wrote {workdir} in {seconds:.1f} s ({sizes})")
    print(f"generate: {json.dumps(sidecar['stats'])}")
    return sidecar


def write_chunk(
    rng: np.random.Generator,
    vocab: Vocabulary,
    seen: np.ndarray,
    fc: BinaryIO,
    fb: BinaryIO,
    *,
    first_session: int,
    n_sessions: int,
    lengths: np.ndarray,
    ids: np.ndarray,
    buy_sessions: np.ndarray,
    buy_counts: np.ndarray,
) -> None:
    """Generate and append the clicks of consecutive sessions and the buys among them."""
    n = len(lengths)
    rows = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths  # first row of each session within the chunk
    pos = np.arange(rows) - np.repeat(starts, lengths)  # click index within its session

    # Session start: proportional to the session's rank over the six months, with some jitter.
    frac = (first_session + np.arange(n)) / max(n_sessions, 1)
    start_ms = T_START + (frac * (T_END - T_START - 24 * HOUR_MS)).astype(np.int64)
    start_ms += rng.normal(0.0, 2 * HOUR_MS, n).astype(np.int64)
    start_ms = T_START + np.abs(start_ms - T_START)  # reflect the jitter at the first day
    # Gaps between clicks: log-normal, median ~45 s, at least 1 ms, at most 3 h.
    gaps = np.clip(rng.lognormal(np.log(45_000.0), 1.3, rows), 1, 3 * HOUR_MS).astype(np.int64)
    gaps[pos == 0] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts], lengths)
    ts = np.repeat(start_ms, lengths) + elapsed

    ranks = draw_items(rng, vocab, rows)
    src = np.arange(rows)
    repeat = (pos > 0) & (rng.random(rows) < P_REPEAT)
    src[repeat] = 0
    ranks = ranks[np.maximum.accumulate(src)]
    seen[ranks] = True

    clicks = pl.DataFrame(
        {
            "session_id": np.repeat(ids, lengths),
            "timestamp": pl.Series(ts).cast(pl.Datetime("ms")),
            "item_id": vocab.ids[ranks],
            "category": vocab.categories.gather(ranks),
        }
    )
    clicks.write_csv(fc, include_header=False, datetime_format=ISO_MS)

    if len(buy_sessions) == 0:
        return
    nb = int(buy_counts.sum())
    bs = np.repeat(buy_sessions, buy_counts)  # chunk-local session index per buy row
    clicked = starts[bs] + (rng.random(nb) * lengths[bs]).astype(np.int64)
    b_ranks = np.where(rng.random(nb) < P_BUY_CLICKED, ranks[clicked], draw_items(rng, vocab, nb))
    last_click = ts[starts[buy_sessions] + lengths[buy_sessions] - 1]
    checkout = last_click + rng.integers(10_000, 900_000, len(buy_sessions))
    b_start = np.cumsum(buy_counts) - buy_counts
    steps = rng.integers(1, 5_000, nb)  # ms between the rows of one checkout
    steps[b_start] = 0
    b_elapsed = np.cumsum(steps)
    b_ts = np.repeat(checkout, buy_counts) + b_elapsed - np.repeat(b_elapsed[b_start], buy_counts)
    free = rng.random(nb) < 0.25  # price and quantity 0, as in part of the real buys
    price = np.where(free, 0, np.round(rng.lognormal(np.log(2500.0), 1.2, nb))).astype(np.int64)
    quantity = np.where(free, 0, rng.geometric(0.8, nb)).astype(np.int64)
    buys = pl.DataFrame(
        {
            "session_id": ids[bs],
            "timestamp": pl.Series(b_ts).cast(pl.Datetime("ms")),
            "item_id": vocab.ids[b_ranks],
            "price": price,
            "quantity": quantity,
        }
    )
    buys.write_csv(fb, include_header=False, datetime_format=ISO_MS)


def load_sidecar(workdir: Path) -> dict | None:
    try:
        return json.loads((workdir / SIDECAR).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# run


@dataclass
class Result:
    variant: str
    rows_in: int
    returncode: int
    wall_s: float
    cpu_s: float | None
    max_rss_kb: int | None
    manifest: dict[str, Any] = field(default_factory=dict)
    stages: list[tuple[str, float]] = field(default_factory=list)
    stderr_tail: str = ""
    cgroup: str = ""


_WRAPPER = """\
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[2:]).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "wall": wall, "maxrss_kb": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}, fh)
"""
_STAGE = re.compile(r"✓\s+(.+?)\s+\(([\d.]+) s\)")


def rlrec_command() -> list[str]:
    exe = Path(sys.executable).parent / "rlrec"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "rlrec"]


def measure(cmd: list[str]) -> tuple[int, float, float | None, int | None, str]:
    """Run ``cmd``; returns (returncode, wall s, cpu s, max RSS in KiB, stderr)."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        if gnu_time:
            full = [gnu_time, "-v", "-o", str(report), *cmd]
        else:
            full = [sys.executable, "-c", _WRAPPER, str(report), *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(full, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        text = report.read_text() if report.exists() else ""
    cpu: float | None = None
    rss: int | None = None
    if gnu_time:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        rss = int(m.group(1)) if m else None
        times = [re.search(rf"{k} time \(seconds\): ([\d.]+)", text) for k in ("User", "System")]
        if all(times):
            cpu = sum(float(t.group(1)) for t in times if t)
    elif text:
        data = json.loads(text)
        wall, cpu, rss = data["wall"], data["cpu"], data["maxrss_kb"]
    return proc.returncode, wall, cpu, rss, proc.stdout + proc.stderr


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            n += block.count(b"\n")
    return n


def run_variant(
    workdir: Path,
    variant: str,
    sample_sessions: int,
    rows_in: int,
    memory_limit: str,
    ulimit_gb: float | None,
    cgroup_gb: float | None = None,
) -> Result:
    out = workdir / "prepared" / variant
    cmd = [
        *rlrec_command(),
        "data",
        "prepare",
        "yoochoose",
        "--raw",
        str(workdir),
        "--out",
        str(out),
        "--overwrite",
    ]
    value = "null" if variant.startswith("unsampled") else str(sample_sessions)
    cmd += ["--set", f"source.sample_sessions={value}"]
    group = None
    if variant.endswith("-ooc"):
        cmd += ["--memory-limit", memory_limit]
        if ulimit_gb is not None:  # address-space cap: the command fails rather than exceed it
            cmd = ["bash", "-c", f'ulimit -v {int(ulimit_gb * 1024**2)} && exec "$@"', "-", *cmd]
        if cgroup_gb is not None:  # a memory cgroup (v1): resident memory and page cache capped
            group = Path(f"/sys/fs/cgroup/memory/rlrec-bench-{os.getpid()}")
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(int(cgroup_gb * 10**9)))
            cmd = ["bash", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "-", *cmd]
    print(f"run: {variant}: {' '.join(cmd)}", flush=True)
    try:
        rc, wall, cpu, rss, log = measure(cmd)
        result = Result(variant, rows_in, rc, wall, cpu, rss, stderr_tail=log[-2000:])
        if group is not None:
            peak = int((group / "memory.max_usage_in_bytes").read_text())
            words = (group / "memory.oom_control").read_text().split()
            oom = words[words.index("oom_kill") + 1] if "oom_kill" in words else "?"
            result.cgroup = (
                f"cgroup limit {cgroup_gb} GB: peak {peak / 1e9:.2f} GB, OOM kills {oom}"
            )
    finally:
        if group is not None:
            group.rmdir()
    # "writing /path/to/out" -> "writing", so both variants share the column
    result.stages = [(m.group(1).split(" /")[0], float(m.group(2))) for m in _STAGE.finditer(log)]
    if rc == 0:
        result.manifest = json.loads((out / "manifest.json").read_text())
    else:
        print(f"run: {variant} FAILED (exit {rc}):\n{log[-2000:]}", file=sys.stderr)
    return result


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| variant | rows in | events out | sessions out | items | wall s | CPU s | peak RSS (GB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        counts = r.manifest.get("counts", {})

        def num(v: Any) -> str:
            return f"{v:,}" if isinstance(v, int) else "–"

        cpu = f"{r.cpu_s:.1f}" if r.cpu_s is not None else "–"
        rss = f"{r.max_rss_kb / 1024**2:.2f}" if r.max_rss_kb is not None else "–"
        name = r.variant if r.returncode == 0 else f"{r.variant} (FAILED, exit {r.returncode})"
        lines.append(
            f"| {name} | {num(r.rows_in)} | {num(counts.get('events'))} | "
            f"{num(counts.get('sessions'))} | {num(r.manifest.get('n_items'))} | "
            f"{r.wall_s:.1f} | {cpu} | {rss} |"
        )
    stage_names = list(dict.fromkeys(name for r in results for name, _ in r.stages))
    if stage_names:
        lines += ["", "| variant | " + " | ".join(f"{s} s" for s in stage_names) + " |"]
        lines.append("|---|" + "---:|" * len(stage_names))
        for r in results:
            got = dict(r.stages)
            cells = [f"{got[s]:.1f}" if s in got else "–" for s in stage_names]
            lines.append(f"| {r.variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_facts() -> str:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kb) / 1024**2:.1f} GiB" if mem_kb.isdigit() else "?"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    facts = {
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "nproc (usable / total)": f"{usable} / {os.cpu_count()}",
        "memory": mem,
        "CPU": first("/proc/cpuinfo", "model name"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "numpy": np.__version__,
        "rlrec": _version("rlrec"),
        "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "(unset)"),
        "git": commit or "?",
    }
    return "\n".join(f"- {k}: {v}" for k, v in facts.items())


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def identical_dirs(a: Path, b: Path) -> bool:
    """Same file names and the same bytes in every file (what ``--memory-limit`` promises)."""
    if not (a.is_dir() and b.is_dir()):
        return False
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def run(
    workdir: Path,
    variants: list[str],
    sample_sessions: int,
    results_file: Path | None,
    memory_limit: str = "4GB",
    ulimit_gb: float | None = None,
    cgroup_gb: float | None = None,
) -> int:
    for name in (CLICKS_FILE, BUYS_FILE):
        if not (workdir / name).is_file():
            print(f"run: {workdir / name} is missing; run the generate step first", file=sys.stderr)
            return 2
    sidecar = load_sidecar(workdir)
    if sidecar is not None:
        rows_in = sidecar["params"]["clicks"] + sidecar["params"]["buys"]
        eligible = sidecar["stats"]["sessions_ge3"]
        if "sampled" in variants and sample_sessions > eligible:
            print(
                f"run: cannot sample {sample_sessions:,} sessions, the log has only {eligible:,} "
                "with >= 3 clicks; lower --sample-sessions",
                file=sys.stderr,
            )
            return 2
    else:
        rows_in = count_lines(workdir / CLICKS_FILE) + count_lines(workdir / BUYS_FILE)
    results = [
        run_variant(workdir, v, sample_sessions, rows_in, memory_limit, ulimit_gb, cgroup_gb)
        for v in variants
    ]
    same = [f"{r.variant}: {r.cgroup}" for r in results if r.cgroup]
    for name in ("unsampled", "sampled"):
        if {name, f"{name}-ooc"} <= set(variants):
            a, b = workdir / "prepared" / name, workdir / "prepared" / f"{name}-ooc"
            identical = identical_dirs(a, b)
            same.append(f"{name} in memory vs out of core: byte-identical {identical}")
    header = f"### rlrec data prepare yoochoose — {workdir}"
    if sidecar is not None:
        header += f"\n\nsynthetic log: {json.dumps(sidecar['params'])}"
    if "sampled" in variants:
        header += f"\n\nsampled variant: source.sample_sessions={sample_sessions}"
    if any(v.endswith("-ooc") for v in variants):
        cap = f", address space capped at {ulimit_gb} GB (ulimit -v)" if ulimit_gb else ""
        cap += f", in a memory cgroup of {cgroup_gb} GB" if cgroup_gb else ""
        header += f"\n\nout-of-core variants: --memory-limit {memory_limit}{cap}"
    table = "\n".join([markdown_table(results), "", *same])
    text = f"{header}\n\n{table}\n\nMachine:\n\n{machine_facts()}\n"
    print()
    print(text)
    if results_file is not None:
        results_file.parent.mkdir(parents=True, exist_ok=True)
        with open(results_file, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"appended to {results_file}")
    return 0 if all(r.returncode == 0 for r in results) else 1


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--clicks", type=int, default=33_000_000, help="click rows to generate")
    ap.add_argument("--buys", type=int, default=1_100_000, help="buy rows to generate")
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="raw files go here")
    ap.add_argument("--only", choices=("generate", "run", "all"), default="all")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of: " + ",".join(VARIANTS) + " (-ooc: with --memory-limit)",
    )
    ap.add_argument(
        "--sample-sessions",
        type=int,
        default=200_000,
        help="source.sample_sessions of the sampled variant (the config default is 200000)",
    )
    ap.add_argument("--chunk-rows", type=int, default=2_000_000, help="click rows per chunk")
    ap.add_argument(
        "--memory-limit", default="4GB", help="rlrec's --memory-limit for the -ooc variants"
    )
    ap.add_argument(
        "--ulimit-gb", type=float, default=None, help="cap the -ooc runs' address space (GB)"
    )
    ap.add_argument(
        "--cgroup-gb",
        type=float,
        default=None,
        help="run the -ooc variants in a memory cgroup (v1, needs root) of this many GB",
    )
    ap.add_argument("--results", type=Path, default=None, help="append the report to this file")
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        ap.error(f"--variants: expected a subset of {','.join(VARIANTS)}, got {args.variants!r}")
    if args.clicks < 1 or args.buys < 0 or args.buys > args.clicks or args.chunk_rows < 1:
        ap.error("need clicks >= 1, 0 <= buys <= clicks and chunk-rows >= 1")
    workdir = args.workdir.resolve()
    if args.only in ("generate", "all"):
        generate(workdir, args.clicks, args.buys, args.seed, args.chunk_rows)
    if args.only in ("run", "all"):
        return run(
            workdir,
            variants,
            args.sample_sessions,
            args.results,
            args.memory_limit,
            args.ulimit_gb,
            args.cgroup_gb,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
