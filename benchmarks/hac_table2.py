"""P-HAC Table 2 on a real-data simulator: HAC and its baselines on MovieLens-100K, 3 seeds, total
reward / depth / reward variance with the ranking beside the paper's.

(The Open Bandit Dataset is not simulator data — 37 clicks in its logged slates are too few to fit a
user-response model — so it is no longer a column here; see docs/online.md for what it is good for.)

The script (re)uses, under ``benchmarks/_work/hac_table2/``:

1. the list data (``configs/sim/data/ml100k.yaml``, from ``../shared/datasets/ml-100k``);
2. the training environment's URM (fit on train) and the evaluation environment's URM (fit on all
   records), ``configs/sim/urm/``;
3. every column of Table 2 plus the two ablations (``configs/sim/agents/``: HAC, DDPG, TD3, A2C,
   PG-RA, Online SL, Offline SL, HAC w/o BCE, HAC w/o Hyper), one ``rlrec sweep`` per agent
   (``sweeps/it<N>/<agent>/seed_<s>``, every seed its own ``rlrec sim train`` process, all agents'
   runs through one pool of ``--jobs`` processes), ``--iterations`` iterations for every agent. A
   finished run is skipped, an interrupted one resumed, so re-running completes the benchmark.

It prints one table per data set — the evaluation environment's total reward, depth and reward
variance (across users) of the checkpoint selected on the validation users, mean ± std over seeds
(P-HAC §3.1.4) — with our ranking, the paper's ranking per Table 2 column and the Spearman
correlation of the two (the ranking, not the absolute values, is the target: the data, features and
URMs differ from the paper's), and beside it the reference code's training-time report
(docs/online.md: training environment, exploration on, last 10 sessions, smoothed over 300 report
lines), the protocol of the paper's own numbers. Learning curves go to ``report/<data set>/``.

    .venv/bin/python benchmarks/hac_table2.py [--iterations 50000] [--seeds 0 1 2] [--jobs 2] \\
        [--agents hac ddpg]
    .venv/bin/python benchmarks/hac_table2.py --timing [--iterations 300] [--threads 2] \\
        [--kernels torch numba torch numba]

``--timing`` trains HAC on the ML-100K simulator in this process for ``--iterations`` iterations
(after the 2,000-transition prefill) and reports iterations per second (overall, and the steady
state without the warm-up), the projected time of the paper's 50,000 iterations and the share of
each update step and of the simulator in the time; ``--kernels`` repeats the run per attention
kernel of the actor (``policy.attention_kernel``), alternating, for same-sitting ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rlrec.config import build_config
from rlrec.errors import RlrecError
from rlrec.experiments.launch import RunSpec
from rlrec.experiments.sweep import SweepConfig, run_sweeps
from rlrec.models import torch_mt19937
from rlrec.online.config import OnlineTrainConfig
from rlrec.online.evaluate import HEADLINE, across_seeds, write_curves
from rlrec.online.trainer import OnlineTrainer
from rlrec.online.training_report import hac_online_report
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists
from rlrec.sim.urm_train import URMTrainConfig, URMTrainer

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
WORK = ROOT / "benchmarks" / "_work" / "hac_table2"
AGENTS = (
    "hac",
    "online_sl",
    "offline_sl",
    "a2c",
    "ddpg",
    "td3",
    "pgra",
    "hac_no_bce",
    "hac_no_hyper",
)
# P-HAC Table 2, total reward per column (RL4RS, ML1M, KuaiRand); the ablations are not in it.
PAPER = {
    "offline_sl": (6.721, 18.559, 14.394),
    "online_sl": (9.502, 18.629, 13.456),
    "a2c": (7.789, 16.158, 12.460),
    "ddpg": (8.337, 17.205, 11.394),
    "td3": (8.553, 17.545, 11.777),
    "pgra": (8.561, 18.466, 10.859),
    "hac": (10.059, 18.863, 14.789),
}
PAPER_COLUMNS = ("RL4RS", "ML1M", "KuaiRand")
DATASETS: dict[str, dict[str, Any]] = {  # data config, raw path, URM configs, evaluation users
    "ml100k": {"users": 1600, "urm_train": "ml100k_train.yaml", "urm_eval": "ml100k_eval.yaml"},
}


def prepare(dataset: str, raw: Path) -> dict[str, Path]:
    """List data and both URMs of ``dataset`` (built once, then reused)."""
    base = WORK / dataset
    paths = {"data": base / "data", "urm": base / "urm_train", "eval_urm": base / "urm_eval"}
    if not (paths["data"] / "manifest.json").is_file():
        print(f"[{dataset}] preparing list data from {raw}", flush=True)
        cfg = build_config(
            ListPrepareConfig,
            path=ROOT / "configs" / "sim" / "data" / f"{dataset}.yaml",
            cli={"source": {"path": str(raw)}},
        )
        prepare_lists(cfg, paths["data"], overwrite=True)
    spec = DATASETS[dataset]
    for role, key, name in (("train", "urm", "urm_train"), ("eval", "eval_urm", "urm_eval")):
        if (paths[key] / "urm.json").is_file():
            continue
        print(f"[{dataset}] training the {role} environment's URM", flush=True)
        cfg = build_config(
            URMTrainConfig,
            path=ROOT / "configs" / "sim" / "urm" / spec[name],
            cli={"data": str(paths["data"]), "out": str(paths[key]), "role": role},
        )
        summary = URMTrainer(cfg, overwrite=True).fit()
        auc = summary["selected"].get("val_auc")
        print(f"[{dataset}] {role} URM: validation AUC {auc:.4f}", flush=True)
    return paths


def loop_settings(iterations: int) -> dict[str, int]:
    """Log and validation intervals that fit ``iterations`` (the configs' 100 / 2,500 at 50k; at
    least 6 validations in shorter runs)."""
    log_every = min(100, iterations)
    eval_every = max(log_every, min(2500, iterations // 6) // log_every * log_every)
    return {
        "train.iterations": iterations,
        "train.log_every": log_every,
        "train.eval_every": eval_every,
    }


def sweeps(dataset: str, paths: dict[str, Path], args: argparse.Namespace) -> list[SweepConfig]:
    """One sweep over ``args.seeds`` per agent of ``args.agents``, on ``dataset``'s simulator."""
    overrides = {
        "data": str(paths["data"]),
        "urm": str(paths["urm"]),
        "eval_urm": str(paths["eval_urm"]),
        "device": "cpu",
        "eval.users": DATASETS[dataset]["users"],
        **loop_settings(args.iterations),
    }
    return [
        SweepConfig(
            base=ROOT / "configs" / "sim" / "agents" / f"{agent}.yaml",
            out=WORK / dataset / "sweeps" / f"it{args.iterations}" / agent,
            seeds=args.seeds,
            overrides=overrides,
            jobs=args.jobs,
            threads_per_job=args.threads,
        )
        for agent in args.agents
    ]


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation of two score lists (no ties expected)."""

    def ranks(xs: list[float]) -> list[int]:
        order = sorted(range(len(xs)), key=lambda i: -xs[i])
        out = [0] * len(xs)
        for r, i in enumerate(order):
            out[i] = r
        return out

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def table(dataset: str, runs: dict[str, list[Path]]) -> dict[str, Any]:
    """Print the data set's table; returns its numbers."""
    results: dict[str, dict[str, tuple[float, float, int]]] = {}
    labels = {}
    for agent, dirs in runs.items():
        summaries = [
            json.loads((d / "summary.json").read_text())
            for d in dirs
            if (d / "summary.json").is_file()
        ]
        if summaries:
            results[agent] = across_seeds([s["eval"]["best"] for s in summaries])
            labels[agent] = summaries[0]["name"]
    online = {}  # the reference's training-time report, the protocol of P-HAC's numbers
    for agent in results:
        try:
            online[agent] = hac_online_report(
                [d for d in runs[agent] if (d / "summary.json").is_file()], window=300
            )["mean"]
        except RlrecError as exc:  # runs from before the episodes records
            print(f"({agent}: no training-time report: {exc})")
    order = sorted(results, key=lambda a: -results[a]["total_reward_mean"][0])
    ours = {a: i + 1 for i, a in enumerate(order)}
    common = [a for a in order if a in PAPER]
    paper_rank = [
        {a: i + 1 for i, a in enumerate(sorted(common, key=lambda a: -PAPER[a][c]))}
        for c in range(3)
    ]
    print(f"\n{dataset}: evaluation environment, checkpoint selected on validation users")
    print("| method | seeds | total reward | depth | reward variance | rank | paper rank", end="")
    print(" RL4RS/ML1M/KuaiRand | training-time total reward / depth (docs/online.md) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for agent in order:
        cells = [f"{results[agent][k][0]:.3f} ± {results[agent][k][1]:.3f}" for k in HEADLINE]
        paper = "/".join(str(p[agent]) for p in paper_rank) if agent in PAPER else "–"
        n = results[agent]["total_reward_mean"][2]
        o = online.get(agent)
        ref = (
            f"{o['average_total_reward'][0]:.3f} ± {o['average_total_reward'][1]:.3f} / "
            f"{o['average_n_step'][0]:.2f}"
            if o
            else "–"
        )
        print(f"| {labels[agent]} | {n} | {' | '.join(cells)} | {ours[agent]} | {paper} | {ref} |")
    corr = {}
    if len(common) > 2:
        mine = [results[a]["total_reward_mean"][0] for a in common]
        for c, name in enumerate(PAPER_COLUMNS):
            corr[name] = spearman(mine, [PAPER[a][c] for a in common])
        print(
            "Spearman correlation with the paper's ranking (Table 2 methods only): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in corr.items())
        )
        if all(a in online for a in common):
            mine = [online[a]["average_total_reward"][0] for a in common]
            for c, name in enumerate(PAPER_COLUMNS):
                corr[f"{name} (training-time report)"] = spearman(
                    mine, [PAPER[a][c] for a in common]
                )
            print(
                "The same with the training-time report: "
                + ", ".join(
                    f"{name} {corr[f'{name} (training-time report)']:+.2f}"
                    for name in PAPER_COLUMNS
                )
            )
    return {
        "methods": {
            a: {k: {"mean": v[0], "std": v[1], "n": v[2]} for k, v in results[a].items()}
            for a in order
        },
        "training_time_report": {a: online[a] for a in order if a in online},
        "rank": ours,
        "spearman_vs_paper": corr,
        "labels": labels,
    }


def benchmark(args: argparse.Namespace) -> None:
    raws = {"ml100k": ML100K}
    report: dict[str, Any] = {"iterations": args.iterations, "seeds": args.seeds}
    for dataset in args.datasets:
        if raws[dataset] is None or not Path(raws[dataset]).exists():
            sys.exit(f"{dataset}: raw data not found ({raws[dataset]}); see --help")
        paths = prepare(dataset, Path(raws[dataset]))
        cfgs = sweeps(dataset, paths, args)

        def progress(spec: RunSpec, done: int, total: int, dataset: str = dataset) -> None:
            status = "done" if spec.status == "done" else f"FAILED ({spec.message})"
            took = f" in {spec.seconds:.0f} s" if spec.seconds is not None else ""
            print(f"[{dataset}] [{done}/{total}] {spec.out}: {status}{took}", flush=True)

        try:
            run_sweeps(cfgs, on_event=progress)
        except RlrecError as exc:  # the table shows what finished
            print(f"[{dataset}] {exc}", flush=True)
        runs = {
            agent: [cfg.out / f"seed_{s}" for s in args.seeds]
            for agent, cfg in zip(args.agents, cfgs, strict=True)
        }
        report[dataset] = table(dataset, runs)
        curves = {
            a: [d for d in dirs if (d / "summary.json").is_file()] for a, dirs in runs.items()
        }
        try:
            write_curves({a: d for a, d in curves.items() if d}, WORK / "report" / dataset)
        except Exception as exc:  # plots are a convenience; the table is the result
            print(f"(no learning curves: {exc})")
    out = WORK / "report" / f"results_it{args.iterations}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


PHASES = (  # agent steps timed by --timing (HAC's update order), then the simulator step
    "act",
    "next_target",
    "critic_state",
    "critic_step",
    "actor_q_step",
    "alignment_step",
    "supervised_step",
    "soft_update",
)


def timed(obj: Any, name: str, totals: dict[str, float]) -> None:
    """Wrap ``obj.name`` so that its wall time accumulates in ``totals[name]``."""
    inner = getattr(obj, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0

    setattr(obj, name, wrapper)


def timing(args: argparse.Namespace) -> None:
    """One timed HAC run per ``--kernels`` entry, in this process: the actor's attention (``torch``,
    ``numba``, ``auto``), or ``baseline``, PyTorch's attention with the dropout words drawn by torch's
    own ``random_`` instead of :mod:`rlrec.models.torch_mt19937` (the code before either kernel)."""
    torch.set_num_threads(args.threads)
    paths = prepare("ml100k", ML100K)
    for kernel in args.kernels:
        if kernel == "baseline":  # the code before the kernels: torch's attention, torch's draws
            with torch_mt19937.disabled():
                timed_run(args, paths, "torch", "baseline: attention torch, dropout draws by torch")
        else:
            timed_run(args, paths, kernel)


def timed_run(
    args: argparse.Namespace, paths: dict[str, Path], kernel: str, label: str = ""
) -> None:
    log_every = min(100, args.iterations)
    cfg = build_config(
        OnlineTrainConfig,
        path=ROOT / "configs" / "sim" / "agents" / "hac.yaml",
        overrides=[
            f"data={paths['data']}",
            f"urm={paths['urm']}",
            f"eval_urm={paths['eval_urm']}",
            f"out={WORK / 'timing'}",
            f"agent.policy.attention_kernel={kernel}",
            "device=cpu",
            f"train.num_threads={args.threads}",
            "eval.users=64",
            "eval.val_users=32",
            f"train.iterations={args.iterations}",
            f"train.log_every={log_every}",
            f"train.eval_every={args.iterations // log_every * log_every or log_every}",
        ],
    )
    t0 = time.perf_counter()
    trainer = OnlineTrainer(cfg, overwrite=True)
    totals: dict[str, float] = {}
    for name in PHASES:
        timed(trainer.agent, name, totals)
    timed(trainer.sim, "step", totals)
    summary = trainer.fit()
    train = [
        r
        for line in (WORK / "timing" / "metrics.jsonl").read_text().splitlines()
        if (r := json.loads(line))["kind"] == "train"
    ]
    ends = [r["step"] / r["iterations_per_s"] for r in train]  # seconds at each window's end
    windows = [log_every / (b - a) for a, b in itertools.pairwise(ends)]
    steady = statistics.median(windows) if windows else summary["iterations_per_s"]
    print(
        f"HAC on ML-100K (1,682 items, K = 10, H = 50, 32 users/step, batch 64), attention "
        f"{label or 'kernel ' + kernel}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}:\n"
        f"  {summary['iterations']} iterations: {summary['iterations_per_s']:.2f} iterations/s "
        f"overall, {steady:.2f} in the steady state (median of the {log_every}-iteration windows "
        f"after the first); whole command {time.perf_counter() - t0:.0f} s\n"
        f"  projected time of 50,000 iterations: {50_000 / steady / 60:.0f} min "
        f"(+ prefill, validations and checkpoints)\n  time per iteration (prefill included):"
    )
    spent = sum(totals.values())
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"    {name:16s} {100 * seconds / spent:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None, help="50,000 (timing: 300)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--timing", action="store_true", help="measure HAC iterations/s only")
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["auto"],
        choices=["auto", "torch", "numba", "baseline"],
        help="timing: one run per entry, in order (policy.attention_kernel; baseline: torch "
        "attention and torch's own dropout draws)",
    )
    args = parser.parse_args()
    if args.iterations is None:
        args.iterations = 300 if args.timing else 50_000
    if args.timing:
        timing(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
