"""``rlrec train | evaluate | recommend`` end to end, and their bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import tiny_train_config
from test_cli_errors import assert_clean_failure

from rlrec.config import config_to_yaml


@pytest.fixture(scope="module")
def run_dir(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny SA2C run (trained once for the module)."""
    from rlrec.train.trainer import Trainer

    out = tmp_path_factory.mktemp("run") / "sa2c"
    Trainer(
        tiny_train_config(tiny_dataset, out, objective={"kind": "sa2c", "pretrain_steps": 20})
    ).fit()
    return out


def write_config(tmp_path: Path, data: Path, **overrides: object) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(config_to_yaml(tiny_train_config(data, tmp_path / "run", **overrides)))
    return path


def test_train_prints_test_metrics_and_refuses_to_overwrite(
    cli, tiny_dataset: Path, tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path, tiny_dataset, train={"max_steps": 10, "eval_every": 5, "tensorboard": False}
    )
    result = cli("train", "--config", cfg)
    assert result.code == 0, result.err
    assert (
        "test metrics of the best validation checkpoint" in result.out
        and "ndcg_purchase" in result.out
    )
    before = (tmp_path / "run" / "summary.json").read_bytes()
    assert_clean_failure(
        cli("train", "--config", cfg), "run directory already exists; pass --resume"
    )
    assert (tmp_path / "run" / "summary.json").read_bytes() == before
    assert_clean_failure(
        cli("train", "--config", cfg, "--resume", "--set", "seed=5"),
        "the run was started with a different config",
    )
    assert cli("train", "--config", cfg, "--overwrite").code == 0


def test_evaluate_both_splits_and_json_output(cli, run_dir: Path, tmp_path: Path) -> None:
    result = cli("evaluate", run_dir, "--split", "val")
    assert result.code == 0, result.err
    assert "on val" in result.out and "hr_click" in result.out
    out = tmp_path / "m.json"
    assert cli("evaluate", run_dir, "--out", out).code == 0
    saved = json.loads(out.read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert saved["metrics"]["ndcg_purchase@10"] == pytest.approx(
        summary["test"]["ndcg_purchase@10"]
    )
    assert_clean_failure(cli("evaluate", run_dir, "--out", out), "output already exists")
    assert "(full ranking)" in result.out and "mrr_purchase" in result.out
    assert saved["eval_protocol"] == summary["eval_protocol"] == "full"
    assert "coverage" not in result.out  # list metrics are opt-in


def test_evaluate_with_changed_eval_settings(cli, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lists.json"
    lists = "eval.list_metrics=[coverage,diversity,novelty]"
    result = cli("evaluate", run_dir, "--set", lists, "--out", out)
    assert result.code == 0, result.err
    assert "coverage" in result.out and "diversity_head" in result.out and "novelty" in result.out
    metrics = json.loads(out.read_text())["metrics"]
    assert 0 < metrics["coverage@10"] <= 1 and metrics["novelty@10"] > 0
    # the 60-item catalogue is too small for 100 negatives: one clear line, no traceback
    assert_clean_failure(
        cli("evaluate", run_dir, "--set", "eval.protocol=uni100"), "needs at least 101 items"
    )
    assert_clean_failure(
        cli("evaluate", run_dir, "--set", "train.lr=1"), "changes eval.* settings only"
    )
    assert_clean_failure(cli("evaluate", run_dir, "--set", "eval.protocol=pop5"), "eval.protocol")


def test_recommend_single_and_batch(cli, run_dir: Path, tmp_path: Path) -> None:
    items = pl.read_parquet(run_dir / "items.parquet").get_column("item_id").to_list()
    history = ",".join(map(str, items[:3]))
    result = cli("recommend", run_dir, "--history", history, "-k", "5")
    assert result.code == 0, result.err
    rows = [ln for ln in result.out.splitlines() if ln.startswith("│")]
    assert len(rows) == 5 and rows[0].split("│")[1].strip() == "1"
    sessions = tmp_path / "s.csv"
    sessions.write_text(f"session_id,item_id\na,{items[0]}\na,{items[1]}\nb,{items[2]}\n")
    out = tmp_path / "recs.csv"
    result = cli(
        "recommend", run_dir, "--sessions", sessions, "--out", out, "-k", "3", "--exclude-history"
    )
    assert result.code == 0, result.err
    recs = pl.read_csv(out)
    assert recs.height == 6 and recs.get_column("rank").to_list() == [1, 2, 3, 1, 2, 3]
    a = recs.filter(pl.col("session_id") == "a").get_column("item_id").to_list()
    assert items[0] not in a and items[1] not in a  # history excluded


def test_recommend_python_api_matches_scores(run_dir: Path) -> None:
    from rlrec.serve.inference import Recommender

    rec = Recommender.from_run(run_dir)
    items = pl.read_parquet(run_dir / "items.parquet").get_column("item_id").to_list()
    top = rec.recommend([items[:4], []], k=4)
    assert len(top) == 2 and all(len(row) == 4 for row in top)
    assert all(row[i][1] >= row[i + 1][1] for row in top for i in range(3))  # sorted by score
    frame = rec.recommend([items[:4], []], k=4, as_frame=True)
    assert frame.columns == ["session", "rank", "item_id", "score"]
    assert frame.get_column("session").to_list() == [0] * 4 + [1] * 4  # positions as given
    assert frame.get_column("rank").to_list() == [1, 2, 3, 4] * 2
    assert list(frame.select("item_id", "score").iter_rows()) == [p for row in top for p in row]
    assert frame.schema["item_id"] == pl.read_parquet(run_dir / "items.parquet").schema["item_id"]
    by_id = rec.recommend({"u7": items[:4], "u2": items[:2]}, k=3, as_frame=True)
    assert by_id.get_column("session").to_list() == ["u7"] * 3 + ["u2"] * 3  # ids as given
    assert by_id.filter(pl.col("session") == "u7").get_column("item_id").to_list() == [
        i for i, _ in top[0][:3]
    ]
    short = rec.recommend({"a": items[:58]}, k=4, exclude_history=True, as_frame=True)
    assert short.height == 2 and short.get_column("rank").to_list() == [1, 2]  # 60 − 58 left
    empty = rec.recommend([], k=3, as_frame=True)
    assert empty.height == 0 and empty.columns == frame.columns


def test_bad_inputs(cli, run_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tiny_dataset)
    assert_clean_failure(
        cli("train", "--config", cfg, "--set", "encoder.kind=transformer"), "'encoder.kind'"
    )
    assert_clean_failure(
        cli("train", "--config", cfg, "--set", "objective.kind=ppo"), "'objective'"
    )
    assert_clean_failure(
        cli("train", "--config", cfg, "--set", "objective.lr_phase3=1"), "unknown config key"
    )
    assert_clean_failure(
        cli("train", "--config", cfg, "--set", f"data={tmp_path}"), "missing manifest"
    )
    ccql = ["--set", "objective.kind=ccql"]
    assert_clean_failure(
        cli("train", "--config", cfg, *ccql, "--set", "objective.contrastive.augmentation=shuffle"),
        "'objective.ccql.contrastive.augmentation': Input should be 'reorder', 'mask', 'crop' or "
        "'permutation_legacy'",
    )
    assert_clean_failure(
        cli("train", "--config", cfg, *ccql, "--set", "objective.contrastive.loss=infonce"),
        "'objective.ccql.contrastive.loss': Input should be 'nt_xent' or 'ts2vec_legacy'",
    )
    assert_clean_failure(
        cli("train", "--config", cfg, *ccql, "--set", "objective.cql_variant=lse"),
        "'objective.ccql.cql_variant'",
    )
    assert not (tmp_path / "run").exists()  # nothing was created by the failed starts

    bad = tmp_path / "bad_manifest"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format": "something-else"}')
    assert_clean_failure(
        cli("train", "--config", cfg, "--set", f"data={bad}"), "not an rlrec dataset manifest"
    )

    items = pl.read_parquet(run_dir / "items.parquet").get_column("item_id").to_list()
    unknown = max(items) + 1000
    assert_clean_failure(
        cli("recommend", run_dir, "--history", f"{items[0]},{unknown}"),
        f"history: 1 item id(s) not in the trained catalogue ({unknown})",
    )
    assert_clean_failure(cli("recommend", run_dir, "--history", "x,y"), "item ids must be integers")
    assert_clean_failure(
        cli("recommend", run_dir), "give exactly one of --history, --sessions or --session"
    )

    copy = tmp_path / "corrupt_run"
    shutil.copytree(run_dir, copy)
    model = copy / "best" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    assert_clean_failure(cli("evaluate", copy), "corrupted checkpoint")
    assert_clean_failure(cli("evaluate", tmp_path), "not an rlrec run directory")


def test_compare_and_logged_session(cli, run_dir: Path, tiny_dataset: Path) -> None:
    result = cli("compare", run_dir, run_dir)
    assert result.code == 0, result.err
    assert "ndcg_purchase@10" in result.out and "(sa2c/gru, full)" in result.out
    session = pl.read_parquet(tiny_dataset / "test.parquet").get_column("session_id")[0]
    result = cli("recommend", run_dir, "--session", str(session), "-k", "5")
    assert result.code == 0, result.err
    assert f"session {session}: the logged next item" in result.out
    assert_clean_failure(
        cli("recommend", run_dir, "--session", "999999"), "no session with at least 2 events"
    )
    assert_clean_failure(cli("compare", run_dir.parent), "no summary")


def test_a_constant_model_gets_chance_metrics_and_a_warning(
    cli, run_dir: Path, tmp_path: Path
) -> None:
    """Every item scored the same: HR@k = k/n (ties resolved in expectation), a warning, a flag."""
    from safetensors.torch import load_file, save_file

    from rlrec.serve.inference import load_run
    from rlrec.train.trainer import evaluate_network

    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    weights = run / "best" / "model.safetensors"
    save_file({k: v.zero_() for k, v in load_file(weights).items()}, str(weights))
    n = json.loads((run / "run.json").read_text())["n_items"]
    result = cli("evaluate", run, "--out", tmp_path / "m.json")
    assert result.code == 0, result.err
    assert "warning: degenerate scores: 100.0% of evaluation targets are tied" in result.err
    saved = json.loads((tmp_path / "m.json").read_text())
    for key in ("hr_click@10", "hr_purchase@10", "hr_click@5", "hr_purchase@20"):
        k = int(key.split("@")[1])
        assert saved["metrics"][key] == pytest.approx(k / n, abs=1e-12)
    assert saved["metrics"]["tied_target_share"] == 1.0 and saved["degenerate_scores"]
    cfg, net, _ = load_run(run, "best", "cpu")  # the Python API gives the same
    from rlrec.data.dataset import PreparedDataset
    from rlrec.data.transitions import Transitions

    ds = PreparedDataset.load(cfg.data)
    metrics = evaluate_network(net, cfg, Transitions(ds.split("test"), 10, ds.pad_id), None)
    assert metrics["hr_click@10"] == pytest.approx(10 / n, abs=1e-12)
