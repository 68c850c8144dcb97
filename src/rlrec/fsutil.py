"""Atomic file-system writes: outputs appear whole or not at all, and nothing is overwritten silently."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rlrec.errors import DataFormatError, OutputExistsError


@contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``out`` that is renamed to ``out`` on success.

    For sub-directories of an output rlrec owns (a run's ``best/``); whole outputs go through
    :func:`rlrec.outputs.new_output`, which also checks ownership and locks. On any exception the
    temporary directory is removed and ``out`` is left as it was. With ``overwrite`` an existing
    ``out`` is replaced only after the new one is complete.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out.parent / f".{out.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{tag}"
        out.rename(old)
        tmp.rename(out)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        tmp.rename(out)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-ordered JSON (byte-identical for equal objects)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode())


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a user's file; a missing, unreadable or non-UTF-8 file is one clear error."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, f"{what} not found") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            path, f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except OSError as exc:
        raise DataFormatError(path, f"{what} cannot be read ({exc.strerror})") from None


def read_json(path: Path, what: str) -> Any:
    """A JSON file rlrec wrote earlier (or the user edited), with one clear error when it is bad."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataFormatError(path, f"{what} is not valid JSON ({exc})") from None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    with open(path, "rb") as fh:
        return sha256_stream(fh, chunk)


def sha256_stream(fh: IO[bytes], chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of what is left in a binary stream (a file, a zip member), in 4 MiB chunks."""
    digest = hashlib.sha256()
    while block := fh.read(chunk):
        digest.update(block)
    return digest.hexdigest()
