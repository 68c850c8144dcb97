"""Atomic outputs: nothing half-written, nothing overwritten silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlrec.errors import OutputExistsError
from rlrec.fsutil import atomic_directory, atomic_write_json


def test_exception_inside_leaves_old_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new, half written")
        raise RuntimeError("disk full")
    assert (out / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_existing_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with (
        pytest.raises(OutputExistsError, match="pass --overwrite"),
        atomic_directory(tmp_path / "out"),
    ):
        pass


def test_json_is_deterministic(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, "x"]})
    atomic_write_json(tmp_path / "b.json", {"a": [1.5, "x"], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
