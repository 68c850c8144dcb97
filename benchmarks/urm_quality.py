"""User-response model quality on MovieLens-100K: the shipped URMs beside their baselines, 3 seeds.

The simulator samples its users from the URM, so the URM has to know more than item popularity
(issue "A simulator worth trusting"). On the training environment's setting (fit on the train
split, validated on the later 20 % of lists, ``configs/sim/urm/ml100k_train.yaml``) this script

1. prepares the ML-100K list data (``configs/sim/data/ml100k.yaml``: side information, and a random
   code per item);
2. ``--search``: trains the shipped URM for every learning rate × weight decay of the grid (seed
   0) and prints validation log-loss, AUC and ECE per point — how the shipped values were chosen;
3. trains, for ``--seeds``, the shipped URM and the paper's architecture (``urm.item_bias`` and
   ``urm.engagement`` off, the reference's 2 epochs at lr 1e-3:
   ``configs/sim/urm/ml100k_train_paper.yaml``) and prints mean ± std over seeds of AUC,
   per-position AUC, log-loss and ECE, with the baselines fitted by ``train-urm`` on the same split,
   and the learning curves (validation log-loss and AUC per epoch) of the shipped URM's seeds;
4. a diagnostic of what the data holds: a logistic regression on two numbers only, the item's
   smoothed positive rate and the user's smoothed positive rate over the items shown before the
   list (``two_rates``);
5. the evaluation environment's URM (``ml100k_eval.yaml``, fit on all records): fitted again with
   10 % of the users held out (``holdout_users: 0.1``) and scored on their test lists, beside the
   baselines of the same split; and the agreement of the evaluation URM (fit on all) with the
   training URM (seed 0) on the test lists — correlation of their probabilities, mean |Δp|.

    .venv/bin/python benchmarks/urm_quality.py [--seeds 0 1 2] [--search] [--threads 1]
    .venv/bin/python benchmarks/urm_quality.py --eval-check   # step 5 (after a run of steps 1-3)
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rlrec.config import build_config
from rlrec.sim.baselines import item_rate
from rlrec.sim.dataset import ListDataset, ListTensors
from rlrec.sim.metrics import response_report
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists
from rlrec.sim.urm import engagement_rate
from rlrec.sim.urm_train import URMTrainConfig, URMTrainer

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "urm_quality"
URMS = {  # row name: (URM config, data features)
    "URM, shipped (ml100k_train.yaml)": ("ml100k_train.yaml", "shipped"),
    "URM, paper architecture (ml100k_train_paper.yaml)": (
        "ml100k_train_paper.yaml",
        "random_codes",
    ),
}
GRID = {"lr": (0.003, 0.01, 0.03), "weight_decay": (0.0, 0.1, 1.0)}
METRICS = ("auc", "auc_per_position", "log_loss", "ece")


def data(features: str) -> Path:
    """The list data: the shipped config's features, or ``features`` instead."""
    out = WORK / f"data_{features}"
    if not (out / "manifest.json").is_file():
        source: dict[str, Any] = {"path": str(ML100K)}
        if features != "shipped":
            source["features"] = features
        cfg = build_config(
            ListPrepareConfig,
            path=ROOT / "configs" / "sim" / "data" / "ml100k.yaml",
            cli={"source": source},
        )
        prepare_lists(cfg, out, overwrite=True)
    return out


def fit(config: str, features: str, seed: int, threads: int, **sets: Any) -> dict[str, Any]:
    tag = "_".join(f"{k}{v}" for k, v in sorted(sets.items())) or "shipped"
    cli = {
        "data": str(data(features)),
        "out": str(WORK / "runs" / Path(config).stem / tag / f"seed_{seed}"),
        "seed": seed,
        "num_threads": threads,
        **sets,
    }
    cfg = build_config(URMTrainConfig, path=ROOT / "configs" / "sim" / "urm" / config, cli=cli)
    return URMTrainer(cfg, overwrite=True).fit()


def search(threads: int) -> None:
    print("| lr | weight decay | epochs run (kept) | val log-loss | val AUC | ECE |")
    print("|---:|---:|---:|---:|---:|---:|")
    for lr, wd in itertools.product(GRID["lr"], GRID["weight_decay"]):
        s = fit("ml100k_train.yaml", "shipped", 0, threads, lr=lr, weight_decay=wd)
        m = s["selected"]
        print(
            f"| {lr:g} | {wd:g} | {s['epochs_run']} ({s['selected_epoch']}) | "
            f"{m['val_log_loss']:.4f} | {m['val_auc']:.4f} | {m['val_ece']:.3f} |",
            flush=True,
        )


def two_rates() -> dict[str, float]:
    """Validation report of ``logit σ = w₁·logit(item rate) + w₂·logit(user rate) + b``."""
    ds = ListDataset.load(data("shipped"))
    train, val = ds.tensors("train", 1), ds.tensors("test", 1)
    items = item_rate(train, ds.n_items)
    prior = train.labels.double().mean()

    def inputs(part: ListTensors) -> torch.Tensor:  # (R, K, 2)
        rate = engagement_rate(part.seen.double(), part.positives.double(), prior)
        user = torch.logit(rate)[:, None].expand_as(part.labels)
        return torch.stack([items(part), user], dim=-1)

    x, y = inputs(train), train.labels.double()
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return response_report(inputs(val) @ w + b, val.labels)


def agreement(a: Path, b: Path, split: str = "test") -> dict[str, float]:
    """Pearson correlation and mean absolute difference of two URMs' probabilities on a split."""
    from rlrec.sim.urm_store import load_urm
    from rlrec.sim.urm_train import predict_logits

    ds = ListDataset.load(data("shipped"))
    probs = []
    for path in (a, b):
        loaded = load_urm(path)
        records = ds.tensors(split, loaded.model.cfg.max_history)
        logits = predict_logits(
            loaded.model, records, loaded.item_features, ds.user_features(), 2048
        )
        probs.append(torch.sigmoid(logits.double()).reshape(-1))
    corr = torch.corrcoef(torch.stack(probs))[0, 1]
    return {"pearson": float(corr), "mean_abs_diff": float((probs[0] - probs[1]).abs().mean())}


def eval_check(seeds: list[int], threads: int) -> None:
    print("\nevaluation URM fitted without 10 % of the users, scored on their test lists:")
    print("| model | AUC | log-loss | ECE |")
    print("|---|---:|---:|---:|")
    reports: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        s = fit("ml100k_eval.yaml", "shipped", seed, threads, holdout_users=0.1)
        sel = {k[4:]: v for k, v in s["selected"].items() if k.startswith("val_")}
        reports.setdefault("evaluation URM (held-out users)", []).append(sel)
        for base, report in s["baselines"].items():
            reports.setdefault(f"baseline: {base}", []).append(report)
    for name, runs in reports.items():
        cells = [mean_std([r[k] for r in runs]) for k in ("auc", "log_loss", "ece")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    runs = WORK / "runs"
    train = runs / "ml100k_train" / "shipped" / "seed_0"
    full = WORK / "runs" / "ml100k_eval_full" / "seed_0"
    cli = {"data": str(data("shipped")), "out": str(full), "num_threads": threads}
    cfg = build_config(
        URMTrainConfig, path=ROOT / "configs" / "sim" / "urm" / "ml100k_eval.yaml", cli=cli
    )
    URMTrainer(cfg, overwrite=True).fit()
    agree = agreement(train, full)
    print(
        f"evaluation URM (all records) vs training URM (seed 0) on the test lists: Pearson "
        f"{agree['pearson']:.3f}, mean |Δp| {agree['mean_abs_diff']:.4f}"
    )


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--search", action="store_true", help="the lr × weight decay grid first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-check", action="store_true", help="only the evaluation URM checks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.eval_check:
        eval_check(args.seeds, args.threads)
        return
    if args.search:
        search(args.threads)
    rows: dict[str, dict[str, list[float]]] = {}
    curves: list[str] = []
    for name, (config, features) in URMS.items():
        for seed in args.seeds:
            s = fit(config, features, seed, args.threads)
            row = rows.setdefault(name, {k: [] for k in METRICS})
            for k in METRICS:
                row[k].append(s["selected"][f"val_{k}"])
            if config == "ml100k_train.yaml":  # its curves, and the baselines of the same split
                curves.append(
                    f"seed {seed} (kept epoch {s['selected_epoch']} of {s['epochs_run']}): "
                    + ", ".join(
                        f"{h['train_loss']:.3f}/{h['val_log_loss']:.3f}/{h['val_auc']:.3f}"
                        for h in s["history"]
                    )
                )
                for base, report in s["baselines"].items():
                    brow = rows.setdefault(f"baseline: {base}", {k: [] for k in METRICS})
                    for k in METRICS:
                        brow[k].append(report[k])
            print(f"[{name}] seed {seed}: val AUC {s['selected']['val_auc']:.4f}", flush=True)
    diagnostic = two_rates()
    rows["diagnostic: two_rates (item rate, user rate so far)"] = {
        k: [diagnostic[k]] for k in METRICS
    }
    print(f"\nvalidation (test split), mean ± std over seeds {args.seeds}")
    print("| model | AUC | AUC per position | log-loss | ECE |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(mean_std(row[k]) for k in METRICS) + " |")
    print("\nshipped URM per epoch, train loss / validation log-loss / validation AUC:")
    print("\n".join(curves))


if __name__ == "__main__":
    main()
