"""Offline RL methods on real data: MovieLens-100K, SASRec and GRU, 3 seeds.

Protocol (shared/datasets/README.md): one session per user, rating ≥ 4 = purchase, users split
8:1:1 with seed 0 (the same split for every run), state window 10. Each run trains for ``--epochs``
epochs with the paper's hyper-parameters otherwise (the shipped ``configs/ml100k/`` files: batch
256, hidden 64, lr 0.01, γ 0.5, r_click 0.2, r_buy 1.0, K 10), evaluates the validation split after every epoch, keeps the checkpoint
with the best validation purchase NDCG@10 and reports its **test** metrics — the test split is never
used for any choice. SAC's warm-up and SA2C's pre-training are ``--switch`` steps (the paper's 15,000
is longer than this whole run; ML-100K has ≈ 310 steps per epoch).

    .venv/bin/python benchmarks/ml100k_quality.py              # run everything (resumes finished runs)
    .venv/bin/python benchmarks/ml100k_quality.py --encoders gru   # only the GRU rows
    .venv/bin/python benchmarks/ml100k_quality.py --report     # print the table from finished runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from rlrec.config import build_config
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.prepare import PrepareConfig, prepare
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "ml100k_quality"
METHODS = ("supervised", "sqn", "sac", "snqn", "sa2c")
ENCODERS = ("sasrec", "gru")
COLUMNS = [
    f"{m}_{t}@{k}" for t in ("purchase", "click") for m in ("hr", "ndcg") for k in (5, 10, 20)
]


def run_config(encoder: str, method: str, seed: int, epochs: int, switch: int, threads: int):
    """The shipped ``configs/ml100k/<method>_<encoder>.yaml`` with this run's data, output, seed,
    budget and phase switch."""
    switch_key = {"sac": "warmup_steps", "sa2c": "pretrain_steps"}.get(method)
    overrides = [
        f"data={WORK / 'data'}",
        f"out={WORK / 'runs' / f'{encoder}_{method}_s{seed}'}",
        f"seed={seed}",
        f"train.epochs={epochs}",
        f"train.num_threads={threads}",
        "train.tensorboard=false",
    ] + ([f"objective.{switch_key}={switch}"] if switch_key else [])
    path = ROOT / "configs" / "ml100k" / f"{method}_{encoder}.yaml"
    return build_config(TrainConfig, path=path, overrides=overrides)


def run_all(epochs: int, switch: int, seeds: list[int], threads: int, encoders: list[str]) -> None:
    data = WORK / "data"
    if not (data / "manifest.json").exists():
        prepare(PrepareConfig(source=RecBoleSource(path=ML100K), seed=0), data, overwrite=True)
    torch.set_num_threads(threads)
    for encoder in encoders:
        for method in METHODS:
            for seed in seeds:
                cfg = run_config(encoder, method, seed, epochs, switch, threads)
                if (cfg.out / "summary.json").exists():
                    continue
                t0 = time.perf_counter()
                summary = Trainer(cfg, overwrite=True).fit()
                print(
                    f"{encoder} {method} seed {seed}: {time.perf_counter() - t0:.0f} s, test purchase NDCG@10 {summary['test']['ndcg_purchase@10']:.4f}",
                    flush=True,
                )


def report() -> None:
    rows = {}
    for path in sorted((WORK / "runs").glob("*/summary.json")):
        s = json.loads(path.read_text())
        rows.setdefault((s["encoder"], s["objective"]), []).append(s)
    header = (
        "| model | seeds | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " | s/epoch |"
    )
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 3))
    for encoder in ENCODERS:
        for method in METHODS:
            runs = rows.get((encoder, method), [])
            if not runs:
                continue
            cells = []
            for col in COLUMNS:
                vals = [r["test"][col] for r in runs]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.4f} ± {sd:.4f}")
            epoch_s = statistics.mean(r["seconds_per_epoch"] for r in runs)
            name = (
                encoder.upper() if method == "supervised" else f"{encoder.upper()}-{method.upper()}"
            )
            print(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {epoch_s:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--switch", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if not args.report:
        run_all(args.epochs, args.switch, args.seeds, args.threads, args.encoders)
    report()


if __name__ == "__main__":
    main()
