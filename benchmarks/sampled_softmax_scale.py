"""Training on a 1,000,000-item catalogue: full softmax against sampled softmax with lazy sparse
updates, side by side in one run.

Target (issue "Scale"): SASRec supervised with 1,024 sampled negatives ≥ 20 steps/s and SNQN/SA2C
≥ 5 steps/s, peak memory ≤ 4 GB, on 2 cores (full softmax: 0.43 and 0.14 steps/s, 8.06 GB).

Data: the 1M-item synthetic log of ``scale_1m_items.py`` (generated and prepared under
``benchmarks/_work/scale_1m/`` if missing). Each variant trains SASRec (hidden 64, batch 256) with
``rlrec train``'s trainer for ``--steps`` optimiser steps in **its own process** (so its peak RSS is
its own), with no validation; steps/s is the median of the per-step times after the first
``--warmup`` steps. Variants:

* ``full``: the full softmax over the catalogue, dense Adam (today's default);
* ``sampled``: ``objective.ce_negatives: 1024`` (uniform, log-Q), dense Adam;
* ``sampled+sparse``: the same with ``train.sparse_items: true`` (row-sparse gradients, lazy Adam);
* for SNQN also ``target_chunk: 65536`` with the last (the double-Q target's max over the catalogue
  in column chunks), and ``target_max: candidates`` (the max over the step's candidates and logged
  actions only), each also with ``train.sparse_moments: bfloat16`` (the lazy Adam's moments stored
  in bfloat16, stochastically rounded);
* SA2C in its actor phase (``pretrain_steps: 0``) with the candidate target, float32 and bfloat16
  moments.

    .venv/bin/python benchmarks/sampled_softmax_scale.py [--steps 20] [--warmup 3] [--only snqn sa2c]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parents[1] / "benchmarks" / "_work" / "scale_1m"

VARIANTS: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "supervised": [
        ("full", {}, {}),
        ("sampled", {"ce_negatives": 1024}, {}),
        ("sampled+sparse", {"ce_negatives": 1024}, {"sparse_items": True}),
    ],
    "snqn": [
        ("full", {}, {}),
        ("sampled", {"ce_negatives": 1024}, {}),
        ("sampled+sparse", {"ce_negatives": 1024}, {"sparse_items": True}),
        (
            "sampled+sparse+chunked target",
            {"ce_negatives": 1024, "target_chunk": 65536},
            {"sparse_items": True},
        ),
        (
            "sampled+sparse+candidate target",
            {"ce_negatives": 1024, "target_max": "candidates"},
            {"sparse_items": True},
        ),
        (
            "sampled+sparse+chunked target+bf16 moments",
            {"ce_negatives": 1024, "target_chunk": 65536},
            {"sparse_items": True, "sparse_moments": "bfloat16"},
        ),
        (
            "sampled+sparse+candidate target+bf16 moments",
            {"ce_negatives": 1024, "target_max": "candidates"},
            {"sparse_items": True, "sparse_moments": "bfloat16"},
        ),
    ],
    # the actor phase from the first step (pretrain_steps 0): SNQN's step + the advantage weights
    "sa2c": [
        (
            "sampled+sparse+candidate target",
            {"ce_negatives": 1024, "target_max": "candidates", "pretrain_steps": 0},
            {"sparse_items": True},
        ),
        (
            "sampled+sparse+candidate target+bf16 moments",
            {"ce_negatives": 1024, "target_max": "candidates", "pretrain_steps": 0},
            {"sparse_items": True, "sparse_moments": "bfloat16"},
        ),
    ],
}


def ensure_data() -> Path:
    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.data.synthetic import SynthConfig, write_synthetic

    raw, data = WORK / "raw", WORK / "data"
    if not (raw / "events.parquet").exists():
        synth = SynthConfig(n_sessions=1_050_000, n_items=1_000_000, n_topics=2000, seed=0)
        write_synthetic(synth, raw, overwrite=True)
    if not (data / "manifest.json").exists():
        prepare(PrepareConfig(source=SyntheticSource(path=raw)), data, overwrite=True)
    return data


def child(spec: dict[str, Any]) -> None:
    """One variant in this process: print a JSON line with its step times and peak RSS."""
    import torch

    from rlrec.config import build_config
    from rlrec.train.config import TrainConfig
    from rlrec.train.trainer import Trainer

    torch.set_num_threads(2)
    cfg = build_config(
        TrainConfig,
        cli={
            "data": spec["data"],
            "out": str(WORK / "sampled_runs" / spec["name"].replace("+", "_").replace(" ", "_")),
            "encoder": {"kind": "sasrec", "hidden": 64},
            "objective": {"kind": spec["objective"], **spec["objective_extra"]},
            "train": {
                "batch_size": 256,
                "max_steps": spec["steps"],
                "eval_every": 10**9,
                "tensorboard": False,
                "num_threads": 2,
                **spec["train_extra"],
            },
        },
    )
    trainer = Trainer(cfg, overwrite=True)
    g = torch.Generator().manual_seed(0)
    n = len(trainer.train_data)
    times = []
    for step in range(spec["steps"]):
        trainer.step = step
        pos = torch.randint(0, n, (256,), generator=g)
        t = time.perf_counter()
        trainer._train_step(pos)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"times": times, "peak_gb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", choices=list(VARIANTS), nargs="*", default=list(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    data = ensure_data()
    import torch

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; SASRec hidden 64, batch 256, {args.steps} steps per variant "
        f"(median after {args.warmup})"
    )
    print("| objective | variant | steps/s | s/step | peak RSS GB |")
    print("|---|---|---:|---:|---:|")
    for objective in args.only:
        for name, obj_extra, train_extra in VARIANTS[objective]:
            spec = {
                "data": str(data),
                "name": f"{objective}_{name}",
                "objective": objective,
                "objective_extra": obj_extra,
                "train_extra": train_extra,
                "steps": args.steps,
            }
            out = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            per_step = statistics.median(result["times"][args.warmup :])
            print(
                f"| {objective} | {name} | {1 / per_step:.2f} | {per_step:.3f} "
                f"| {result['peak_gb']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
