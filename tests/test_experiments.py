"""Sweeps (grids, searches, sim runs), seed aggregation under each protocol, and the report."""

from __future__ import annotations

import json
import statistics
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import CliResult

from rlrec.errors import ConfigError
from rlrec.experiments import launch as launch_module
from rlrec.experiments import sweep as sweep_module
from rlrec.experiments.kinds import TRAIN
from rlrec.experiments.launch import Launcher, RunSpec, omp_threads, thread_plan
from rlrec.experiments.report import _panels
from rlrec.experiments.results import Run, find_runs, group_runs
from rlrec.experiments.search import TrialWatch
from rlrec.experiments.sweep import SweepConfig, plan


def fake_run(
    root: Path,
    name: str,
    *,
    seed: int,
    kind: str = "ccql",
    variant: str = "sampled",
    dataset_hash: str = "h1",
    top: list[tuple[int, float, float, float, float]] = (),
) -> Path:
    """A finished run directory; ``top`` rows: (step, val ndcg_p@10, val hr_c@5, test ndcg_p@10, test hr_c@5)."""
    run = root / name
    run.mkdir(parents=True)
    config = {
        "data": "data/x",
        "out": str(run),
        "seed": seed,
        "objective": {"kind": kind, "cql_variant": variant},
        "encoder": {"kind": "sasrec"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "run.json").write_text(
        json.dumps({"dataset": "data/x", "dataset_content_hash": dataset_hash})
    )
    entries = [
        {
            "step": step,
            "val": {"ndcg_purchase@10": vn, "hr_click@5": vh},
            "test": {
                "ndcg_purchase@10": tn,
                "hr_click@5": th,
                "hr_click@10": th,
                "reward@10": 10 * th,
            },
        }
        for step, vn, vh, tn, th in top
    ]
    summary = {
        "select_metric": "ndcg_purchase@10",
        "test": entries[0]["test"],
        "top": entries,
        "stability": {
            "flags": [{"kind": "val_drop", "step": 30, "value": 0.1, "threshold": 0.2}]
            if seed
            else []
        },
    }
    (run / "summary.json").write_text(json.dumps(summary))
    records = [{"kind": "val", "step": s, "ndcg_purchase@10": vn} for s, vn, *_ in sorted(top)]
    records += [{"kind": "train", "step": s, "td_pos": 0.1 * s, "q_pos": 1.0} for s, *_ in top]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


TOPS = {
    0: [(20, 0.5, 0.1, 0.40, 0.30), (30, 0.4, 0.9, 0.20, 0.50), (10, 0.3, 0.5, 0.10, 0.20)],
    1: [(10, 0.6, 0.2, 0.50, 0.10), (30, 0.2, 0.8, 0.30, 0.70), (20, 0.1, 0.3, 0.00, 0.60)],
}


def test_protocols_aggregate_seeds_by_hand(tmp_path: Path) -> None:
    for seed, top in TOPS.items():
        fake_run(tmp_path, f"ccql/seed_{seed}", seed=seed, top=top)
    (group,) = group_runs(find_runs([tmp_path]))
    assert group.label == "ccql/sasrec" and len(group.runs) == 2
    # best: the first kept checkpoint's test value per seed
    mean, std, n = group.stats("best", "ndcg_purchase@10", 5)
    assert (mean, n) == (pytest.approx(0.45), 2) and std == pytest.approx(
        statistics.stdev([0.4, 0.5])
    )
    # top-2 mean by the select metric: seed 0 → (0.40 + 0.20)/2, seed 1 → (0.50 + 0.30)/2
    assert group.stats("top_k_mean", "ndcg_purchase@10", 2)[0] == pytest.approx((0.3 + 0.4) / 2)
    # per metric: hr_click@5's own top-2 by its validation value: seed 0 → steps 30, 10 → (0.5 + 0.2)/2;
    # seed 1 → steps 30, 20 → (0.7 + 0.6)/2
    per = group.stats("per_metric_top_k", "hr_click@5", 2)
    assert per[0] == pytest.approx((0.35 + 0.65) / 2)
    # the select-metric ranking would have picked other checkpoints for that column
    assert group.stats("top_k_mean", "hr_click@5", 2)[0] == pytest.approx((0.4 + 0.4) / 2)


def test_groups_split_by_config_and_label_their_difference(tmp_path: Path) -> None:
    fake_run(tmp_path, "a/seed_0", seed=0, top=TOPS[0])
    fake_run(tmp_path, "a/seed_1", seed=1, top=TOPS[1])
    fake_run(tmp_path, "b/seed_0", seed=0, variant="legacy", top=TOPS[1])
    labels = [g.label for g in group_runs(find_runs([tmp_path]))]
    assert labels == [
        "ccql/sasrec (objective.cql_variant=sampled)",
        "ccql/sasrec (objective.cql_variant=legacy)",
    ]


def test_report_writes_table_plots_and_marks_the_best(tmp_path: Path, cli) -> None:
    for seed, top in TOPS.items():
        fake_run(tmp_path / "runs", f"ccql/seed_{seed}", seed=seed, top=top)
    fake_run(tmp_path / "runs", "sac/seed_0", seed=0, kind="sac", top=[(10, 0.9, 0.1, 0.9, 0.05)])
    result: CliResult = cli("report", tmp_path / "runs")
    assert result.code == 0, result.err
    out = tmp_path / "runs" / "report"
    md = (out / "report.md").read_text()
    # reward@10 = 10·hr_click@10: seeds 3.0 and 1.0; no purchase metrics were logged ("–")
    assert (
        "| ccql/sasrec | 2 | **2.0 ± 1.4** | – | – | – | 0.4500 ± 0.0707 | **0.2000 ± 0.1414** |"
        in md
    )
    assert (
        "| sac/sasrec | 1 | 0.5 (n = 1) | – | – | – | **0.9000 (n = 1)** | 0.0500 (n = 1) |" in md
    )
    # best validation steps 20 and 10; last vs best: 1 − 0.4/0.5 and 1 − 0.2/0.6
    assert "| ccql/sasrec | 1/2 | val_drop: 30 | 15 | 43.3% |" in md
    assert (out / "val_curves.png").stat().st_size > 1000
    assert (out / "train_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert results["methods"][0]["metrics"]["ndcg_purchase@10"]["mean"] == pytest.approx(0.45)
    # an existing report is not overwritten without --overwrite
    before = md
    again = cli("report", tmp_path / "runs", "--protocol", "top_k_mean")
    assert again.code == 2 and "already exists" in again.err
    assert (out / "report.md").read_text() == before
    assert (
        cli(
            "report",
            tmp_path / "runs",
            "--overwrite",
            "--no-plots",
            "--protocol",
            "per_metric_top_k",
        ).code
        == 0
    )
    assert "optimistic" in (out / "report.md").read_text()


def test_report_bad_inputs(tmp_path: Path, cli) -> None:
    fake_run(tmp_path / "r", "a", seed=0, top=TOPS[0])
    fake_run(tmp_path / "r", "b", seed=1, top=TOPS[1], dataset_hash="other")
    result = cli("report", tmp_path / "r" / "a", tmp_path / "r" / "b", "--out", tmp_path / "rep")
    assert result.code == 2 and "a report compares runs on one dataset only" in result.err
    assert not (tmp_path / "rep").exists()
    (tmp_path / "r" / "a" / "metrics.jsonl").unlink()
    result = cli("report", tmp_path / "r" / "a", "--out", tmp_path / "rep")
    assert result.code == 2 and "metrics.jsonl: missing" in result.err
    (tmp_path / "r" / "b" / "summary.json").unlink()
    result = cli("report", tmp_path / "r" / "b")
    assert result.code == 2 and "summary.json: missing (has the run finished?)" in result.err
    assert cli("report", tmp_path / "nowhere").code == 2
    assert "--protocol must be one of" in cli("report", tmp_path / "r", "--protocol", "mean").err
    assert not (tmp_path / "rep").exists() and not (tmp_path / "r" / "report").exists()


def test_sweep_plan_grid_times_seeds_and_validates_first(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump({"data": str(tiny_dataset), "out": "x", "objective": {"kind": "ccql"}})
    )
    cfg = SweepConfig(
        base=base,
        out=tmp_path / "sw",
        seeds=[3, 4],
        grid={
            "objective.cql_alpha": [0.1, 1.0],
            "objective.contrastive": [{"loss": "ts2vec_legacy"}],
        },
        overrides={"train.epochs": 2},
    )
    specs = plan(cfg)
    assert [s.name for s in specs] == [
        "point_000/seed_3",
        "point_000/seed_4",
        "point_001/seed_3",
        "point_001/seed_4",
    ]
    assert specs[2].overrides == [
        "train.epochs=2",
        "objective.cql_alpha=1.0",
        "objective.contrastive={loss: ts2vec_legacy}",
        "seed=3",
        f"out={tmp_path / 'sw' / 'point_001' / 'seed_3'}",
    ]
    bad = cfg.model_copy(update={"grid": {"objective.cql_alfa": [0.1]}})
    with pytest.raises(
        ConfigError,
        match=r"point_000/seed_3 \(objective.cql_alfa=0.1\): .*unknown config key "
        r"'objective.ccql.cql_alfa'",
    ):
        plan(bad)
    assert [s.name for s in plan(cfg.model_copy(update={"grid": {}}))] == ["seed_3", "seed_4"]


def tiny_base(tmp_path: Path, data: Path, **train: object) -> Path:
    """An rlrec train config of a few seconds (GRU 8, CO, 9 steps, validation every 3)."""
    base = tmp_path / "base.yaml"
    loop = {"batch_size": 32, "max_steps": 9, "eval_every": 3, "log_every": 3, "tensorboard": False}
    base.write_text(
        yaml.safe_dump(
            {
                "data": str(data),
                "out": "unused",
                "encoder": {"kind": "gru", "hidden": 8},
                "objective": {"kind": "co", "warmup_steps": 5},
                "train": {**loop, **train},
            }
        )
    )
    return base


def test_sweep_runs_seeds_as_processes_and_skips_finished_runs(
    tiny_dataset: Path, tmp_path: Path, cli
) -> None:
    base = tiny_base(tmp_path, tiny_dataset, max_steps=6)
    result = cli(
        "sweep", "--base", base, "--out", tmp_path / "sw", "--set", "seeds=[0,1]", "--set", "jobs=2"
    )
    assert result.code == 0, result.err
    index = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["status"] for r in index["runs"]] == ["done", "done"]
    assert index["threads_per_job"] >= 1 and "--set" in index["runs"][0]["command"]
    summaries = [
        json.loads((tmp_path / "sw" / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)
    ]
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["steps"] == 6 for s in summaries)
    assert summaries[0]["test"] != summaries[1]["test"]  # different seeds, different runs
    report = cli("report", tmp_path / "sw", "--protocol", "top_k_mean")
    assert report.code == 0, report.err
    assert "| co/gru | 2 |" in (tmp_path / "sw" / "report" / "report.md").read_text()
    assert (tmp_path / "sw" / "report" / "train_curves.png").stat().st_size > 1000
    again = cli("sweep", "--base", base, "--out", tmp_path / "sw", "--set", "seeds=[0,1]")
    assert again.code == 0 and again.err.count("already finished") == 2
    bad = cli(
        "sweep", "--base", base, "--out", tmp_path / "bad", "--set", "grid={objective.kind: [nope]}"
    )
    assert (
        bad.code == 2
        and "sweep run point_000/seed_0" in bad.err
        and not (tmp_path / "bad").exists()
    )


# ----------------------------------------------------------------------------- inputs and threads


def test_thread_plan_shares_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # jobs ≥ cores → 1 thread each; fewer jobs → cores // jobs; no jobs → one 1-thread run per core
    assert thread_plan(cores=4, jobs=8, threads=None, omp=None) == (8, 1)
    assert thread_plan(cores=4, jobs=4, threads=None, omp=None) == (4, 1)
    assert thread_plan(cores=8, jobs=3, threads=None, omp=None) == (3, 2)
    assert thread_plan(cores=6, jobs=None, threads=None, omp=None) == (6, 1)
    # the user's OMP_NUM_THREADS sets threads per run, and so how many runs fit
    assert thread_plan(cores=8, jobs=None, threads=None, omp=2) == (4, 2)
    assert thread_plan(cores=8, jobs=2, threads=None, omp=3) == (2, 3)
    assert thread_plan(cores=8, jobs=None, threads=4, omp=2) == (2, 4)  # explicit wins
    assert omp_threads("3") == 3 and omp_threads("4,2") == 4 and omp_threads("") is None
    with pytest.raises(ConfigError, match="OMP_NUM_THREADS='x'"):
        omp_threads("x")
    # the sweep reads the affinity/cgroup count of rlrec.device and the environment
    monkeypatch.setattr(sweep_module, "available_cpus", lambda: 6)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = SweepConfig(base=Path("b.yaml"), out=Path("o"), jobs=4)
    assert sweep_module.threads(cfg) == (4, 1)
    assert sweep_module.threads(cfg.model_copy(update={"jobs": 2})) == (2, 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert sweep_module.threads(cfg.model_copy(update={"jobs": None})) == (3, 2)


def test_sweep_checks_every_run_before_starting_any(
    tiny_dataset: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run was started")

    monkeypatch.setattr(launch_module.subprocess, "Popen", no_process)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"data": str(tiny_dataset), "out": "x"}))
    (tmp_path / "empty").mkdir()
    cases = {
        f"grid={{data: [{tiny_dataset}, {tmp_path / 'nowhere'}]}}": (
            "sweep run point_001/seed_0 (data=",
            "dataset directory not found",
        ),
        f"overrides={{data: {tmp_path / 'empty'}}}": ("sweep run seed_0: ", "manifest"),
        "overrides={train.select_metric: ndcg@3}": ("sweep run seed_0: ", "select_metric"),
        "overrides={device: 'tpu'}": ("sweep run seed_0: ", "unknown device"),
    }
    for setting, needles in cases.items():
        result = cli("sweep", "--base", base, "--out", tmp_path / "sw", "--set", setting)
        assert result.code == 2, setting
        line = result.err.strip()
        assert line.startswith("error: ") and "\n" not in line, result.err
        assert all(n in line for n in needles), (setting, line)
        assert not (tmp_path / "sw").exists()


# ----------------------------------------------------------------------------- search (optuna)


def search_file(tmp_path: Path, base: Path, **search: object) -> Path:
    path = tmp_path / "search.yaml"
    spec = {
        "n_trials": 2,
        "sampler": "random",
        "metric": "val ndcg_purchase@10",
        "space": {
            "objective.lr": {"low": 1e-4, "high": 1e-1, "log": True},
            "train.batch_size": {"choices": [16, 32]},
        },
        "poll_seconds": 0.1,
        **search,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "base": str(base),
                "out": str(tmp_path / "sw"),
                "seeds": [0],
                "jobs": 1,
                "search": spec,
            }
        )
    )
    return path


def test_search_runs_trials_as_processes_and_resumes_the_study(
    tiny_dataset: Path, tmp_path: Path, cli
) -> None:
    optuna = pytest.importorskip("optuna")
    # trials compared on another metric than the one runs select their checkpoint on
    config = search_file(tmp_path, tiny_base(tmp_path, tiny_dataset), metric="val hr_click@5")
    result = cli("sweep", "--config", config)
    assert result.code == 0, result.err
    sw = tmp_path / "sw"
    index = json.loads((sw / "sweep.json").read_text())
    assert [(r["name"], r["status"]) for r in index["runs"]] == [
        ("trial_000", "done"),
        ("trial_001", "done"),
    ]
    for entry in index["runs"]:
        run = sw / entry["name"]
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["train"]["batch_size"] == entry["point"]["train.batch_size"]
        assert saved["objective"]["lr"] == pytest.approx(entry["point"]["objective.lr"])
        # the value: validation hr_click@5 at the checkpoint the run selected (ndcg_purchase@10)
        best = json.loads((run / "summary.json").read_text())["best_step"]
        val = [
            r
            for line in (run / "metrics.jsonl").read_text().splitlines()
            if (r := json.loads(line))["kind"] == "val"
        ]
        assert entry["value"] == next(r["hr_click@5"] for r in val if r["step"] == best)
    assert "best trial: trial_00" in result.out
    # the study is JSON lines (no pickle), and holds each trial's validation curve
    lines = (sw / "optuna.journal").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sw / "optuna.journal"))
    )
    study = optuna.load_study(study_name="rlrec-sweep", storage=storage)
    assert sorted(study.trials[0].intermediate_values) == [3, 6, 9]
    # a trial left running by a killed sweep is continued, and counts towards n_trials
    stale = study.ask()
    stale.suggest_float("objective.lr", 1e-4, 1e-1, log=True)
    stale.suggest_categorical("train.batch_size", [16, 32])
    again = cli("sweep", "--config", config, "--set", "search.n_trials=3")
    assert again.code == 0, again.err
    states = [t.state for t in optuna.load_study(study_name="rlrec-sweep", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3
    assert (sw / "trial_002" / "summary.json").is_file() and not (sw / "trial_003").exists()
    # another space is another search: refused, nothing touched
    before = (sw / "sweep.json").read_text()
    other = cli("sweep", "--config", config, "--set", "search.direction=minimize")
    assert other.code == 2 and "holds another sweep" in other.err
    assert (sw / "sweep.json").read_text() == before
    # a grid sweep into the search's directory: refused, its index untouched
    grid = cli("sweep", "--base", tiny_base(tmp_path, tiny_dataset), "--out", sw)
    assert grid.code == 2 and "search" in grid.err, grid.err
    assert (sw / "sweep.json").read_text() == before
    report = cli("report", sw, "--no-plots")
    assert report.code == 0, report.err
    assert report.out.count("(n = 1)") >= 3 * 3  # one seed per trial: no ± 0


def test_search_config_errors_before_anything_exists(
    tiny_dataset: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tiny_base(tmp_path, tiny_dataset)
    config = search_file(tmp_path, base)
    cases = {
        "search.metric=test ndcg_purchase@10": "give 'val METRIC'",
        "search.metric=val ndcg@3": "search.metric 'ndcg@3' is not a metric",
        "seeds=[0,1]": "every trial trains one seed",
        "search.space={train.batch_size: {choices: [16, 0]}}": "train.batch_size=0): ",
        "search.space={objective.lr: {low: 0.1, high: 0.01}}": "low 0.1 is above high 0.01",
        "grid={objective.lr: [0.1]}": "either grid or search",
    }
    for setting, needle in cases.items():
        result = cli("sweep", "--config", config, "--set", setting)
        assert result.code == 2 and needle in result.err, (setting, result.err)
        assert not (tmp_path / "sw").exists()
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the extra were not installed
    result = cli("sweep", "--config", config)
    assert result.code == 2 and "pip install 'rlrec[optuna]'" in result.err
    assert not (tmp_path / "sw").exists()


def test_trial_watch_reports_validations_and_prunes_below_the_median(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    first = study.ask()
    for step, value in ((3, 0.5), (6, 0.6)):
        first.report(value, step)
    study.tell(first, 0.6)
    trial = study.ask()
    log = tmp_path / "metrics.jsonl"
    watch = TrialWatch(log, trial, "ndcg_purchase@10", True, threading.Lock(), set())
    assert watch.poll() is False  # no log yet
    good = json.dumps({"kind": "val", "step": 3, "ndcg_purchase@10": 0.55})
    log.write_text(json.dumps({"kind": "train", "step": 3, "loss": 1.0}) + "\n" + good + "\n")
    assert watch.poll() is False and not trial.should_prune()
    bad = json.dumps({"kind": "val", "step": 6, "ndcg_purchase@10": 0.1})
    with open(log, "a") as fh:
        fh.write(bad[:10])  # a line being written is not read
    assert watch.poll() is False and watch.values == {3: 0.55}
    with open(log, "a") as fh:
        fh.write(bad[10:] + "\n")
    # median rule: the trial's best so far (0.55) is below the first trial's 0.6 at step 6
    assert watch.poll() is True
    assert study.trials[1].intermediate_values == {3: 0.55, 6: 0.1}
    # a resumed run truncates its log to its checkpoint: read again from the start
    log.write_text(json.dumps({"kind": "val", "step": 9, "ndcg_purchase@10": 0.3}) + "\n")
    watch.poll()
    assert watch.values[9] == 0.3


def test_launcher_stops_a_run_that_its_watch_prunes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = Launcher(TRAIN, tmp_path / "base.yaml", tmp_path / "logs", threads=1)
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    monkeypatch.setattr(launcher, "command", lambda spec, overwrite: sleeper)
    spec = RunSpec("trial_000", {}, 0, tmp_path / "trial_000", [])
    calls = []
    launcher.run(spec, watch=lambda: calls.append(1) or len(calls) >= 2, poll_seconds=0.1)
    assert spec.status == "pruned" and spec.returncode != 0 and spec.seconds < 30
    assert len(calls) == 2
    done = RunSpec("seed_0", {}, 0, tmp_path / "seed_0", [])
    monkeypatch.setattr(launcher, "command", lambda spec, overwrite: [sys.executable, "-c", "0"])
    launcher.run(done, watch=lambda: True, poll_seconds=5)
    assert done.status == "done" and done.returncode == 0


# ----------------------------------------------------------------------------- sim runs


def test_sweep_and_report_of_sim_runs(tmp_path: Path, cli) -> None:
    from online_helpers import tiny_lists

    data = tiny_lists(tmp_path)
    base = tmp_path / "hac.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "data": str(data),
                "out": "unused",
                "device": "cpu",
                "agent": {
                    "kind": "hac",
                    "critic": {"hidden": [16]},
                    "policy": {
                        "dim": 8,
                        "n_heads": 2,
                        "ff_dim": 16,
                        "user_hidden": [8],
                        "max_history": 8,
                    },
                },
                "train": {
                    "iterations": 20,
                    "num_envs": 8,
                    "batch_size": 16,
                    "buffer_size": 500,
                    "prefill": 32,
                    "log_every": 5,
                    "eval_every": 10,
                },
                "eval": {"users": 16, "val_users": 8, "batch_size": 16},
            }
        )
    )
    missing = cli(
        "sweep",
        "--base",
        base,
        "--out",
        tmp_path / "sw",
        "--set",
        f"overrides={{urm: {tmp_path / 'nourm'}}}",
    )
    assert missing.code == 2 and "URM directory not found" in missing.err
    assert not (tmp_path / "sw").exists()
    result = cli("sweep", "--base", base, "--out", tmp_path / "sw", "--set", "seeds=[0,1]")
    assert result.code == 0, result.err
    assert "evaluation total_reward_mean" in result.err
    command = json.loads((tmp_path / "sw" / "sweep.json").read_text())["runs"][0]["command"]
    assert command[2:5] == ["rlrec", "sim", "train"]
    summaries = [
        json.loads((tmp_path / "sw" / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)
    ]
    report = cli("report", tmp_path / "sw")
    assert report.code == 0, report.err
    md = (tmp_path / "sw" / "report" / "report.md").read_text()
    assert "| method | seeds | total reward | depth | reward variance |" in md
    rewards = [s["eval"]["best"]["total_reward_mean"] for s in summaries]
    mean, std = statistics.fmean(rewards), statistics.stdev(rewards)
    assert f"| hac | 2 | **{mean:.3f} ± {std:.3f}** |" in md
    assert (tmp_path / "sw" / "report" / "val_curves.png").stat().st_size > 1000
    assert (tmp_path / "sw" / "report" / "train_curves.png").stat().st_size > 1000
    # the online report reads the directories the sweep wrote (README's example)
    online = cli("sim", "online-report", tmp_path / "sw" / "seed_0", tmp_path / "sw" / "seed_1")
    assert online.code == 0 and "mean of 2 run(s)" in online.out, online.err
    top = cli("report", tmp_path / "sw", "--protocol", "top_k_mean", "--out", tmp_path / "r2")
    assert top.code == 2 and "one selected checkpoint" in top.err


# ----------------------------------------------------------------------------- report details


def test_report_curves_include_the_selection_k() -> None:
    run = Run(Path("r"), {}, {}, {"select_metric": "ndcg_purchase@10", "test": {}})
    columns = [
        f"{m}_{e}@{k}" for e in ("purchase", "click") for k in (5, 10, 20) for m in ("hr", "ndcg")
    ]
    keys = [key for key, *_ in _panels([run], columns)["val"][0]]
    assert "ndcg_purchase@10" in keys and "hr_click@5" in keys and "ndcg_click@20" in keys


def test_report_without_matplotlib_writes_tables_and_says_so(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_run(tmp_path / "runs", "a/seed_0", seed=0, top=TOPS[0])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    result = cli("report", tmp_path / "runs", "--out", tmp_path / "rep")
    assert result.code == 0, result.err
    out = tmp_path / "rep"
    assert "curves skipped: matplotlib is not installed (pip install 'rlrec[plot]')" in result.err
    assert "curves skipped" in (out / "report.md").read_text()
    assert not list(out.glob("*.png")) and "png" not in result.out


def test_report_of_a_sweep_leaves_out_unfinished_runs(tmp_path: Path, cli) -> None:
    sw = tmp_path / "sw"
    fake_run(sw, "trial_000", seed=0, top=TOPS[0])
    pruned = fake_run(sw, "trial_001", seed=0, variant="legacy", top=TOPS[1])
    (pruned / "summary.json").unlink()  # stopped early: no summary
    (sw / "sweep.json").write_text(
        json.dumps(
            {
                "runs": [
                    {"name": "trial_000", "status": "done"},
                    {"name": "trial_001", "status": "pruned"},
                ]
            }
        )
    )
    result = cli("report", sw, "--no-plots")
    assert result.code == 0, result.err
    md = (sw / "report" / "report.md").read_text()
    assert "| ccql/sasrec | 1 |" in md and "1 unfinished sweep run(s) left out" in md
    assert "trial_001 (pruned)" in result.err
