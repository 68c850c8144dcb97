"""Scoring latency of an exported run on CPU: PyTorch eager vs TorchScript vs ONNX Runtime.

    .venv/bin/python benchmarks/export_speed.py RUN_DIR [--checkpoint best] [--threads 2]
        [--repeats 50] [--warmup 5] [--batches 1 256]

Exports RUN_DIR's scoring network with :func:`rlrec.serve.export.export_run` as TorchScript and as
ONNX into a temporary directory (each export runs its parity check), then times one scoring call,
``(state, len_state) → scores [B, n_items]`` (no top-k), at each batch size for

* **PyTorch eager** — :class:`rlrec.models.network.ScoringNetwork` under ``torch.inference_mode``;
* **TorchScript** — ``model.pt`` through ``torch.jit.load``;
* **ONNX Runtime** — ``model.onnx`` on the ``CPUExecutionProvider`` with
  ``intra_op_num_threads = --threads``;

with ``torch.set_num_threads(--threads)``. All three score the same seeded random histories (the
parity check's), NumPy arrays in and out. A figure is the median of ``--repeats`` calls after
``--warmup`` calls. Prints a markdown table and the machine facts (versions, CPUs, load average).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from rlrec.models.network import ScoringNetwork
from rlrec.serve.export import MODEL_FILE, export_run, load_exported, random_histories
from rlrec.serve.inference import history_states, load_run

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
LABELS = {"torchscript": "TorchScript", "onnx": "ONNX Runtime"}


def median_ms(
    score: Scorer, state: np.ndarray, len_state: np.ndarray, warmup: int, repeats: int
) -> float:
    """Median wall time of ``score(state, len_state)`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        score(state, len_state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score(state, len_state)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="Run directory written by rlrec train.")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cfg, net, meta = load_run(args.run_dir, args.checkpoint, "cpu")
    n_items, state_size = meta["n_items"], meta["state_size"]
    eager = ScoringNetwork(net, cfg.objective.eval_head).eval()

    def score_eager(state: np.ndarray, len_state: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return eager(torch.from_numpy(state), torch.from_numpy(len_state)).numpy()

    state, len_state = history_states(
        random_histories(n_items, state_size, max(args.batches), seed=0),
        state_size,
        net.encoder.pad_id,
    )
    scorers: dict[str, Scorer] = {"PyTorch eager": score_eager}
    parity: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, label in LABELS.items():
            out = Path(tmp) / fmt
            parity[label] = export_run(args.run_dir, fmt, out, args.checkpoint)  # type: ignore[arg-type]
            scorers[label] = load_exported(out / MODEL_FILE[fmt], fmt, threads=args.threads)  # type: ignore[arg-type]
        ms = {
            (label, batch): median_ms(
                score, state[:batch].numpy(), len_state[:batch].numpy(), args.warmup, args.repeats
            )
            for batch in args.batches
            for label, score in scorers.items()
        }

    print(
        f"## Scoring latency: {args.run_dir.name} ({cfg.objective.kind}/{cfg.encoder.kind}, "
        f"hidden {cfg.encoder.hidden}, {n_items:,} items, window {state_size})\n"
    )
    print(
        f"median of {args.repeats} calls after {args.warmup} warm-up calls, {args.threads} threads\n"
    )
    header = " | ".join(f"batch {b} ms | batch {b} histories/s" for b in args.batches)
    print(f"| scorer | {header} |")
    print("|---|" + "---:|---:|" * len(args.batches))
    for label in scorers:
        cells = " | ".join(
            f"{ms[label, b]:.3f} | {b / ms[label, b] * 1e3:,.0f}" for b in args.batches
        )
        print(f"| {label} | {cells} |")
    print()
    for label, check in parity.items():
        print(
            f"- parity {label}: max |Δscore| {check['max_abs_diff']:.2e}, top-{check['top_k']} "
            f"identical {check['top_k_identical']}/{check['samples']}"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), load average {load}"
    )
    print(
        f"- versions: Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}"
    )


if __name__ == "__main__":
    main()
