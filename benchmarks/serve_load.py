"""Load on ``rlrec serve`` over loopback: requests/s and latency at 32 concurrent clients.

Target (issue "Serve and export"): ≥ 1,000 single-history requests/s at 32 concurrent clients with
p99 ≤ 25 ms, on the MovieLens-100K SASRec run, server and client sharing the machine's 2 cores;
micro-batching on and off side by side, and the latency of one request alone.

Setup: ML-100K prepared as in ``configs/data/ml100k.yaml`` (user = session, 8:1:1 split, window
10) and a supervised SASRec (hidden 64) trained for ``--epochs`` epochs with ``rlrec train``, under
``benchmarks/_work/serve_load/`` (reused when present). The server is the real ``rlrec serve``
process on 127.0.0.1, started fresh for each setting; the client is an ``aiohttp`` client session
in this process (``httpx``'s asynchronous client, tried first, topped out at 210 requests/s at 32
connections while using more than a core itself: it measured the client, not the server) with
``--clients`` concurrent workers, each sending ``POST /v1/recommend``
``{"history": ..., "k": 10}`` for a test-split history (every prefix of ≤ 50 items of the test
users, drawn at random) as soon as its previous answer arrived, for ``--seconds`` seconds after a
warm-up. Latency is the client's: from sending the request to the parsed JSON answer. Every answer
is checked (status 200, 10 items).

    .venv/bin/python benchmarks/serve_load.py [--clients 32] [--seconds 15] [--epochs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import polars as pl

from rlrec.serve.server import wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "serve_load"
RLREC = [sys.executable, "-m", "rlrec"]


def ensure_run(epochs: int) -> Path:
    """The ML-100K SASRec run (prepared and trained through the CLI when missing)."""
    data, run = WORK / "data", WORK / "sasrec"
    if not (data / "manifest.json").exists():
        subprocess.run(
            [
                *RLREC,
                *("data", "prepare", "recbole", "--config", "configs/data/ml100k.yaml"),
                *("--raw", str(ML100K), "--out", str(data), "--overwrite"),
            ],
            check=True,
            cwd=ROOT,
        )
    if not (run / "summary.json").exists():
        config = WORK / "sasrec.yaml"
        config.write_text(
            f"data: {data}\nout: {run}\nseed: 0\n"
            "encoder: {kind: sasrec, hidden: 64, dropout: 0.1}\n"
            "objective: {kind: supervised, lr: 0.005}\n"
            f"train: {{batch_size: 256, epochs: {epochs}, tensorboard: false}}\n"
        )
        subprocess.run([*RLREC, "train", "--config", str(config), "--overwrite"], check=True)
    return run


def histories(run: Path, limit: int = 50) -> list[list[Any]]:
    """Every prefix (up to ``limit`` items) of the test sessions' item sequences, in raw ids."""
    events = pl.read_parquet(WORK / "data" / "test.parquet").sort("session_id", "timestamp")
    items = pl.read_parquet(run / "items.parquet").with_columns(pl.col("item").cast(pl.Int32))
    events = events.join(items, on="item", how="left", maintain_order="left")
    out = []
    for seq in events.group_by("session_id", maintain_order=True).agg("item_id")["item_id"]:
        seq = seq.to_list()
        out += [seq[max(0, i - limit) : i] for i in range(1, len(seq) + 1)]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*RLREC, "serve", str(run), "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(proc, port)
    except RuntimeError as exc:
        proc.kill()
        raise SystemExit(str(exc)) from None
    return proc


async def load(port: int, pool: list[list[Any]], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` closed-loop workers for ``seconds`` (after 2 s of warm-up)."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as session:
        t_start = time.perf_counter()
        t_measure, t_end = t_start + 2.0, t_start + 2.0 + seconds

        async def worker(seed: int) -> None:
            nonlocal errors
            rng = random.Random(seed)
            while (now := time.perf_counter()) < t_end:
                body = {"history": rng.choice(pool), "k": 10}
                async with session.post("/v1/recommend", json=body) as r:
                    ok = r.status == 200 and len((await r.json())["items"]) == 10
                if now >= t_measure:
                    latencies.append(time.perf_counter() - now)
                    errors += not ok

        await asyncio.gather(*(worker(i) for i in range(clients)))
    return summarise(latencies, seconds, errors)


def summarise(latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rps": len(latencies) / seconds,
        "p50": q[49] * 1000,
        "p90": q[89] * 1000,
        "p99": q[98] * 1000,
        "n": len(latencies),
        "errors": errors,
    }


def alone(port: int, pool: list[list[Any]], n: int = 500) -> dict[str, float]:
    """One client, one request at a time."""
    rng = random.Random(0)
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(n + 50):
            t = time.perf_counter()
            r = client.post("/v1/recommend", json={"history": rng.choice(pool), "k": 10})
            assert r.status_code == 200
            if i >= 50:
                latencies.append(time.perf_counter() - t)
    return summarise(latencies, sum(latencies), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    run = ensure_run(args.epochs)
    pool = histories(run)
    import torch

    print(
        f"torch {torch.__version__}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f}; {len(pool):,} test histories; {args.clients} clients, "
        f"{args.seconds:.0f} s per setting"
    )
    print("| setting | requests/s | p50 ms | p90 ms | p99 ms | requests | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    settings = [
        ("micro-batching on (max batch 64, no wait)", []),
        ("micro-batching off (--max-batch 1)", ["--max-batch", "1"]),
    ]
    for name, options in settings:
        port = free_port()
        proc = start(run, port, *options)
        try:
            r = asyncio.run(load(port, pool, args.clients, args.seconds))
            if not options:
                single = alone(port, pool)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(
            f"| {name} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} "
            f"| {r['n']:,} | {r['errors']} |",
            flush=True,
        )
    print(
        f"| one request alone (1 client) | {single['rps']:,.0f} | {single['p50']:.1f} "
        f"| {single['p90']:.1f} | {single['p99']:.1f} | {single['n']:,} | 0 |"
    )


if __name__ == "__main__":
    main()
