"""Does the sampled softmax cost quality? Supervised SASRec on MovieLens-100K with the full
softmax, with 1,024 sampled negatives and the log-Q correction, and with them uncorrected.

Target (issue "Scale"): sampled softmax (1,024 negatives, log-Q) within 3 % of the full softmax on
test purchase NDCG@10 (3 seeds), and the same comparison with log-Q off.

Protocol of ``ml100k_quality.py`` (one session per user, rating ≥ 4 = purchase, users split 8:1:1
with seed 0, window 10; batch 256, hidden 64, lr 0.01; validation every epoch, the best validation
purchase NDCG@10 checkpoint's **test** metrics), ``--epochs`` epochs, each run its own process
(``--jobs`` at a time, 1 thread each), outputs under ``benchmarks/_work/sampled_quality/``
(finished runs are reused). Candidates uniform and by popularity (the catalogue has 1,682 items).

``--data synthetic``: the same comparison on the synthetic generator's log (``rlrec data synth``
with 20,000 sessions over 10,000 items and 50 topics, seed 0, prepared with the default 8:1:1
random split), where 1,024 candidates are a tenth of the catalogue.

    .venv/bin/python benchmarks/sampled_softmax_quality.py [--epochs 10] [--seeds 0 1 2] [--jobs 2]
    .venv/bin/python benchmarks/sampled_softmax_quality.py --data synthetic --epochs 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "sampled_quality"
VARIANTS = {
    "full softmax": {},
    "1,024 sampled, log-Q": {"ce_negatives": 1024},
    "1,024 sampled, no log-Q": {"ce_negatives": 1024, "ce_logq": False},
    "1,024 by popularity, log-Q": {"ce_negatives": 1024, "ce_sampler": "popularity"},
    "1,024 by popularity, no log-Q": {
        "ce_negatives": 1024,
        "ce_sampler": "popularity",
        "ce_logq": False,
    },
}
METRICS = ("ndcg_purchase@10", "hr_purchase@10", "ndcg_click@10")


def run(data: Path, name: str, extra: dict, seed: int, epochs: int, eval_every: int) -> Path:
    out = data.parent / "runs" / f"{name.replace(' ', '_').replace(',', '')}_s{seed}"
    if (out / "summary.json").exists():
        return out
    config = out.with_suffix(".json")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "data": str(data),
                "out": str(out),
                "seed": seed,
                "encoder": {"kind": "sasrec", "hidden": 64},
                "objective": {"kind": "supervised", "lr": 0.01, **extra},
                "train": {
                    "batch_size": 256,
                    "epochs": epochs,
                    "eval_every": eval_every,
                    "tensorboard": False,
                    "num_threads": 1,
                },
            }
        )
    )
    # a JSON document is YAML: rlrec train reads it as a config file
    subprocess.run(
        [sys.executable, "-m", "rlrec", "train", "--config", str(config), "--overwrite"],
        check=True,
        capture_output=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data", choices=("ml100k", "synthetic"), default="ml100k")
    args = parser.parse_args()
    from rlrec.data.loaders.recbole import RecBoleSource
    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.data.synthetic import SynthConfig, write_synthetic

    if args.data == "ml100k":
        data, source = WORK / "data", RecBoleSource(path=ML100K)
    else:
        data, raw = WORK / "synthetic" / "data", WORK / "synthetic" / "raw"
        if not (raw / "events.parquet").exists():
            synth = SynthConfig(n_sessions=20_000, n_items=10_000, n_topics=50, seed=0)
            write_synthetic(synth, raw, overwrite=True)
        source = SyntheticSource(path=raw)
    if not (data / "manifest.json").exists():
        prepare(PrepareConfig(source=source, seed=0), data, overwrite=True)
    train_events = json.loads((data / "manifest.json").read_text())["splits"]["train"]["events"]
    eval_every = -(-train_events // 256)  # validate once per epoch
    jobs = [(name, extra, seed) for name, extra in VARIANTS.items() for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = list(pool.map(lambda j: run(data, j[0], j[1], j[2], args.epochs, eval_every), jobs))
    results: dict[str, list[dict]] = {}
    for (name, _, _), out in zip(jobs, outs, strict=True):
        results.setdefault(name, []).append(json.loads((out / "summary.json").read_text()))
    full = statistics.mean(r["test"]["ndcg_purchase@10"] for r in results["full softmax"])
    print(f"SASRec supervised on {args.data}, {args.epochs} epochs, seeds {args.seeds}")
    print("| variant | " + " | ".join(METRICS) + " | vs full (purchase NDCG@10) | s/epoch |")
    print("|---|" + "---:|" * (len(METRICS) + 2))
    for name, runs in results.items():
        cells = []
        for m in METRICS:
            vals = [r["test"][m] for r in runs]
            cells.append(f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}")
        mean = statistics.mean(r["test"]["ndcg_purchase@10"] for r in runs)
        epoch_s = statistics.mean(r["seconds_per_epoch"] for r in runs)
        print(
            f"| {name} | " + " | ".join(cells) + f" | {100 * (mean / full - 1):+.1f} % "
            f"| {epoch_s:.1f} |"
        )


if __name__ == "__main__":
    main()
