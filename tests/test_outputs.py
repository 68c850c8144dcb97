"""Ownership markers, stale temporaries, swaps, locks and run claims (:mod:`rlrec.outputs`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlrec.config import MAX_YAML_BYTES, read_yaml
from rlrec.errors import ConfigError, OutputExistsError, RlrecError
from rlrec.outputs import (
    MARKER,
    OutputLock,
    OutputLockedError,
    RunClaim,
    check_output,
    marker_kind,
    new_output,
    recover_stale,
    reusable_output,
    swap_in,
    write_marker,
)


def marked(path: Path, kind: str = "dataset", files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    write_marker(path, kind)
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return path


def test_check_output_rules(tmp_path: Path) -> None:
    check_output(tmp_path / "new", "dataset", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", "dataset", overwrite=False)  # empty counts as new
    ours = marked(tmp_path / "ours", files={"a": "1"})
    with pytest.raises(OutputExistsError):
        check_output(ours, "dataset", overwrite=False)
    check_output(ours, "dataset", overwrite=True)
    with pytest.raises(RlrecError, match="is an rlrec dataset directory, not a run"):
        check_output(ours, "run", overwrite=True)
    (ours / MARKER).write_text("{broken")
    with pytest.raises(RlrecError, match="not a directory rlrec made"):
        check_output(ours, "dataset", overwrite=True)


def test_new_output_replaces_only_when_complete(tmp_path: Path) -> None:
    out = marked(tmp_path / "out", files={"a.txt": "old"})
    with pytest.raises(RuntimeError), new_output(out, "dataset", overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new, half written")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "old"
    with new_output(out, "dataset", overwrite=True) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    assert marker_kind(out) == "dataset"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary, backup or lock


def test_new_output_removes_the_parents_it_made_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_output(tmp_path / "a" / "b" / "out", "report"):
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []


def test_recover_stale(tmp_path: Path) -> None:
    out = marked(tmp_path / "ds", files={"new": "1"})
    stale_tmp = marked(tmp_path / ".ds.tmp-123-abcd", files={"half": "x"})
    stale_old = marked(tmp_path / ".ds.old-123-abcd", files={"previous": "x"})
    foreign = tmp_path / ".ds.tmp-999-user"  # the name alone proves nothing
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep")
    other = marked(tmp_path / ".dsx.tmp-1-aa")  # another output's temporary
    recover_stale(out)
    assert not stale_tmp.exists() and not stale_old.exists()
    assert (foreign / "thesis.tex").exists() and other.exists() and (out / "new").exists()


def test_recover_stale_restores_an_output_killed_between_the_two_renames(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    marked(tmp_path / ".ds.old-123-abcd", files={"data": "complete"})
    marked(tmp_path / ".ds.tmp-123-abcd", files={"data": "successor"})
    recover_stale(out)
    assert (out / "data").read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_swap_in(tmp_path: Path) -> None:
    out = marked(tmp_path / "out", files={"x": "old"})
    new = marked(tmp_path / "new", files={"x": "new"})
    swap_in(new, out)
    assert (out / "x").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_lock_names_the_holder_and_is_released(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with OutputLock(out) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLockedError, match=f"PID {os.getpid()}"):
            OutputLock(out).acquire()
    assert not lock.path.exists()
    OutputLock(out).acquire().release()


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = (
        "import sys, time; from rlrec.outputs import OutputLock; "
        "lock = OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"PID {child.pid}"):
            OutputLock(out).acquire()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while True:  # the stale lock file stays, but nobody holds it
        try:
            OutputLock(out).acquire().release()
            break
        except OutputLockedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_reusable_output(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), reusable_output(tmp_path / "a" / "sweep", "sweep"):
        raise RuntimeError("before any run")
    assert list(tmp_path.iterdir()) == []
    with reusable_output(tmp_path / "sweep", "sweep") as out:
        (out / "logs").mkdir()
    with reusable_output(tmp_path / "sweep", "sweep"):  # a second call completes it
        pass
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes").write_text("x")
    with (
        pytest.raises(RlrecError, match="a directory rlrec did not make"),
        reusable_output(mine, "sweep"),
    ):
        pass


def test_run_claim_abort_removes_only_what_it_made(tmp_path: Path) -> None:
    user_dir = tmp_path / "run"
    user_dir.mkdir()  # the user's empty directory
    claim = RunClaim(user_dir, "run", config_text="a: 1\n", resume=False, overwrite=False)
    claim.start(lambda d: (d / "config.yaml").write_text("a: 1\n"))
    assert (user_dir / "config.yaml").is_file()
    claim.abort()
    assert user_dir.is_dir() and list(user_dir.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_run_claim_overwrite_builds_beside_the_old_run(tmp_path: Path) -> None:
    old = marked(tmp_path / "run", "run", {"config.yaml": "a: 1\n", "summary.json": "{}"})
    claim = RunClaim(old, "run", config_text="a: 2\n", resume=False, overwrite=True)
    assert claim.replacing and claim.work != old
    claim.start(lambda d: (d / "config.yaml").write_text("a: 2\n"))
    assert (old / "config.yaml").read_text() == "a: 1\n"  # untouched while the new run trains
    claim.fail()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    claim = RunClaim(old, "run", config_text="a: 2\n", resume=False, overwrite=True)
    claim.start(lambda d: (d / "config.yaml").write_text("a: 2\n"))
    claim.commit()
    claim.close()
    assert (old / "config.yaml").read_text() == "a: 2\n" and not (old / "summary.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_large_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * (MAX_YAML_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        read_yaml(path)
