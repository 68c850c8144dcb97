"""Sweeps, seed aggregation under each protocol, and the report (spec-offline §E.6)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import CliResult

from rlrec.errors import ConfigError
from rlrec.experiments.results import find_runs, group_runs
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


def test_sweep_runs_seeds_as_processes_and_skips_finished_runs(
    tiny_dataset: Path, tmp_path: Path, cli
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "data": str(tiny_dataset),
                "out": "unused",
                "encoder": {"kind": "gru", "hidden": 8},
                "objective": {"kind": "co", "warmup_steps": 5},
                "train": {
                    "batch_size": 32,
                    "max_steps": 6,
                    "eval_every": 3,
                    "log_every": 3,
                    "tensorboard": False,
                },
            }
        )
    )
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
