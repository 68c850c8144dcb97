"""The paper-table runner: real configs run on tiny data and the table prints beside the paper."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pytest import MonkeyPatch

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location(
        "sa2c_tables", ROOT / "reproductions" / "sa2c_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sa2c_tables"] = module
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
