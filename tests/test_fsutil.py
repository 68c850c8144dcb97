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
        pytest.raises(OutputExistsError, match=r"call with overwrite=True to replace it"),
        atomic_directory(tmp_path / "out"),
    ):
        pass


def test_messages_fit_the_caller(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Python callers are told the argument, command-line users the flag."""
    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.data.synthetic import SynthConfig, write_synthetic
    from rlrec.errors import RlrecError

    raw = tmp_path / "raw"
    write_synthetic(SynthConfig(n_sessions=200, n_items=30), raw)
    prepare(PrepareConfig(source=SyntheticSource(path=raw)), tmp_path / "data")
    with pytest.raises(RlrecError, match="call with overwrite=True") as exc:
        prepare(PrepareConfig(source=SyntheticSource(path=raw)), tmp_path / "data")
    assert "--" not in str(exc.value)
    again = cli("data", "prepare", "synthetic", "--raw", raw, "--out", tmp_path / "data")
    assert again.code == 2 and "pass --overwrite to replace it" in again.err
    with pytest.raises(RlrecError, match="call with overwrite=True"):  # after the CLI: Python again
        prepare(PrepareConfig(source=SyntheticSource(path=raw)), tmp_path / "data")


def test_json_is_deterministic(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, "x"]})
    atomic_write_json(tmp_path / "b.json", {"a": [1.5, "x"], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
