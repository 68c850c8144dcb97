"""Shared helpers: an in-process CLI runner and writers of tiny raw files in the exact formats."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlrec.cli import main

ML100K = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k"


def require_shared(path: Path) -> Path:
    """``path`` (a data set under ``../shared/datasets``), or skip the calling test when it is
    missing — but **fail** under ``CI=true``, so a missing data set never turns into a green run."""
    if not path.exists():
        reason = f"shared data set {path} not present"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it (not skipped)", pytrace=False)
        pytest.skip(reason)
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``rlrec ARGS...`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["rlrec", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def ts(second: int, ms: int = 0) -> str:
    """A YooChoose timestamp on 2014-04-07 at 10:00 + ``second`` s."""
    minute, sec = divmod(second, 60)
    return f"2014-04-07T10:{minute:02d}:{sec:02d}.{ms:03d}Z"


@pytest.fixture
def yoochoose_dir(tmp_path: Path) -> Path:
    """Sessions: 1 = 3 clicks + a buy tied in time with a click; 2 = 2 clicks + 1 buy (too short);
    3 = 4 clicks with a duplicate row; 4 = 3 clicks + a buy of an item never clicked by anyone."""
    d = tmp_path / "yc"
    write_lines(
        d / "yoochoose-clicks.dat",
        [
            f"1,{ts(0)},214536502,0",
            f"1,{ts(5)},214536500,0",
            f"1,{ts(9)},214536506,S",
            f"2,{ts(1)},214577561,0",
            f"2,{ts(2)},214536502,0",
            f"3,{ts(3)},214662742,2053841210",
            f"3,{ts(4)},214662742,2053841210",
            f"3,{ts(8)},214825110,12",
            f"3,{ts(7)},214536500,0",
            f"4,{ts(0)},214536506,0",
            f"4,{ts(1)},214536502,0",
            f"4,{ts(2)},214536500,0",
        ],
    )
    write_lines(
        d / "yoochoose-buys.dat",
        [
            f"1,{ts(5)},214536500,12462,1",
            f"2,{ts(3)},214577561,1046,2",
            f"4,{ts(3)},214999999,0,0",
        ],
    )
    return d


RR_HEADER = "timestamp,visitorid,event,itemid,transactionid"


@pytest.fixture
def retailrocket_file(tmp_path: Path) -> Path:
    """Visitor 10: view 1, view 2, addtocart 2, transaction 2, view 3 (item 3 rare).
    Visitor 20: view 1, view 2, addtocart 1. Visitor 30: view 1, view 2 (too short).
    Visitor 40: view 2, view 1, view 4 (item 4 rare)."""
    base = 1433221332117
    return write_lines(
        tmp_path / "rr" / "events.csv",
        [
            RR_HEADER,
            f"{base + 0},10,view,1,",
            f"{base + 10},10,view,2,",
            f"{base + 20},10,addtocart,2,",
            f"{base + 30},10,transaction,2,4000",
            f"{base + 40},10,view,3,",
            f"{base + 5},20,view,1,",
            f"{base + 6},20,view,2,",
            f"{base + 7},20,addtocart,1,",
            f"{base + 1},30,view,1,",
            f"{base + 2},30,view,2,",
            f"{base + 3},40,view,2,",
            f"{base + 4},40,view,1,",
            f"{base + 8},40,view,4,",
        ],
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic dataset: 300 sessions, 60 items (≈ 2,400 training transitions)."""
    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.data.synthetic import SynthConfig, write_synthetic

    root = tmp_path_factory.mktemp("tiny")
    write_synthetic(SynthConfig(n_sessions=300, n_items=60, n_topics=4, seed=3), root / "raw")
    prepare(PrepareConfig(source=SyntheticSource(path=root / "raw")), root / "data")
    return root / "data"


def tiny_train_config(data: Path, out: Path, **overrides: object):
    """A TrainConfig small enough for tests (hidden 16, batch 32)."""
    from rlrec.config import build_config, deep_merge
    from rlrec.train.config import TrainConfig

    base = {
        "data": str(data),
        "out": str(out),
        "encoder": {"kind": "gru", "hidden": 16},
        "objective": {"kind": "snqn"},
        "train": {
            "batch_size": 32,
            "max_steps": 40,
            "eval_every": 10,
            "log_every": 5,
            "tensorboard": False,
        },
        "eval": {"batch_size": 512},
    }
    return build_config(TrainConfig, cli=deep_merge(base, dict(overrides)))
