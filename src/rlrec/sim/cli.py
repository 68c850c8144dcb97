"""``rlrec sim ...``: list data, the user-response model and the online agents (a typer sub-app,
``sim_app``).

``rlrec sim prepare SOURCE --raw PATH --out DIR``, ``rlrec sim train-urm --config FILE``,
``rlrec sim train --config FILE [--agent hac] [--resume|--overwrite]`` and
``rlrec sim evaluate RUN_DIR [--episodes N] [--out FILE]``,
``rlrec sim world-check --data DIR --urm DIR [--users N]`` and
``rlrec sim online-report RUN_DIR... [--window 300]``. User errors raise
:class:`rlrec.errors.RlrecError`, which the root CLI prints on one line (exit 2). This module does
not import :mod:`rlrec.cli`, so the root app can import ``sim_app`` at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlrec.cli_common import (
    ConfigOpt,
    OutDirOpt,
    OverwriteOpt,
    RawOpt,
    SetOpt,
    err,
    given,
    new_app,
    out,
    source_section,
    stages,
)
from rlrec.config import build_config
from rlrec.errors import RlrecError
from rlrec.fsutil import atomic_write_json
from rlrec.outputs import check_output_file

sim_app = new_app("List-wise online RL: list data, user-response model, simulator, agents.")


@sim_app.command("prepare")
def prepare(
    source: Annotated[
        str, typer.Argument(help="movielens | recbole | kuairand | rl4rs | obd | synthetic")
    ],
    out_dir: OutDirOpt,
    raw: RawOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Turn raw logs into list records (Parquet + manifest.json), atomically."""
    from rlrec.sim.prepare import ListPrepareConfig, prepare_lists

    cfg = build_config(
        ListPrepareConfig, path=config, overrides=set_, cli=source_section(source, raw)
    )
    with stages("preparing") as advance:
        manifest = prepare_lists(cfg, out_dir, overwrite=overwrite, progress=advance)
    c, s = manifest["counts"], manifest["splits"]
    out.print(
        f"wrote {out_dir}: {c['records']:,} lists of {manifest['slate_size']} "
        f"({s['train']['records']:,} train / {s['test']['records']:,} test), "
        f"{manifest['n_users']:,} users, {manifest['n_items']:,} items, "
        f"positive rate {c['positive_rate']:.3f}"
    )


@sim_app.command("train-urm")
def train_urm(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="List dataset (config key data).", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="URM directory (config key out).", show_default=False),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a user-response model; reports validation AUC, log-loss and calibration per epoch."""
    from rlrec.sim.urm_train import URMTrainConfig, URMTrainer

    cfg = build_config(
        URMTrainConfig, path=config, overrides=set_, cli=given(data=data, out=out_dir)
    )

    def on_epoch(epoch: int, total: int, m: dict[str, float]) -> None:
        line = f"epoch {epoch}/{total}: train loss {m['train_loss']:.4f}"
        if "val_auc" in m:
            line += (
                f", val AUC {m['val_auc']:.4f} (per position {m['val_auc_per_position']:.4f}), "
                f"log-loss {m['val_log_loss']:.4f}, mean p {m['val_mean_prob']:.3f} vs rate "
                f"{m['val_positive_rate']:.3f}, ECE {m['val_ece']:.3f}"
            )
        err.print(line + f" ({m['seconds']:.1f} s)")

    summary = URMTrainer(cfg, overwrite=overwrite, on_epoch=on_epoch).fit()
    sel = summary["selected"]
    if summary.get("baselines") and "val_auc" in sel:
        err.print(_baseline_table(summary))
    auc = f", val AUC {sel['val_auc']:.4f}" if "val_auc" in sel else ""
    out.print(
        f"wrote {cfg.out}: URM ({cfg.role} environment, fit on {summary['fit_split']}), "
        f"epoch {summary['selected_epoch']} kept{auc}"
    )


def _baseline_table(summary: dict) -> str:
    """The kept URM epoch beside the baselines, on the validation split."""
    sel = summary["selected"]
    rows = [(f"URM (epoch {summary['selected_epoch']})", {k[4:]: v for k, v in sel.items()})]
    rows += list(summary["baselines"].items())
    lines = [
        f"{summary['val_split']} split: {'model':<22} {'AUC':>7} {'per pos.':>8} "
        f"{'log-loss':>8} {'ECE':>6}"
    ]
    for name, m in rows:
        lines.append(
            f"{'':<{len(summary['val_split']) + 7}} {name:<22} {m['auc']:>7.4f} "
            f"{m['auc_per_position']:>8.4f} {m['log_loss']:>8.4f} {m['ece']:>6.3f}"
        )
    return "\n".join(lines)


def _headline(m: dict[str, float]) -> str:
    return (
        f"total reward {m['total_reward_mean']:.3f} ± {m['total_reward_se']:.3f} (se), "
        f"depth {m['depth_mean']:.2f}, reward variance {m['total_reward_var']:.3f}"
    )


@sim_app.command("train")
def train(
    config: ConfigOpt = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            help="Agent (config key agent.kind): hac, ddpg, td3, a2c, pgra, online_sl, offline_sl.",
            show_default=False,
        ),
    ] = None,
    set_: SetOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory (config key out).", show_default=False),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in its directory.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete an existing run directory and start over.")
    ] = False,
) -> None:
    """Train an online agent in the simulator; validate, checkpoint, evaluate (docs/online.md)."""
    from rlrec.online.config import OnlineTrainConfig
    from rlrec.online.trainer import OnlineTrainer

    if resume and overwrite:
        raise RlrecError("give at most one of --resume and --overwrite")
    cli = given(out=out_dir)
    if agent is not None:
        cli["agent"] = {"kind": agent}
    cfg = build_config(OnlineTrainConfig, path=config, overrides=set_, cli=cli)
    summary = OnlineTrainer(cfg, resume=resume, overwrite=overwrite).fit()
    rate = summary["iterations_per_s"]
    speed = f", {rate:.1f} iterations/s" if rate else ""
    out.print(f"wrote {cfg.out}: {summary['iterations']:,} iterations{speed}")
    for which, metrics in summary["eval"].items():
        out.print(f"  eval ({which}): {_headline(metrics)}")


@sim_app.command("evaluate")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by rlrec sim train.")],
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            min=1,
            help="Evaluation users (default: the run's eval.users).",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best (selected on validation) or last.")
    ] = "best",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the metrics as JSON.", show_default=False),
    ] = None,
    plots: Annotated[
        bool | None,
        typer.Option(
            "--plots/--no-plots",
            help="Write learning-curve PNGs (default: when matplotlib is installed).",
            show_default=False,
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Evaluate a trained policy in the evaluation environment (P-HAC §3.1.4); plot its curves."""
    from rlrec.experiments.report import NO_MATPLOTLIB, matplotlib_available
    from rlrec.online.evaluate import BEST, LAST, evaluate_run, write_curves

    if checkpoint not in (BEST, LAST):
        raise RlrecError(f"--checkpoint must be best or last, got '{checkpoint}'")
    if plots and not matplotlib_available():
        raise RlrecError("--plots needs matplotlib: pip install 'rlrec[plot]'")
    if out_file is not None:
        check_output_file(out_file, overwrite=overwrite, inputs=[run_dir])
    result = evaluate_run(run_dir, episodes=episodes, checkpoint=checkpoint)
    m = result["metrics"]
    out.print(
        f"{result['agent']} (seed {result['seed']}, {checkpoint}) on {result['users']:,} "
        f"'{result['start_split']}' users: {_headline(m)}"
    )
    out.print(
        f"  reward/step {m['reward_per_step']:.4f}, coverage {m['coverage']:.3f}"
        + (f", positive rate {m['positive_rate']:.3f}" if "positive_rate" in m else "")
    )
    if out_file is not None:
        atomic_write_json(out_file, result)
        out.print(f"wrote {out_file}")
    if plots is None and not matplotlib_available():
        out.print(NO_MATPLOTLIB)
    elif plots is not False:
        target = out_file.parent if out_file is not None else run_dir
        for path in write_curves({result["agent"]: [run_dir]}, target):
            out.print(f"wrote {path}")


@sim_app.command("world-check")
def world_check_cmd(
    data: Annotated[
        Path, typer.Option("--data", help="List dataset (rlrec sim prepare).", show_default=False)
    ],
    urm: Annotated[
        Path | None,
        typer.Option(
            "--urm",
            help="URM directory (default: the dataset's planted URM, synthetic data only).",
            show_default=False,
        ),
    ] = None,
    users: Annotated[int, typer.Option("--users", "-n", min=1, help="Start records.")] = 1000,
    split: Annotated[
        str, typer.Option("--split", help="Records users start from: train, test or all.")
    ] = "test",
    seed: Annotated[int, typer.Option("--seed", help="Users and response noise.")] = 0,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the result as JSON.", show_default=False),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Random, most-popular and oracle slates on the same users: does the world tell them apart?"""
    from rlrec.online.world_check import world_check

    if split not in ("train", "test", "all"):
        raise RlrecError(f"--split must be train, test or all, got '{split}'")
    if out_file is not None:
        check_output_file(out_file, overwrite=overwrite, inputs=[data])
    result = world_check(data, urm, users=users, start_split=split, seed=seed)
    out.print(f"{result['users']:,} '{split}' users, common random numbers (seed {seed}):")
    for name, m in result["policies"].items():
        out.print(f"  {name:8s} {_headline(m)}")
    out.print(
        f"  oracle − {result['oracle_minus']}: {result['oracle_margin']:+.3f} total reward "
        f"({result['oracle_margin_in_se']:.1f} standard errors, paired)"
    )
    if out_file is not None:
        atomic_write_json(out_file, result)
        out.print(f"wrote {out_file}")


@sim_app.command("online-report")
def online_report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories of rlrec sim train (e.g. one per seed).")
    ],
    window: Annotated[
        int, typer.Option("--window", "-w", min=1, help="Smoothing window in report lines.")
    ] = 300,
    all_episodes: Annotated[
        bool,
        typer.Option(
            "--all-episodes",
            help="Record every finished session (rlrec) instead of the last slot's (reference).",
        ),
    ] = False,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the report as JSON.", show_default=False),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """The reference code's training-time report, P-HAC's protocol (docs/online.md)."""
    from rlrec.online.training_report import hac_online_report

    if out_file is not None:
        check_output_file(out_file, overwrite=overwrite, inputs=run_dirs)
    report = hac_online_report(run_dirs, window, last_only=not all_episodes)
    for run, values in report["runs"].items():
        out.print(
            f"{run}: total reward {values['average_total_reward']:.3f}, depth "
            f"{values['average_n_step']:.2f}, reward variance {values['reward_variance']:.3f}"
        )
    m = report["mean"]
    out.print(
        f"mean of {len(report['runs'])} run(s), window {window}: total reward "
        f"{m['average_total_reward'][0]:.3f} ± {m['average_total_reward'][1]:.3f}, depth "
        f"{m['average_n_step'][0]:.2f} ± {m['average_n_step'][1]:.2f}, reward variance "
        f"{m['reward_variance'][0]:.3f} ± {m['reward_variance'][1]:.3f}"
    )
    if out_file is not None:
        atomic_write_json(out_file, report)
        out.print(f"wrote {out_file}")
