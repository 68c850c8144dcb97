"""The approximate top-k index (``--index faiss``) on a 1,000,000-item head: build time, recall@10
against the exact ranking, and query time beside the exact full-catalogue top-k.

Target (issue "Scale"): FAISS top-10 recall ≥ 0.95 and its query time per request.

The head is ``--items`` rows of Gaussian weights (dimension ``--dim``, the models' 64) with
Gaussian biases — harder for a graph index than trained item vectors, which cluster — and the
queries are Gaussian states. The index is :class:`rlrec.serve.ann.ItemIndex` as ``rlrec serve``
builds it (HNSW, M = 32); exact top-k is one ``[B, n]`` product and ``torch.topk``. Times are the
median of ``--repeats`` calls at batch 1 and 64, 2 threads.

``--trained STEPS``: instead, the head and the states of a trained model — SASRec (hidden 64)
trained ``STEPS`` steps of batch 256 with 1,024 sampled negatives and lazy sparse updates (the
recipe of ``sampled_softmax_scale.py``) on its 1M-item synthetic log (691,044 items), queried with
the states of the first ``--queries`` test events.

    .venv/bin/python benchmarks/ann_index.py [--items 1000000] [--dim 64] [--queries 1000]
    .venv/bin/python benchmarks/ann_index.py --trained 3000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def trained_head(steps: int, queries: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """``(weight, bias, states, description)`` of a SASRec trained ``steps`` steps on the 1M log."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sampled_softmax_scale import WORK, ensure_data

    from rlrec.config import build_config
    from rlrec.data.dataset import PreparedDataset
    from rlrec.data.transitions import SessionLog, Transitions, history_window
    from rlrec.train.config import TrainConfig
    from rlrec.train.trainer import Trainer

    data = ensure_data()
    cfg = build_config(
        TrainConfig,
        cli={
            "data": str(data),
            "out": str(WORK / "ann_trained"),
            "encoder": {"kind": "sasrec", "hidden": 64},
            "objective": {"kind": "supervised", "ce_negatives": 1024},
            "train": {
                "batch_size": 256,
                "max_steps": steps,
                "eval_every": 10**9,
                "tensorboard": False,
                "num_threads": 2,
                "sparse_items": True,
            },
        },
    )
    trainer = Trainer(cfg, overwrite=True)
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for step in range(steps):
        trainer.step = step
        trainer._train_step(torch.randint(0, len(trainer.train_data), (256,), generator=g))
    train_s = time.perf_counter() - t
    net = trainer.eval_net().eval()
    ds = PreparedDataset.load(data)
    test = Transitions(SessionLog.from_frame(ds.frame("test").head(queries)), 10, ds.pad_id)
    pos = torch.arange(len(test))
    state, len_state = history_window(
        test.items, test.start, pos, test.state_size, test.pad_id, test.padding
    )
    with torch.inference_mode():
        states = net(state, len_state)
    head = net.head_layer("ce")
    what = (
        f"{net.n_items:,} items × 64, SASRec trained {steps} steps ({train_s:.0f} s), "
        f"{len(states)} test-event states"
    )
    return head.weight.detach(), head.bias.detach(), states, what


def main() -> None:
    import faiss

    from rlrec.serve.ann import ItemIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--trained", type=int, default=0, help="train a model this many steps")
    args = parser.parse_args()
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    if args.trained:
        weight, bias, queries, what = trained_head(args.trained, args.queries)
    else:
        g = torch.Generator().manual_seed(0)
        weight = torch.randn(args.items, args.dim, generator=g)
        bias = torch.randn(args.items, generator=g)
        queries = torch.randn(args.queries, args.dim, generator=g)
        what = f"{args.items:,} items × {args.dim}, Gaussian head"
    t = time.perf_counter()
    index = ItemIndex(weight, bias)
    build = time.perf_counter() - t
    half = args.queries // 2  # calibrated on half the queries, measured on the other half
    calibrated = index.calibrate(queries[:half], 10, 0.95)
    recall = index.recall(queries[half:], 10)
    print(
        f"torch {torch.__version__}, faiss {faiss.__version__}, {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f}; {what}"
    )
    print(
        f"build {build:.1f} s; search breadth {index.index.hnsw.efSearch} (recall@10 "
        f"{calibrated:.4f} on the {half} calibration queries); recall@10 {recall:.4f} on "
        f"{args.queries - half} other queries"
    )
    print("| batch | FAISS ms | exact ms |")
    print("|---:|---:|---:|")
    for b in (1, 64):
        s = queries[:b]
        ann = median_ms(lambda s=s: index.search(s, 10), args.repeats)
        exact = median_ms(lambda s=s: torch.topk(s @ weight.T + bias, 10, dim=1), args.repeats)
        print(f"| {b} | {ann:.2f} | {exact:.2f} |", flush=True)


if __name__ == "__main__":
    main()
