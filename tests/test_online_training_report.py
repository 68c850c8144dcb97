"""The reference's training-time report (spec-online §E.2) on scripted session logs, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlrec.errors import RlrecError
from rlrec.online.training_report import (
    hac_online_report,
    history,
    report_lines,
    run_report,
    smooth,
)


def test_history_keeps_the_last_finished_slot_and_a_dummy_zero() -> None:
    episodes = {  # logged out of slot order on purpose
        "iteration": [0, 0, 2, 5, 5, 5],
        "slot": [3, 1, 0, 7, 2, 4],
        "total_reward": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "depth": [1, 2, 3, 4, 5, 6],
    }
    its, r, d = history(episodes, last_only=True)
    assert its.tolist() == [-1, 0, 2, 5]
    assert r.tolist() == [0.0, 1.0, 3.0, 4.0]  # slot 3 at iteration 0, slot 7 at iteration 5
    assert d.tolist() == [0.0, 1.0, 3.0, 4.0]
    its, r, _ = history(episodes, last_only=False)
    assert its.tolist() == [-1, 0, 0, 2, 5, 5, 5]
    assert r.tolist() == [0.0, 2.0, 1.0, 3.0, 5.0, 6.0, 4.0]  # slot order within an iteration


def test_report_lines_take_the_last_ten_entries_every_ten_iterations() -> None:
    its = np.arange(-1, 25)  # one entry per iteration 0..24 with reward it + 1, depth 2
    rewards = np.concatenate([[0.0], np.arange(1, 26, dtype=float)])
    depths = np.concatenate([[0.0], np.full(25, 2.0)])
    lines = report_lines(its, rewards, depths, iterations=25)
    # i = 0: [0, 1]; i = 10: entries 2..11; i = 20: entries 12..21
    assert lines["average_total_reward"].tolist() == [0.5, 6.5, 16.5]
    assert lines["reward_variance"].tolist() == pytest.approx([0.25, 8.25, 8.25])
    assert lines["max_total_reward"].tolist() == [1.0, 11.0, 21.0]
    assert lines["min_total_reward"].tolist() == [0.0, 2.0, 12.0]
    assert lines["average_n_step"].tolist() == [1.0, 2.0, 2.0]
    assert lines["min_n_step"].tolist() == [0.0, 2.0, 2.0]


def test_smoothing_is_centred_and_truncated_at_the_edges() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert smooth(values, 3).tolist() == [1.5, 2.0, 3.0, 4.0, 4.5]
    # w = 4: position j averages [max(0, j - 2), min(j + 2, 5))
    assert smooth(values, 4).tolist() == [1.5, 2.0, 2.5, 3.5, 4.0]
    assert smooth(values, 1).tolist() == values.tolist()


def fake_run(path: Path, rewards: list[float], iterations: int) -> Path:
    """A run directory whose training sessions end one per iteration with these rewards."""
    path.mkdir(parents=True)
    n = len(rewards)
    records = [
        {"kind": "train", "step": iterations, "critic_loss": 0.1},
        {
            "kind": "episodes",
            "step": iterations,
            "iteration": list(range(n)),
            "slot": [0] * n,
            "total_reward": rewards,
            "depth": [3] * n,
        },
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "summary.json").write_text(json.dumps({"iterations": iterations}))
    return path


def test_report_of_seeds_is_the_last_smoothed_value_averaged(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", [2.0] * 30, 30)  # lines at 0, 10, 20: [0, 2] → 1, then 2, 2
    b = fake_run(tmp_path / "b", [4.0] * 30, 30)  # 2, 4, 4
    assert run_report(a, window=1)["average_total_reward"] == 2.0
    # window 3 at the last line (j = 2) averages lines 1..2; window 5 averages lines 0..2
    assert run_report(a, window=5)["average_total_reward"] == pytest.approx((1 + 2 + 2) / 3)
    report = hac_online_report([a, b], window=3)
    assert report["mean"]["average_total_reward"] == (pytest.approx(3.0), pytest.approx(2**0.5))
    assert report["mean"]["average_n_step"][0] == pytest.approx(3.0)


def test_bad_runs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RlrecError, match=r"no metrics\.jsonl"):
        run_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 10}\n')
    with pytest.raises(RlrecError, match="no finished training sessions"):
        run_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("{oops\n")
    with pytest.raises(RlrecError, match=r"metrics\.jsonl:1: not a JSON line"):
        run_report(tmp_path)
    with pytest.raises(RlrecError, match="window"):
        hac_online_report([tmp_path], window=0)
