"""Check raw data files against the registry of official distributions (``rlrec data verify``).

:func:`verify` takes a folder or a ``.whl``/``.zip`` archive, finds which registered data set it
holds (:mod:`rlrec.data.registry`; or is told), and measures every file the data set lists: present
or not, its size and its SHA-256 (streamed, zip members too). Each file is ``ok`` (matches the
recorded size and hash), ``mismatch`` (differs from them), ``missing`` or ``unchecked`` (present,
but rlrec records no hash for it). The data set passes when nothing mismatches, every required file
is present and, where it has a ``one of`` group (OBD's campaign logs), at least one of those is.

A data set's ``archive_prefix`` (``recbole/dataset_example/ml-100k``, ``obp/dataset/obd``, …) is
its folder inside the official archive: an archive is read under it, and a folder that contains it
(an extracted wheel, the folder a zip was unpacked into) is descended into, as the loaders do.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from rlrec.data import registry
from rlrec.data.registry import DataSet, ExpectedFile, find_dataset
from rlrec.errors import DataFormatError, RlrecError, option_hint
from rlrec.fsutil import sha256_file, sha256_stream

Status = Literal["ok", "mismatch", "missing", "unchecked"]
ARCHIVE_SUFFIXES = (".whl", ".zip")


@dataclass(frozen=True)
class FileCheck:
    """What was found for one expected file (a glob pattern gives one check per matching file).
    ``bytes``/``sha256`` are the measured values, ``None`` when the file is missing."""

    path: str
    expected: ExpectedFile
    status: Status
    bytes: int | None = None
    sha256: str | None = None

    def problem(self) -> str | None:
        """Why this file fails the data set (one phrase naming it), or ``None``."""
        recorded = self.expected
        if self.status == "mismatch":
            if recorded.bytes is not None and self.bytes != recorded.bytes:
                return f"{self.path} has {self.bytes} bytes, recorded {recorded.bytes}"
            return f"{self.path} has SHA-256 {self.sha256}, recorded {recorded.sha256}"
        if self.status == "missing" and recorded.need == "required":
            return f"{self.path} is missing"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values (measured and recorded size and hash)."""
        return {
            "path": self.path,
            "need": self.expected.need,
            "status": self.status,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "recorded_bytes": self.expected.bytes,
            "recorded_sha256": self.expected.sha256,
        }


@dataclass(frozen=True)
class VerifyReport:
    """The checks of one data set at ``location`` (a folder, or ``archive!prefix/``)."""

    dataset: DataSet
    location: str
    files: tuple[FileCheck, ...]

    @property
    def problems(self) -> list[str]:
        """Every reason the data set fails: mismatched and missing required files, and a ``one
        of`` group none of whose files is present."""
        found = [problem for check in self.files if (problem := check.problem())]
        group = [check for check in self.files if check.expected.need == "one of"]
        if group and all(check.status == "missing" for check in group):
            found.append(f"none of {', '.join(c.path for c in group)} is present")
        return found

    @property
    def passed(self) -> bool:
        """No mismatch, every required file present (and one of the ``one of`` files)."""
        return not self.problems

    def summary(self) -> str:
        """One line: the outcome and how many files have each status."""
        counts = {s: sum(c.status == s for c in self.files) for s in get_args(Status)}
        tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        outcome = "passed" if self.passed else "FAILED"
        return f"{self.dataset.key}: {outcome} ({tally})"

    def raise_if_failed(self) -> None:
        """One :class:`RlrecError` naming every mismatched or missing file, if the data set fails."""
        if not self.passed:
            raise RlrecError(
                f"{self.location}: {self.dataset.key} does not verify: {'; '.join(self.problems)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values: the data set's provenance, the outcome, every file."""
        ds = self.dataset
        return {
            "dataset": ds.key,
            "title": ds.title,
            "source": ds.source,
            "terms": ds.terms,
            "commands": list(ds.commands),
            "location": self.location,
            "passed": self.passed,
            "problems": self.problems,
            "files": [check.to_dict() for check in self.files],
        }


def verify(path: Path, dataset: str | None = None) -> VerifyReport:
    """Check the folder or ``.whl``/``.zip`` archive ``path`` against the registered data set
    ``dataset`` (a key of :data:`rlrec.data.registry.DATASETS`; ``None``: the data set with the most
    of its files present). The report says whether it passed; it does not raise when it did not
    (:meth:`VerifyReport.raise_if_failed` does). Undetectable or unknown data sets raise."""
    path = Path(path)
    with _open(path) as tree:
        chosen = find_dataset(dataset) if dataset is not None else _detect(tree, path)
        root = tree.within(chosen.archive_prefix)
        checks = tuple(check for expected in chosen.files for check in _check(root, expected))
        return VerifyReport(chosen, root.shown, checks)


class _Tree(Protocol):
    """Files under a folder or inside an archive, addressed by ``/``-separated relative paths."""

    @property
    def shown(self) -> str:
        """The location, for messages."""
        ...

    def within(self, prefix: str) -> _Tree:
        """The tree below ``prefix`` if there is one, else this tree."""
        ...

    def find(self, expected: ExpectedFile) -> list[str]:
        """The relative paths of the files matching ``expected`` (its name, or its pattern)."""
        ...

    def measure(self, rel: str) -> tuple[int, str]:
        """``(bytes, SHA-256)`` of the file ``rel``."""
        ...


@dataclass(frozen=True)
class _Folder:
    root: Path

    @property
    def shown(self) -> str:
        return str(self.root)

    def within(self, prefix: str) -> _Folder:
        inner = self.root / prefix
        return _Folder(inner) if prefix and inner.is_dir() else self

    def find(self, expected: ExpectedFile) -> list[str]:
        if not expected.is_pattern:
            return [expected.path] if (self.root / expected.path).is_file() else []
        matches = (p for p in self.root.glob(expected.path) if p.is_file())
        return sorted(p.relative_to(self.root).as_posix() for p in matches)

    def measure(self, rel: str) -> tuple[int, str]:
        path = self.root / rel
        return path.stat().st_size, sha256_file(path)


@dataclass(frozen=True)
class _Archive:
    path: Path
    archive: zipfile.ZipFile
    base: str = ""

    @property
    def shown(self) -> str:
        return f"{self.path}!{self.base}" if self.base else str(self.path)

    def _names(self) -> list[str]:
        """Relative paths of the archive's files under ``base`` (directories left out)."""
        return [
            name[len(self.base) :]
            for name in self.archive.namelist()
            if name.startswith(self.base) and not name.endswith("/")
        ]

    def within(self, prefix: str) -> _Archive:
        inner = f"{prefix}/"
        if prefix and any(name.startswith(inner) for name in self._names()):
            return _Archive(self.path, self.archive, self.base + inner)
        return self

    def find(self, expected: ExpectedFile) -> list[str]:
        return sorted(name for name in self._names() if _matches(name, expected.path))

    def measure(self, rel: str) -> tuple[int, str]:
        member = self.base + rel
        info = self.archive.getinfo(member)
        try:
            with self.archive.open(info) as fh:
                return info.file_size, sha256_stream(fh)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. a bad CRC, a truncated file
            raise DataFormatError(f"{self.path}!{member}", f"cannot be read ({exc})") from None


def _matches(name: str, pattern: str) -> bool:
    """Whether the relative path ``name`` matches ``pattern`` part by part (``*`` stays within one
    folder, as in :meth:`pathlib.Path.glob`)."""
    parts, want = name.split("/"), pattern.split("/")
    return len(parts) == len(want) and all(map(fnmatchcase, parts, want))


@contextmanager
def _open(path: Path) -> Iterator[_Tree]:
    """The files at ``path``: a folder, or a ``.whl``/``.zip`` archive (kept open while used)."""
    if path.is_dir():
        yield _Folder(path)
        return
    if not path.exists():
        raise DataFormatError(path, "not found")
    if path.suffix.lower() not in ARCHIVE_SUFFIXES:
        raise DataFormatError(path, "expected a data folder or a .whl/.zip archive")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(path, f"not a readable zip/wheel archive ({exc})") from None
    with archive:
        yield _Archive(path, archive)


def _detect(tree: _Tree, path: Path) -> DataSet:
    """The registered data set with the most of its files present; none or a tie is one error
    listing the candidates and their files."""
    present = {
        ds.key: sum(bool(tree.within(ds.archive_prefix).find(f)) for f in ds.files)
        for ds in registry.DATASETS
    }
    best = max(present.values(), default=0)
    if best == 0:
        known = "; ".join(f"{ds.key}: {ds.layout()}" for ds in registry.DATASETS)
        raise DataFormatError(path, f"no registered data set's files found here (known: {known})")
    tied = [ds for ds in registry.DATASETS if present[ds.key] == best]
    if len(tied) > 1:
        which = "; ".join(f"{ds.key}: {ds.layout()}" for ds in tied)
        raise DataFormatError(
            path,
            f"holds {best} file(s) of each of several data sets ({which}); "
            f"choose one with {option_hint('dataset', repr('KEY'))}",
        )
    return tied[0]


def _check(root: _Tree, expected: ExpectedFile) -> list[FileCheck]:
    """The checks of one expected file: ``missing``, or one per matching file."""
    found = root.find(expected)
    if not found:
        return [FileCheck(expected.path, expected, "missing")]
    checks = []
    for rel in found:
        size, digest = root.measure(rel)
        differs = (expected.bytes is not None and size != expected.bytes) or (
            expected.sha256 is not None and digest != expected.sha256
        )
        status: Status = "mismatch" if differs else "unchecked" if expected.sha256 is None else "ok"
        checks.append(FileCheck(rel, expected, status, size, digest))
    return checks
