"""Scale check: a synthetic catalogue of 1,000,000 items and ≈ 10M events trains and evaluates.

Generates the data with ``rlrec data synth`` settings (1,000,000 items, 1,050,000 sessions, Zipf
popularity over 2,000 topics), prepares it, then trains SASRec (hidden 64, batch 256, full softmax
over the catalogue) for ``--steps`` steps of supervised and of SNQN (two networks, Q and CE heads
over 1M items), and evaluates on the first ``--eval-sessions`` test sessions (full-catalogue ranking
in bounded-memory batches) plus a top-10 recommendation. Reports time per stage and peak RSS.
A full epoch (≈ 31,000 steps here) is not run; the per-step time gives its cost.

    .venv/bin/python benchmarks/scale_1m_items.py [--steps 30] [--eval-sessions 2000]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from rlrec.config import build_config
from rlrec.data.dataset import PreparedDataset, SessionLog
from rlrec.data.loaders.synthetic import SyntheticSource
from rlrec.data.prepare import PrepareConfig, prepare
from rlrec.data.synthetic import SynthConfig, write_synthetic
from rlrec.data.transitions import Transitions
from rlrec.serve.inference import Recommender
from rlrec.train.checkpoint import save_checkpoint
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer, evaluate_network

WORK = Path(__file__).resolve().parents[1] / "benchmarks" / "_work" / "scale_1m"


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def stage(name: str, t0: float) -> float:
    now = time.perf_counter()
    print(f"{name}: {now - t0:.1f} s, peak RSS so far {peak_gb():.2f} GB", flush=True)
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-sessions", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    t = time.perf_counter()
    raw, data = WORK / "raw", WORK / "data"
    if not (raw / "events.parquet").exists():
        synth = SynthConfig(n_sessions=1_050_000, n_items=1_000_000, n_topics=2000, seed=0)
        write_synthetic(synth, raw, overwrite=True)
        t = stage("generate", t)
    if not (data / "manifest.json").exists():
        prepare(PrepareConfig(source=SyntheticSource(path=raw)), data, overwrite=True)
        t = stage("prepare", t)
    ds = PreparedDataset.load(data)
    c = ds.manifest["counts"]
    print(f"dataset: {c['events']:,} events, {c['sessions']:,} sessions, {ds.n_items:,} items")
    for kind in ("supervised", "snqn"):
        cfg = build_config(
            TrainConfig,
            cli={
                "data": str(data),
                "out": str(WORK / f"run_{kind}"),
                "encoder": {"kind": "sasrec"},
                "objective": {"kind": kind},
                "train": {
                    "batch_size": 256,
                    "max_steps": args.steps,
                    "eval_every": 10**9,
                    "log_every": 10,
                    "tensorboard": False,
                    "num_threads": 2,
                },
            },
        )
        t = time.perf_counter()
        trainer = Trainer(cfg, overwrite=True)
        t = stage(f"{kind}: build networks + index {len(trainer.train_data):,} transitions", t)
        order = torch.randperm(len(trainer.train_data), generator=torch.Generator().manual_seed(0))
        for i in range(args.steps):
            trainer.step = i
            trainer._train_step(order[i * 256 : (i + 1) * 256])
        elapsed = time.perf_counter() - t
        t = stage(
            f"{kind}: {args.steps} steps ({elapsed / args.steps:.2f} s/step, {args.steps * 256 / elapsed:,.0f} transitions/s)",
            t,
        )
        test = ds.frame("test")
        keep = test.get_column("session_id").unique(maintain_order=True).head(args.eval_sessions)
        subset = SessionLog.from_frame(test.filter(pl.col("session_id").is_in(keep.implode())))
        data_t = Transitions(subset, trainer.state_size, ds.pad_id)
        metrics = evaluate_network(trainer.eval_net(), cfg, data_t, None)
        elapsed = time.perf_counter() - t
        t = stage(
            f"{kind}: evaluate {subset.n_events:,} test events over 1M items ({subset.n_events / elapsed:,.0f} events/s; HR_click@10 {metrics['hr_click@10']:.4f})",
            t,
        )
        trainer.tracker.close()  # type: ignore[union-attr]
    save_checkpoint(
        WORK / "run_snqn" / "checkpoints",
        args.steps,
        trainer._modules(),
        {},
        {"best": trainer.best},
        keep_last=1,
    )
    rec = Recommender.from_run(WORK / "run_snqn", checkpoint="latest", device="cpu")
    items = pl.read_parquet(WORK / "run_snqn" / "items.parquet").get_column("item_id").to_numpy()
    t = time.perf_counter()
    top = rec.recommend([list(np.random.default_rng(0).choice(items, 5))], k=10)
    stage(f"recommend top-10 from 1M items: {top[0][:3]} ...", t)
    print(f"peak RSS of the whole run: {peak_gb():.2f} GB")


if __name__ == "__main__":
    main()
