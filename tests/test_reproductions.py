"""The paper-table runner: real configs run on tiny data and the table prints beside the paper."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pytest import MonkeyPatch

ROOT = Path(__file__).resolve().parents[1]


def load_runner(name: str = "sa2c_tables"):
    """Import a script of ``reproductions/`` (which imports its sibling ``common``)."""
    folder = str(ROOT / "reproductions")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / "reproductions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_table_six_runs_and_prints_beside_the_paper(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    runner = load_runner()
    results = {}
    for name in runner.PAPER["tables"][6]["rows"]:
        summary = runner.run_cell(name, tiny_dataset, tmp_path, seed=0, max_steps=4)
        assert summary["steps"] == 4
        results[name] = [summary, summary]
    text = runner.format_table(6, results)
    lines = text.splitlines()
    assert lines[0].startswith(
        "| model | hr_purchase@5 | ndcg_purchase@5 | hr_click@5 | ndcg_click@5 |"
    )
    assert len(lines) == 2 + 2 * 8
    assert "| GRU-SNQN r_n=-0.5 (paper) | 0.4324 | 0.3043 | 0.3118 | 0.2158 |" in text
    assert "(rlrec, 2 seeds)" in text and " ± 0.0000" in text
    # a cached run is not trained again
    again = runner.run_cell(next(iter(results)), tiny_dataset, tmp_path, seed=0, max_steps=4)
    assert again == results[next(iter(results))][0]


def test_ccql_table_runs_seeds_as_processes_and_prints_both_protocols(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    runner = load_runner("ccql_tables")
    groups = {
        name: runner.run_config(name, tiny_dataset, tmp_path, seeds=[0, 1], jobs=2, max_steps=4)
        for name in ("rc15/sasrec_ccql", "rc15/sasrec_ccql_legacy")
    }
    assert [len(g.runs) for g in groups.values()] == [2, 2]
    text = runner.format_table(4, groups)
    assert "| SASRec-CCQL (paper) | 14,311 | 0.496 | 0.356 |" in text
    ours = [line for line in text.splitlines() if "rlrec `rc15/sasrec_ccql" in line]
    assert len(ours) == 4  # two configs × two protocols
    assert "per_metric_top_k, 2 seeds" in ours[0] and "best, 2 seeds" in ours[1]
    assert "SASRec-AC (paper)" in text and "rlrec `rc15/sasrec_ac`" not in text  # not run here
