"""Training and evaluation throughput of the offline objectives on MovieLens-100K.

Measures, for SASRec (hidden 64, window 10, batch 256) on 2 CPU threads: transitions trained per
second for supervised, SQN, SNQN, SA2C (after its switch, i.e. the actor-critic loss), SASRec-AC,
SASRec-CO and SASRec-CCQL (paper form and the code's legacy form, with the configs' gradient clamp),
full catalogue evaluation speed on the test split (scored events/s), and peak RSS of the process.
Targets (issue "Offline RL"): supervised ≥ 15,000/s; SQN, SNQN, SA2C ≥ 8,000/s; evaluation
≥ 50,000 events/s; peak training memory ≤ 1 GB. (Issue "Conservative"): SASRec-CCQL ≥ 3,000/s,
SASRec-CO ≥ 4,000/s.

Run from the repository root (prepares ML-100K into benchmarks/_work/ml100k on first use):

    .venv/bin/python benchmarks/offline_throughput.py [--steps 300] [--encoder sasrec] [--only co ccql]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import torch

from rlrec.config import build_config
from rlrec.data.dataset import PreparedDataset
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.prepare import PrepareConfig, prepare
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work"


def ml100k() -> Path:
    out = WORK / "ml100k"
    if not (out / "manifest.json").exists():
        prepare(PrepareConfig(source=RecBoleSource(path=ML100K)), out, overwrite=True)
    return out


def train_rate(
    data: Path, encoder: str, objective: dict, steps: int, warmup: int, train: dict | None = None
) -> tuple[float, float]:
    """(training transitions/s over ``steps`` steps after ``warmup`` untimed ones, eval events/s)."""
    out = WORK / "throughput_run"
    cfg = build_config(
        TrainConfig,
        cli={
            "data": str(data),
            "out": str(out),
            "encoder": {"kind": encoder},
            "objective": objective,
            "train": {
                "batch_size": 256,
                "max_steps": warmup + steps,
                "eval_every": 10**9,
                "log_every": 10**9,
                "tensorboard": False,
                "num_threads": 2,
                **(train or {}),
            },
        },
    )
    trainer = Trainer(cfg, overwrite=True)
    order = torch.randperm(len(trainer.train_data), generator=torch.Generator().manual_seed(0))
    for i in range(warmup):
        trainer.step = i
        trainer._train_step(order[i * 256 : (i + 1) * 256])
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        trainer.step = i
        trainer._train_step(
            order[(i % trainer.steps_per_epoch) * 256 : (i % trainer.steps_per_epoch + 1) * 256]
        )
    elapsed = time.perf_counter() - t0
    rate = steps * 256 / elapsed
    eval_t0 = time.perf_counter()
    metrics = trainer.evaluate_split("test")
    eval_rate = metrics["n_events"] / (time.perf_counter() - eval_t0)
    trainer.tracker.close()  # type: ignore[union-attr]
    shutil.rmtree(out, ignore_errors=True)
    return rate, eval_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--encoder", default="sasrec")
    parser.add_argument("--only", nargs="+", help="run only the cases whose name starts with these")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = ml100k()
    ds = PreparedDataset.load(data)
    print(
        f"ML-100K train transitions: {ds.manifest['splits']['train']['events']}, items {ds.n_items}"
    )
    legacy = {"sac_weighting": "legacy_batch_mean", "target_dropout": True}
    legacy_co = {"loss": "ts2vec_legacy", "augmentation": "permutation_legacy"}
    clamp = {"grad_clip_value": 1.0}
    cases: dict[str, tuple[dict, dict]] = {
        "supervised": ({"kind": "supervised"}, {}),
        "sqn": ({"kind": "sqn"}, {}),
        "snqn": ({"kind": "snqn"}, {}),
        "sa2c (actor-critic phase)": ({"kind": "sa2c", "pretrain_steps": 0}, {}),
        "sasrec-ac (sac, actor phase)": ({"kind": "sac", "warmup_steps": 0}, {}),
        "co (paper: NT-Xent, reorder)": ({"kind": "co", "warmup_steps": 0}, {}),
        "co (legacy: TS2Vec, permutation)": (
            {"kind": "co", "warmup_steps": 0, "contrastive": legacy_co} | legacy,
            {},
        ),
        "ccql (paper: sampled CQL, K=10)": ({"kind": "ccql", "warmup_steps": 0}, clamp),
        "ccql (legacy: index CQL, TS2Vec)": (
            {"kind": "ccql", "warmup_steps": 0, "cql_variant": "legacy", "contrastive": legacy_co}
            | legacy,
            clamp,
        ),
    }
    if args.only:
        cases = {k: v for k, v in cases.items() if k.startswith(tuple(args.only))}
    print(f"| {args.encoder} objective | transitions/s | eval events/s |")
    print("|---|---:|---:|")
    for name, (objective, train) in cases.items():
        rate, eval_rate = train_rate(data, args.encoder, objective, args.steps, 20, train)
        print(f"| {name} | {rate:,.0f} | {eval_rate:,.0f} |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS of this process: {peak:.2f} GB")


if __name__ == "__main__":
    main()
