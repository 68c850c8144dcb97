"""The progress display: plain lines off a terminal at the right cadence, a bar on one (and in a
notebook), nothing with ``none``."""

from __future__ import annotations

import io
import re
import sys
import types
from pathlib import Path

import pytest
from conftest import tiny_train_config

from rlrec.train.progress import ProgressReporter, resolve_mode
from rlrec.train.trainer import Trainer

LINE = re.compile(
    r"^snqn/gru step (\d+)/40 \(\d+%\) \| loss [\d.]+ \| [\d,.]+ steps/s, [\d,]+ transitions/s"
    r" \| val ndcg_purchase@10 [\d.]+ \(step (\d+)\) \| \d+ s, ETA \d+ s$"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_every_progress_every_steps(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``auto`` off a terminal (pytest's captured stderr) prints lines: every 10 steps, with the
    step, loss, both rates and the latest validation value (every 10 steps too)."""
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", train={"progress_every": 10})
    assert cfg.train.progress == "auto"
    Trainer(cfg).fit()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4, lines
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(int(m[1]), int(m[2])) for m in matches if m] == [
        (10, 10),
        (20, 20),
        (30, 30),
        (40, 40),
    ]


def test_lines_default_to_log_every_and_show_the_last_step(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """Without ``progress_every`` the cadence is ``log_every`` (5); a last step off the cadence
    still gets its line."""
    stream = io.StringIO()
    reporter = ProgressReporter("lines", 5, "x", val_key="m", stream=stream)
    reporter.start(0, 12)
    for step in range(1, 13):
        if step % 5 == 0:
            reporter.record("train", step, {"loss": 1.0 / step, "ignored": 3.0})
        reporter.advance(step)
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == [
        "x step 5/12 (42%)",
        "x step 10/12 (83%)",
        "x step 12/12 (100%)",
    ]
    assert "loss 0.1000" in lines[1] and "ignored" not in lines[1] and "val" not in lines[1]
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run")
    assert cfg.train.progress_every is None  # the trainer then uses log_every


def test_none_prints_nothing(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", train={"progress": "none"})
    Trainer(cfg).fit()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    reporter = ProgressReporter("none", 1, "x", stream=(stream := io.StringIO()))
    reporter.start(0, 2)
    reporter.record("warning", 1, {"message": "tied scores"})
    reporter.advance(1)
    assert stream.getvalue() == ""


def test_bar_on_a_terminal(tiny_dataset: Path, tmp_path: Path) -> None:
    """``auto`` on a terminal is the bar; it runs the whole fit and ends at 40/40 with the latest
    loss and validation value; notices are printed above it."""
    terminal = Terminal()
    assert resolve_mode("auto", terminal) == "bar"
    reporter = ProgressReporter("auto", 5, "run", val_key="m", stream=terminal)
    reporter.start(0, 3)
    reporter.record("stability", 1, {"message": "q exploded"})
    for step in (1, 2, 3):
        reporter.record("val", step, {"m": 0.5})
        reporter.advance(step)
    reporter.close()
    text = terminal.getvalue()
    assert "run unstable: q exploded" in text and "3/3" in text and "val m 0.5000" in text

    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", train={"progress": "bar"})
    trainer = Trainer(cfg)
    stream = io.StringIO()
    original = ProgressReporter.__init__

    def to_stream(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **{**kwargs, "stream": stream})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ProgressReporter, "__init__", to_stream)
        trainer.fit()
    assert "40/40" in stream.getvalue() and "ndcg_purchase@10" in stream.getvalue()


def test_auto_is_the_bar_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Jupyter kernel's stderr is no terminal, yet ``auto`` shows the (widget) bar there."""
    stream = io.StringIO()
    assert resolve_mode("auto", stream) == "lines"
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert resolve_mode("auto", stream) == "bar"
    assert resolve_mode("lines", stream) == "lines"
