"""Training and evaluation throughput of the shipped offline configs on MovieLens-100K, as users get it.

For every shipped config (``configs/ccql/rc15/*``: SASRec ``ccql_torch``, paper and legacy forms;
``configs/rc15/*``: GRU, Caser, NextItNet and SASRec ``xin_tf`` × supervised, SQN, SAC, SNQN, SA2C,
DQN) with ``data`` set to ML-100K (batch 256, hidden 64, window 10 as shipped):

* **CLI** — ``rlrec train`` as a child process, ``--warmup + --steps`` steps, a log record every
  ``--log-every`` steps; the rate is the median of the windows after ``--warmup``
  (``transitions_per_s`` of the train log: training time only, validation and checkpoints
  excluded). Phase switches (SAC/CO/CCQL warm-up, SA2C pre-training) are moved to step 20, so the
  windows measure the second, costlier phase;
* **kernel** — the same trainer's step function in a loop (no logging, evaluation or checkpoints),
  in a fresh child process like the CLI's, timed in windows of ``--log-every`` steps and given as
  the median window like the CLI's: the upper bound of the CLI rate. CLI and kernel runs
  alternate ``--repeats`` times and each rate is the median of its runs, so a drift of the machine
  hits both alike;
* **breakdown** (``--breakdown``) — where a kernel step's time goes, from the torch profiler:
  ops on catalogue-sized tensors (the ``[B, n]`` heads, their log-softmax, the item embedding's
  gradient), the optimiser (Adam and ``zero_grad``), and the rest of forward and backward;
* **lean probe** — ``../shared/tools/lean_sasrec_bench.py --steps 100`` (a minimal plain-PyTorch
  SASRec outside the project), run in the same invocation: speed claims are ratios to it;
* **evaluation** — ``rlrec evaluate RUN --split test`` on a SASRec run (full catalogue), its own
  scored events/s, the median of 5 processes.

    .venv/bin/python benchmarks/offline_throughput.py [--threads 2] [--steps 300] [--only rc15/sa2c]
    .venv/bin/python benchmarks/offline_throughput.py --threads 1 --only ccql/rc15   # 1 vs 2 threads
    .venv/bin/python benchmarks/offline_throughput.py --breakdown --only ccql/rc15 rc15/sa2c_sasrec
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rlrec.config import build_config
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.prepare import PrepareConfig, prepare
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
PROBE = ROOT.parent / "shared" / "tools" / "lean_sasrec_bench.py"
WORK = ROOT / "benchmarks" / "_work"
SWITCH = {"sac": "warmup_steps", "co": "warmup_steps", "ccql": "warmup_steps"}
SWITCH_AT = 20


def label(config: Path) -> str:
    """``ccql/rc15/sasrec``: the config's path under ``configs/`` without the suffix."""
    return str(config.relative_to(ROOT / "configs").with_suffix(""))


def ml100k() -> Path:
    out = WORK / "ml100k"
    if not (out / "manifest.json").exists():
        prepare(PrepareConfig(source=RecBoleSource(path=ML100K)), out, overwrite=True)
    return out


def shipped_configs() -> list[Path]:
    ccql = sorted((ROOT / "configs" / "ccql" / "rc15").glob("*.yaml"))
    rc15 = sorted(
        p
        for p in (ROOT / "configs" / "rc15").glob("*.yaml")
        if re.fullmatch(r"(supervised|sqn|sac|snqn|sa2c)_\w+|table4_dqn_gru_qhead", p.stem)
    )
    return ccql + rc15


def overrides(config: Path, data: Path, out: Path, steps: int, log_every: int, threads: int):
    """``--set`` overrides: ML-100K, a bounded run, no evaluation before the end, phase 2 early."""
    kind = build_config(TrainConfig, path=config, overrides=[f"data={data}"]).objective.kind
    sets = {
        "data": data,
        "out": out,
        "train.max_steps": steps,
        "train.log_every": log_every,
        "train.eval_every": 10**9,
        "train.tensorboard": "false",
        "train.num_threads": threads,
    }
    if kind in SWITCH:
        sets[f"objective.{SWITCH[kind]}"] = SWITCH_AT
    if kind == "sa2c":
        sets["objective.pretrain_steps"] = SWITCH_AT
    return [f"{k}={v}" for k, v in sets.items()]


def cli_rate(config: Path, data: Path, args: argparse.Namespace) -> tuple[float, Path]:
    """Median ``transitions_per_s`` of ``rlrec train``'s windows after the warm-up."""
    out = WORK / "throughput" / args.tag / label(config).replace("/", "_")
    sets = overrides(config, data, out, args.warmup + args.steps, args.log_every, args.threads)
    command = [sys.executable, "-m", "rlrec", "train", "--config", str(config), "--overwrite"]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [
        r["transitions_per_s"] for r in records if r["kind"] == "train" and r["step"] > args.warmup
    ]
    return statistics.median(rates), out


def kernel_trainer(config: Path, data: Path, args: argparse.Namespace) -> Trainer:
    out = WORK / "throughput" / args.tag / "kernel"
    sets = overrides(config, data, out, 10**6, 10**9, args.threads)
    return Trainer(build_config(TrainConfig, path=config, overrides=sets), overwrite=True)


def kernel_steps(trainer: Trainer) -> Callable[[int, int], None]:
    """``run(first, last)``: the trainer's step function on steps ``first..last-1``, nothing else."""
    batch = trainer.cfg.train.batch_size
    order = torch.randperm(len(trainer.train_data), generator=torch.Generator().manual_seed(0))
    order = order.to(trainer.device)

    def run(first: int, last: int) -> None:
        for i in range(first, last):
            trainer.step = SWITCH_AT + i
            j = i % trainer.steps_per_epoch
            trainer._train_step(order[j * batch : (j + 1) * batch])

    return run


def discard(trainer: Trainer) -> None:
    trainer.claim.fail()  # leave no half-made run behind
    trainer.claim.close()


def kernel_child(config: Path, data: Path, args: argparse.Namespace) -> None:
    """In the child process: time the step loop (or profile it) and print the result as JSON."""
    if args.breakdown:  # one profiler session per process: a second one runs slower
        print(json.dumps(breakdown(config, data, args)))
        return
    trainer = kernel_trainer(config, data, args)
    run = kernel_steps(trainer)
    run(0, args.warmup)
    rates = []  # windows of --log-every steps, as the CLI's log records
    for first in range(args.warmup, args.warmup + args.steps, args.log_every):
        t0 = time.perf_counter()
        run(first, first + args.log_every)
        rates.append(args.log_every * trainer.cfg.train.batch_size / (time.perf_counter() - t0))
    discard(trainer)
    print(json.dumps({"kernel_rate": statistics.median(rates)}))


def in_child(config: Path, args: argparse.Namespace) -> dict[str, float]:
    """:func:`kernel_child` in a fresh process (same config and threads)."""
    command = [sys.executable, __file__, "--kernel-child", str(config), "--tag", args.tag]
    command += ["--threads", str(args.threads), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup), "--log-every", str(args.log_every)]
    command += ["--breakdown"] if args.breakdown else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


BUCKETS = ("catalogue-sized ops", "optimiser", "other backward", "other forward, loss, grad norm")


def breakdown(config: Path, data: Path, args: argparse.Namespace, steps: int = 40) -> dict:
    """ms per kernel step by :data:`BUCKETS`, from the profiler's self CPU times.

    An op counts as catalogue-sized when one of its inputs has a dimension of ``n`` or ``n + 1``
    (heads, log-softmax, item embedding and its gradient); ``Optimizer.*`` record functions are the
    optimiser; autograd-engine descendants are backward. The profiler slows a step down (its
    ``wall_ms`` is above the unprofiled kernel's), so the shares are what carries over.
    """
    from torch.profiler import ProfilerActivity, profile

    trainer = kernel_trainer(config, data, args)
    n = trainer.n_items
    run = kernel_steps(trainer)
    run(0, args.warmup)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        run(args.warmup, args.warmup + steps)
        wall = time.perf_counter() - t0
    discard(trainer)
    totals = dict.fromkeys(BUCKETS, 0.0)
    events = prof.events()
    for event in events:
        chain, node = [], event
        while node is not None:
            chain.append(node)
            node = node.cpu_parent
        names = [e.name for e in chain]
        if any(x.startswith("Optimizer.") for x in names):
            bucket = "optimiser"
        elif any(n in dims or n + 1 in dims for e in chain for dims in _dims(e)):
            bucket = "catalogue-sized ops"
        elif any(x.startswith("autograd::engine") for x in names):
            bucket = "other backward"
        else:
            bucket = "other forward, loss, grad norm"
        totals[bucket] += event.self_cpu_time_total / 1e3 / steps
    profiled = sum(totals.values())
    ops = sum(e.name.startswith("aten::") for e in events) / steps
    return {"wall_ms": wall / steps * 1e3, "profiled_ms": profiled, "aten_ops": ops, **totals}


def _dims(event) -> list[list[int]]:
    return [shape for shape in (event.input_shapes or []) if isinstance(shape, list)]


def lean_probe(threads: int) -> dict[str, float]:
    text = subprocess.run(
        [sys.executable, str(PROBE), "--steps", "100", "--threads", str(threads)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(text.strip())
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+) transitions/s", text, re.M)}


def yardstick(config: Path, data: Path) -> str:
    """The lean-probe row a config is compared with (issue targets: supervised / SQN / SNQN)."""
    kind = build_config(TrainConfig, path=config, overrides=[f"data={data}"]).objective.kind
    return {"supervised": "supervised", "sqn": "sqn", "sac": "sqn"}.get(kind, "snqn")


def eval_rate(run: Path, repeats: int = 5) -> float:
    """Median scored events/s of ``repeats`` ``rlrec evaluate`` processes (one takes ≈ 0.1 s)."""
    report = run.parent / "evaluate.json"
    command = [sys.executable, "-m", "rlrec", "evaluate", str(run), "--out", str(report)]
    rates = []
    for _ in range(repeats):
        subprocess.run([*command, "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        rates.append(float(json.loads(report.read_text())["events_per_s"]))
    return statistics.median(rates)


def print_breakdowns(configs: list[Path], args: argparse.Namespace) -> None:
    print("| config | ms/step (profiled) | aten ops/step | " + " | ".join(BUCKETS) + " |")
    print("|---|---:|---:|" + "---:|" * len(BUCKETS))
    for config in configs:
        parts = in_child(config, args)
        total = parts["profiled_ms"]
        cells = [f"{parts[b]:.2f} ({100 * parts[b] / total:.0f} %)" for b in BUCKETS]
        head = f"| {label(config)} | {parts['wall_ms']:.2f} | {parts['aten_ops']:.0f} | "
        print(head + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300, help="measured steps per config")
    parser.add_argument("--warmup", type=int, default=60, help="untimed steps first")
    parser.add_argument("--log-every", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2, help="CLI and kernel runs per config")
    parser.add_argument("--only", nargs="+", help="configs whose dir/stem starts with these")
    parser.add_argument("--tag", default="main", help="work subdirectory (for concurrent runs)")
    parser.add_argument("--breakdown", action="store_true", help="profile kernel steps instead")
    parser.add_argument("--kernel-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = ml100k()
    if args.kernel_child:
        kernel_child(args.kernel_child, data, args)
        return
    configs = shipped_configs()
    if args.only:
        configs = [c for c in configs if label(c).startswith(tuple(args.only))]
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {args.threads} threads; ML-100K, {args.steps} steps after {args.warmup}"
    )
    if args.breakdown:
        print_breakdowns(configs, args)
        return
    probe = lean_probe(args.threads)
    print("| config | CLI transitions/s | kernel | CLI/kernel | × lean probe (row) |")
    print("|---|---:|---:|---:|---:|")
    sasrec_run = None
    for config in configs:
        clis, kernels = [], []
        for _ in range(args.repeats):
            cli, run = cli_rate(config, data, args)
            clis.append(cli)
            kernels.append(in_child(config, args)["kernel_rate"])
        cli, kernel = statistics.median(clis), statistics.median(kernels)
        row = yardstick(config, data)
        name = label(config)
        print(
            f"| {name} | {cli:,.0f} | {kernel:,.0f} | {cli / kernel:.2f} | "
            f"{cli / probe[row]:.2f} ({row}) |",
            flush=True,
        )
        if name == "ccql/rc15/sasrec":
            sasrec_run = run
    if sasrec_run is not None:
        rate = eval_rate(sasrec_run)
        print(
            f"rlrec evaluate (SASRec, full catalogue, test split): {rate:,.0f} events/s = "
            f"{rate / probe['supervised']:.1f} × lean supervised"
        )
    probe_after = lean_probe(args.threads)
    print("lean probe after: " + ", ".join(f"{k} {v:,.0f}" for k, v in probe_after.items()))


if __name__ == "__main__":
    main()
