"""P-CCQL's methods on real data: MovieLens-100K, SASRec, 3 seeds, with their training dynamics.

Protocol (shared/datasets/README.md): one session per user, rating ≥ 4 = purchase, users split
8:1:1 with seed 0 (one split for every run), state window 10. Methods — the shipped RC15 configs of
``configs/ccql/rc15/`` (the CCQL code's hyper-parameters, docs/conservative.md) with four changes
for this smaller data set: 30 epochs (≈ 9,300 steps), the phase switch / SA2C pre-training at step
2,000 (the paper's 15,000–30,000 exceed the whole run), validation every epoch (310 steps), and the
same SASRec for every method (the CCQL code's, so that only the objective differs; SA2C's paper
runs used the TF SASRec):

    sasrec (supervised) · sasrec_ac · sa2c · sasrec_co · sasrec_ccql · sasrec_ccql_legacy

Every run is its own process (``rlrec sweep``); the checkpoint is selected on validation purchase
NDCG@10 and reported on **test** (and, for comparison, P-CCQL's per-metric top-5 protocol). The
report (table, stability table, ``val_curves.png``, ``train_curves.png``) goes to
``benchmarks/_work/ccql_ml100k/report``.

    .venv/bin/python benchmarks/ccql_ml100k.py [--seeds 0 1 2] [--jobs 2] [--threads 1] [--epochs 30]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.prepare import PrepareConfig, prepare
from rlrec.experiments.report import write_report
from rlrec.experiments.sweep import SweepConfig, run_sweep

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "ccql_ml100k"
METHODS = ("sasrec", "sasrec_ac", "sa2c", "sasrec_co", "sasrec_ccql", "sasrec_ccql_legacy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--switch", type=int, default=2000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    data = WORK / "data"
    if not (data / "manifest.json").exists():
        prepare(PrepareConfig(source=RecBoleSource(path=ML100K), seed=0), data, overwrite=True)
    outs = []
    for method in args.methods:
        switch = "objective.pretrain_steps" if method == "sa2c" else "objective.warmup_steps"
        overrides = {
            "data": str(data),
            "train.epochs": args.epochs,
            "train.eval_every": 310,
            "train.log_every": 50,
            "train.tensorboard": False,
            "encoder.sasrec_variant": "ccql_torch",
            "head_init": "normal",
        }
        if method != "sasrec":
            overrides[switch] = args.switch
        sweep = SweepConfig(
            base=ROOT / "configs" / "ccql" / "rc15" / f"{method}.yaml",
            out=WORK / "runs" / method,
            seeds=args.seeds,
            overrides=overrides,
            jobs=args.jobs,
            threads_per_job=args.threads,
        )

        def progress(spec, done, total, method=method):
            print(
                f"{method} {spec.name}: {spec.status} {spec.seconds or 0:.0f} s {spec.message}",
                flush=True,
            )

        run_sweep(sweep, on_event=progress)
        outs.append(sweep.out)
    for protocol in ("best", "per_metric_top_k"):
        out, _ = write_report(
            outs,
            WORK / ("report" if protocol == "best" else f"report_{protocol}"),
            protocol=protocol,
            plots=protocol == "best",
            overwrite=True,
            title=f"MovieLens-100K, SASRec, {len(args.seeds)} seeds — test metrics ({protocol})",
        )
        print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
