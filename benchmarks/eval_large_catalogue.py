"""Exact full-catalogue evaluation on a 1,000,000-item catalogue: the chunked linear-head ranking
beside the materialised score matrix, in one run.

Target (issue "Scale"): exact evaluation ≥ 1,000 events/s at 1M items on 2 cores (227 before).

Data: the 1M-item synthetic log of ``scale_1m_items.py`` (691,044 distinct items after preparation;
generated under ``benchmarks/_work/scale_1m/`` if missing). A SASRec network (hidden 64) is built by
``rlrec train``'s trainer (weights at initialisation: the cost of ranking does not depend on them),
and the first ``--events`` test events are ranked against the whole catalogue by

* ``chunked``: :func:`rlrec.train.trainer.evaluate_network`, what ``rlrec train`` and
  ``rlrec evaluate`` run — the linear head scored in cache-sized column chunks and compared as it
  goes (``linear_rank_stats``);
* ``materialised``: the same network through a plain score function, ``[B, n]`` score matrices of
  ``max_score_elements`` floats (the evaluator before this change);
* ``gemm``: only the ``[B, d] × [d, n]`` products of the chunked path, no comparison — the floor
  the ranking sits on (the machine's matrix-product speed at this shape).

Each variant runs ``--repeats`` times; the best time is reported, with the metrics' agreement.
``--items N`` (above the 691,044 items the log has) appends random rows to the head so that every
event is ranked against exactly ``N`` items (the targets stay among the real ones).

    .venv/bin/python benchmarks/eval_large_catalogue.py [--events 4096] [--repeats 3]
    .venv/bin/python benchmarks/eval_large_catalogue.py --items 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampled_softmax_scale import WORK, ensure_data

from rlrec.config import build_config
from rlrec.data.dataset import PreparedDataset
from rlrec.data.transitions import SessionLog, Transitions
from rlrec.eval.evaluator import CPU_CHUNK_ELEMENTS, evaluate
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer, evaluate_network


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=0, help="pad the head to this many items")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = ensure_data()
    cfg = build_config(
        TrainConfig,
        cli={
            "data": str(data),
            "out": str(WORK / "eval_run"),
            "encoder": {"kind": "sasrec", "hidden": 64},
            "objective": {"kind": "supervised"},
            "train": {"max_steps": 1, "tensorboard": False, "num_threads": 2},
        },
    )
    trainer = Trainer(cfg, overwrite=True)
    ds = PreparedDataset.load(data)
    log = SessionLog.from_frame(ds.frame("test").head(args.events))
    events = Transitions(log, trainer.state_size, ds.pad_id)
    net = trainer.eval_net()
    net.eval()
    head = net.head_layer("ce")
    if args.items > net.n_items:  # more columns to rank: random rows like the initialised ones
        g = torch.Generator().manual_seed(0)
        extra = args.items - net.n_items
        std = float(head.weight.std())
        weight = torch.cat([head.weight.detach(), torch.randn(extra, 64, generator=g) * std])
        head = torch.nn.Linear(64, args.items)
        head.weight.data, head.bias.data = weight, torch.zeros(args.items)
        net.ce_head, net.n_items = head, args.items
    n = net.n_items
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load "
        f"average {os.getloadavg()[0]:.2f}; {n:,} items, hidden 64, {len(events):,} test events, "
        f"best of {args.repeats}"
    )

    chunked_s, chunked = best_of(args.repeats, lambda: evaluate_network(net, cfg, events, None))
    materialised_s, materialised = best_of(
        args.repeats,
        lambda: evaluate(lambda s, m: net.logits(net(s, m)), events, cfg.eval, n, None),
    )
    h = torch.randn(cfg.eval.batch_size, 64)
    width = CPU_CHUNK_ELEMENTS // cfg.eval.batch_size
    buf = torch.empty(cfg.eval.batch_size, width)

    def products() -> None:
        with torch.inference_mode():
            for _ in range(0, len(events), cfg.eval.batch_size):
                for lo in range(0, n, width):
                    hi = min(lo + width, n)
                    torch.addmm(head.bias[lo:hi], h, head.weight[lo:hi].t(), out=buf[:, : hi - lo])

    gemm_s, _ = best_of(args.repeats, products)
    flops = 2 * 64 * n * len(events)
    keys = [k for k in chunked if "@" in k]
    diff = max(abs(chunked[k] - materialised[k]) for k in keys)
    print("| variant | events/s | s | GFLOP/s of the products |")
    print("|---|---:|---:|---:|")
    for name, secs in (("chunked", chunked_s), ("materialised", materialised_s), ("gemm", gemm_s)):
        print(f"| {name} | {len(events) / secs:,.0f} | {secs:.2f} | {flops / secs / 1e9:.0f} |")
    print(
        f"chunked / materialised: {materialised_s / chunked_s:.2f}x; largest metric difference "
        f"{diff:.2e} over {len(keys)} metrics; HR_click@10 {chunked['hr_click@10']:.4f}; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB"
    )


if __name__ == "__main__":
    main()
