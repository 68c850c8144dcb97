"""``--resume`` with a grown budget: a finished run continues to the new end, exactly as a run
trained to it at once; any other change is refused, naming the keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from rlrec.errors import RlrecError
from rlrec.train.trainer import Trainer

TIMING = {"transitions_per_s"}  # wall-clock values, different in every run


def _config(data: Path, out: Path, **train: Any):
    base = {"max_steps": None, "eval_every": 21, "log_every": 21, "progress": "none"}
    return tiny_train_config(data, out, train={**base, **train})


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in TIMING} for ln in lines]


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:09d}" / "model.safetensors"))


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_epochs_then_four_equals_four(tiny_dataset: Path, tmp_path: Path) -> None:
    """The tiny data has 63 steps per epoch; validation every 21 steps falls on the first end
    (126), so the extended run logs, selects and tests exactly what the four-epoch run does."""
    full = Trainer(_config(tiny_dataset, tmp_path / "full", epochs=4))
    assert full.steps_per_epoch == 63
    sa = full.fit()
    Trainer(_config(tiny_dataset, tmp_path / "ext", epochs=2)).fit()
    sb = Trainer(_config(tiny_dataset, tmp_path / "ext", epochs=4), resume=True).fit()

    assert _same_weights(_weights(tmp_path / "full", 252), _weights(tmp_path / "ext", 252))
    assert _records(tmp_path / "full") == _records(tmp_path / "ext")
    for key in ("steps", "best_step", "best_val", "test", "top", "stability"):
        assert sa[key] == sb[key], key
    top = sorted(p.name for p in (tmp_path / "ext" / "top").iterdir())
    assert top == sorted(p.name for p in (tmp_path / "full" / "top").iterdir())
    assert _same_weights(
        load_file(str(tmp_path / "full" / "best" / "model.safetensors")),
        load_file(str(tmp_path / "ext" / "best" / "model.safetensors")),
    )
    meta = json.loads((tmp_path / "ext" / "run.json").read_text())
    assert meta["budget_history"] == [
        {
            "resumed_at_step": 126,
            "old": {"train.epochs": 2},
            "new": {"train.epochs": 4},
            "old_total": 126,
            "new_total": 252,
        }
    ]
    assert "epochs: 4" in (tmp_path / "ext" / "config.yaml").read_text()
    # resuming the extended, finished run again with the same budget changes nothing recorded
    Trainer(_config(tiny_dataset, tmp_path / "ext", epochs=4), resume=True).fit()
    assert json.loads((tmp_path / "ext" / "run.json").read_text()) == meta


def test_an_end_off_the_validation_cadence_adds_that_validation(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """A first end (``max_steps`` 30) that is no multiple of ``eval_every`` (20) was validated and
    checkpointed as the run's end: the extended run has that extra validation, a candidate for
    the best checkpoint, and an extra log window; the weights are still those of one run."""
    short = {"eval_every": 20, "log_every": 10}
    Trainer(_config(tiny_dataset, tmp_path / "full", max_steps=60, **short)).fit()
    Trainer(_config(tiny_dataset, tmp_path / "ext", max_steps=30, **short)).fit()
    Trainer(_config(tiny_dataset, tmp_path / "ext", max_steps=60, **short), resume=True).fit()
    assert _same_weights(_weights(tmp_path / "full", 60), _weights(tmp_path / "ext", 60))
    full, ext = _records(tmp_path / "full"), _records(tmp_path / "ext")
    assert [r["step"] for r in full if r["kind"] == "val"] == [20, 40, 60]
    assert [r["step"] for r in ext if r["kind"] == "val"] == [20, 30, 40, 60]
    assert [r for r in ext if r["kind"] == "val" and r["step"] != 30] == [
        r for r in full if r["kind"] == "val"
    ]
    history = json.loads((tmp_path / "ext" / "run.json").read_text())["budget_history"]
    assert history[0]["old"] == {"train.max_steps": 30} and history[0]["new_total"] == 60


def test_other_changes_shrinking_and_early_stops_are_refused(
    cli, tiny_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    Trainer(_config(tiny_dataset, run, max_steps=50)).fit()
    before = (run / "config.yaml").read_text(), (run / "run.json").read_text()

    changed = tiny_train_config(
        tiny_dataset,
        run,
        objective={"kind": "snqn", "lr": 0.5},
        train={"max_steps": 80, "eval_every": 21, "log_every": 21, "progress": "none"},
    )
    with pytest.raises(RlrecError, match=r"objective\.lr changed \(only train\.epochs"):
        Trainer(changed, resume=True)
    with pytest.raises(RlrecError, match="fewer than the 50 the run has already trained"):
        Trainer(_config(tiny_dataset, run, max_steps=40), resume=True)
    # progress is presentation: free to change on resume
    Trainer(_config(tiny_dataset, run, max_steps=50, progress="lines"), resume=True).fit()
    assert (run / "run.json").read_text() == before[1]

    config = tmp_path / "c.yaml"
    config.write_text(before[0])
    r = cli("train", "--config", config, "--resume", "--set", "train.batch_size=16")
    assert r.code == 2 and r.err.count("\n") == 1 and "train.batch_size changed" in r.err

    stopped = tmp_path / "stopped"
    Trainer(_config(tiny_dataset, stopped, max_steps=100, eval_every=5, patience=1)).fit()
    assert json.loads((stopped / "summary.json").read_text())["steps"] < 100
    with pytest.raises(RlrecError, match="stopped early"):
        Trainer(
            _config(tiny_dataset, stopped, max_steps=200, eval_every=5, patience=1), resume=True
        )
