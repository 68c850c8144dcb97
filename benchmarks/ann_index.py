"""The approximate top-k index (``--index faiss``) on a 1,000,000-item head: build time, recall@10
against the exact ranking, and query time beside the exact full-catalogue top-k.

Target (issue "Scale"): FAISS top-10 recall ≥ 0.95 and its query time per request.

The head is ``--items`` rows of Gaussian weights (dimension ``--dim``, the models' 64) with
Gaussian biases — harder for a graph index than trained item vectors, which cluster — and the
queries are Gaussian states. The index is :class:`rlrec.serve.ann.ItemIndex` as ``rlrec serve``
builds it (HNSW, M = 32); exact top-k is one ``[B, n]`` product and ``torch.topk``. Times are the
median of ``--repeats`` calls at batch 1 and 64, 2 threads.

    .venv/bin/python benchmarks/ann_index.py [--items 1000000] [--dim 64] [--queries 1000]
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


def main() -> None:
    import faiss

    from rlrec.serve.ann import ItemIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(args.items, args.dim, generator=g)
    bias = torch.randn(args.items, generator=g)
    queries = torch.randn(args.queries, args.dim, generator=g)
    t = time.perf_counter()
    index = ItemIndex(weight, bias)
    build = time.perf_counter() - t
    half = args.queries // 2  # calibrated on half the queries, measured on the other half
    calibrated = index.calibrate(queries[:half], 10, 0.95)
    recall = index.recall(queries[half:], 10)
    print(
        f"torch {torch.__version__}, faiss {faiss.__version__}, {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f}; {args.items:,} items × {args.dim}, Gaussian head"
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
