"""What rlrec may do to the user's files: ownership markers, one writer per output, atomic swaps.

Every directory rlrec writes (a prepared dataset, a list dataset, a URM, a training run, a sweep, a
report, synthetic raw data, an exported model) carries a marker file, ``.rlrec-output.json``, naming its kind. The rules
built on it:

* **Refused outright:** an output that is the filesystem root, the home directory, the working
  directory or one of its parents (``.``, ``..``), a symbolic link, or a path that equals or
  contains one of the command's inputs.
* **``--overwrite`` replaces only rlrec's own output of the same kind** (its marker says so). A
  directory without the marker, a file, or an output of another kind is never deleted.
* **Replace only when complete:** the new output is built in a hidden sibling
  ``.NAME.tmp-<pid>-<hex>`` and swapped in when it is complete; a failure or a kill leaves the old
  output as it was. Temporary siblings of earlier killed commands (recognised by name *and* marker)
  are removed by the next command that claims the same output.
* **One writer:** a command holds an OS lock (``fcntl.flock``) on ``.NAME.lock`` beside the output
  for as long as it writes; a second writer is refused with the holder's PID. The lock dies with its
  process, so a killed command never leaves a stale lock behind.
* **Nothing left behind by a failure:** parent directories created for an output that never
  appeared are removed again.

:func:`new_output` applies all of this to a directory written in one go; :class:`RunClaim` to a
training run, which is written over the whole command and may be resumed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlrec import __version__
from rlrec.errors import OutputExistsError, RlrecError, option_hint

MARKER = ".rlrec-output.json"
KINDS = (
    "dataset",
    "list_dataset",
    "urm",
    "run",
    "sim_run",
    "sweep",
    "search",
    "report",
    "synthetic_raw",
    "export",
)
_TMP, _OLD = ".tmp-", ".old-"
# A temporary of rlrec.fsutil's atomic writes inside an output: .NAME.tmp-<pid>-<hex> or .old-
_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?P<what>tmp|old)-\d+-[0-9a-f]{8}")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class OutputLockedError(RlrecError):
    """Another process is writing the same output."""


def as_os_error(exc: BaseException, path: Path | str) -> OSError | None:
    """The ``OSError`` that ``exc`` reports, naming ``path``, or ``None`` when it reports none.

    Rust-backed writers (polars, safetensors) raise their own exception types when a write fails
    (a full disk, a read-only file system), with ``(os error N)`` in the message; raised again as
    an ``OSError``, the CLI reports them as one line like any other file-system error.
    """
    if isinstance(exc, OSError) or not isinstance(exc, Exception):
        return None
    match = _OS_ERROR.search(str(exc))
    if match is None:
        return None
    code = int(match[1])
    return OSError(code, os.strerror(code), str(path))


# ------------------------------------------------------------------------------ markers


def write_marker(directory: Path, kind: str) -> None:
    """Mark ``directory`` as an rlrec output of ``kind`` (deterministic bytes: no time stamps)."""
    assert kind in KINDS, kind
    text = json.dumps({"kind": kind, "rlrec_version": __version__}, sort_keys=True) + "\n"
    (Path(directory) / MARKER).write_text(text)


def marker_kind(directory: Path) -> str | None:
    """The kind recorded in ``directory``'s marker, or ``None`` when it has no valid marker."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in KINDS else None


# ------------------------------------------------------------------------------ checks


def _forbidden(out: Path) -> str | None:
    """Why ``out`` may never be an output directory, or ``None``."""
    if out.is_symlink():
        return "is a symbolic link; rlrec does not write through links (give the real path)"
    resolved = out.resolve()
    if resolved == Path(resolved.anchor):
        return "is the filesystem root"
    if resolved == Path.home().resolve():
        return "is your home directory"
    cwd = Path.cwd().resolve()
    if cwd == resolved or cwd.is_relative_to(resolved):
        return "is the working directory or one of its parents"
    return None


def _check_inputs(
    out: Path, inputs: Sequence[Path | str | None], *, replaces_file: bool = False
) -> None:
    """Refuse an output that is or contains an input; with ``replaces_file`` (an existing file
    about to be replaced) also one inside an input directory (it would change that input)."""
    resolved = out.resolve()
    for item in inputs:
        if item is None:
            continue
        path = Path(item).resolve()
        if path == resolved or path.is_relative_to(resolved):
            raise RlrecError(
                f"{out}: the output would contain the input {item}; choose another output path"
            )
        if replaces_file and resolved.is_relative_to(path):
            raise RlrecError(
                f"{out}: replacing it would change the input {item}; choose another output path"
            )


def check_output(
    out: Path,
    kind: str,
    *,
    overwrite: bool,
    inputs: Sequence[Path | str | None] = (),
    flag: str | None = None,
) -> None:
    """Refuse ``out`` as the output directory of ``kind`` unless it is new, empty, or (with
    ``overwrite``) an rlrec output of the same kind. Cheap: call it before any expensive work."""
    out = Path(out)
    why = _forbidden(out)
    if why:
        raise RlrecError(f"{out}: {why}; choose another output path")
    _check_inputs(out, inputs)
    if not out.exists():
        if out.parent.exists() and not out.parent.is_dir():
            raise RlrecError(f"{out}: {out.parent} is a file, not a directory")
        return
    if not out.is_dir():
        raise RlrecError(f"{out}: is a file, not an rlrec {kind} directory; it is never replaced")
    if not any(out.iterdir()):
        return
    found = marker_kind(out)
    if not overwrite:
        raise OutputExistsError(out, flag)
    flag = flag or option_hint("overwrite")
    if found is None:
        raise RlrecError(
            f"{out}: not a directory rlrec made (no {MARKER}); {flag} replaces only rlrec's own "
            "outputs: move or delete it yourself, or choose another output path"
        )
    if found != kind:
        raise RlrecError(
            f"{out}: is an rlrec {found} directory, not a {kind}; {flag} does not replace it"
        )


def check_output_file(
    path: Path,
    *,
    overwrite: bool,
    inputs: Sequence[Path | str | None] = (),
    flag: str | None = None,
) -> None:
    """Refuse ``path`` as a single-file output: a directory, one of the inputs, or an existing file
    without ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise RlrecError(f"{path}: is a directory; give a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise RlrecError(f"{path}: {path.parent} is a file, not a directory")
    _check_inputs(path, inputs, replaces_file=path.exists())
    if path.exists() and not overwrite:
        raise OutputExistsError(path, flag)


# ------------------------------------------------------------------------------ parents


def make_parents(directory: Path) -> list[Path]:
    """``mkdir -p directory``; returns the directories it created, outermost first."""
    directory = Path(directory)
    missing = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def remove_created(created: list[Path]) -> None:
    """Remove directories :func:`make_parents` created, innermost first, where they are empty."""
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


# ------------------------------------------------------------------------------ the lock


class OutputLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside ``out``, holding the owner's PID.

    Not re-entrant. Released (and the file removed) by :meth:`release`, or by the OS when the
    process dies. The inode check after locking closes the race with a holder that removes the
    file while another process is opening it.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputLockedError(
                    f"{self.out}: another rlrec process (PID {holder}) is writing it; wait for "
                    f"it to finish or stop it (lock file {self.path})"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file after we opened it: retry
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


# ------------------------------------------------------------------------------ temporaries, swap


def temp_sibling(out: Path, kind: str) -> Path:
    """A new hidden, marked directory beside ``out`` to build its successor in."""
    tmp = out.parent / f".{out.name}{_TMP}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    write_marker(tmp, kind)
    return tmp


def recover_stale(out: Path) -> None:
    """Clean up after killed writers of ``out`` (call with the lock held).

    A marked ``.NAME.tmp-*`` sibling is an unfinished successor: removed. A marked ``.NAME.old-*``
    sibling is a replaced output whose removal was interrupted: removed, or renamed back to ``out``
    when the kill came between the two renames of :func:`swap_in` and ``out`` is missing.
    """
    if not out.parent.is_dir():
        return
    prefix = f".{out.name}"
    for entry in sorted(out.parent.iterdir()):
        rest = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
        if not rest.startswith((_TMP, _OLD)) or entry.is_symlink() or not entry.is_dir():
            continue
        if marker_kind(entry) is None:
            continue  # not provably ours
        if rest.startswith(_OLD) and not out.exists():
            entry.rename(out)
        else:
            shutil.rmtree(entry)


def remove_partial(directory: Path) -> None:
    """Clean up what killed writers left inside ``directory``, an output filled in place (a run
    being resumed; call with the lock held).

    The temporary files and directories of :mod:`rlrec.fsutil`'s atomic writes
    (``.NAME.tmp-<pid>-<hex>``) are removed; a replaced ``.NAME.old-<pid>-<hex>`` is renamed back
    to ``NAME`` when the kill came between the two renames and ``NAME`` is missing, else removed.
    Otherwise they would stay in the finished run for good.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        found += [Path(root) / name for name in sorted(dirs + files) if _PARTIAL.fullmatch(name)]
        dirs[:] = [d for d in dirs if not _PARTIAL.fullmatch(d)]
    for entry in found:
        match = _PARTIAL.fullmatch(entry.name)
        assert match is not None
        target = entry.with_name(match["name"])
        if match["what"] == "old" and not target.exists() and not target.is_symlink():
            entry.rename(target)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def swap_in(tmp: Path, out: Path) -> None:
    """Put the complete ``tmp`` at ``out``; an old ``out`` is removed only once ``tmp`` is there."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}{_OLD}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old)


@contextmanager
def new_output(
    out: Path,
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Sequence[Path | str | None] = (),
    flag: str | None = None,
) -> Iterator[Path]:
    """Claim the output directory ``out`` of ``kind`` and yield a marked temporary directory to
    write it in; on success the temporary replaces ``out``, on any failure it is removed and ``out``
    (and the file system around it) is left as it was."""
    out = Path(out)
    check_output(out, kind, overwrite=overwrite, inputs=inputs, flag=flag)
    created = make_parents(out.parent)
    try:
        with OutputLock(out):
            recover_stale(out)
            check_output(out, kind, overwrite=overwrite, inputs=inputs, flag=flag)
            tmp = temp_sibling(out, kind)
            try:
                yield tmp
                swap_in(tmp, out)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if (error := as_os_error(exc, out)) is not None:
                    raise error from exc
                raise
    except BaseException:
        remove_created(created)
        raise


@contextmanager
def reusable_output(
    out: Path, kind: str, *, inputs: Sequence[Path | str | None] = ()
) -> Iterator[Path]:
    """Claim a directory that a command fills in place and may complete on a later call (a sweep):
    new, empty, or already an rlrec output of ``kind``. Locked while the command runs."""
    out = Path(out)
    why = _forbidden(out)
    if why:
        raise RlrecError(f"{out}: {why}; choose another output path")
    _check_inputs(out, inputs)
    if out.exists() and not out.is_dir():
        raise RlrecError(f"{out}: is a file, not an rlrec {kind} directory")
    if out.is_dir() and any(out.iterdir()) and marker_kind(out) != kind:
        found = marker_kind(out)
        what = (
            f"an rlrec {found} directory"
            if found
            else f"a directory rlrec did not make (no {MARKER})"
        )
        raise RlrecError(f"{out}: is {what}, not an rlrec {kind}; choose another output path")
    created = make_parents(out)
    try:
        with OutputLock(out):
            if marker_kind(out) is None:
                write_marker(out, kind)
            yield out
    except BaseException:
        if created and set(os.listdir(out)) <= {MARKER}:
            (out / MARKER).unlink(missing_ok=True)
            remove_created(created)
        raise


# ------------------------------------------------------------------------------ run directories


class RunClaim:
    """A run directory claimed by one writer for a whole training command.

    * a **new** run (``out`` missing or empty) is started in place, its first files (marker,
      config, metadata) written into a temporary sibling and renamed, so a run directory always has
      a config; it can be resumed after a kill;
    * ``resume`` continues the run in place (its saved config must equal the current one, or pass
      ``check_config(path, saved_text)``, which raises when it may not be resumed), once
      the temporaries of a killed writer inside it are cleaned up (:func:`remove_partial`);
    * ``overwrite`` of a finished or failed run builds the new run in a temporary sibling and swaps
      it in by :meth:`commit` once it is complete: a new run that fails leaves the old one intact.

    ``work`` is the directory to write into. ``lock=False`` (ranks other than 0 of a data-parallel
    run) claims nothing and only reads.
    """

    def __init__(
        self,
        out: Path,
        kind: str,
        *,
        config_text: str,
        resume: bool,
        overwrite: bool,
        inputs: Sequence[Path | str | None] = (),
        lock: bool = True,
        config_name: str = "config.yaml",
        check_config: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.out = Path(out)
        self.kind = kind
        self.work = self.out
        self.new = not resume
        self._created: list[Path] = []
        self._existed = self.out.is_dir()
        self._lock: OutputLock | None = None
        self._tmp: Path | None = None
        if resume and overwrite:
            raise RlrecError(
                f"give at most one of {option_hint('resume')} and {option_hint('overwrite')}"
            )
        saved = self.out / config_name
        if resume:
            if not saved.is_file():
                raise RlrecError(
                    f"{self.out}: nothing to resume (no {config_name}); "
                    f"start without {option_hint('resume')}"
                )
            try:
                saved_text = saved.read_text()
            except UnicodeDecodeError:
                saved_text = None
            if check_config is not None and saved_text is not None:
                check_config(saved, saved_text)
            elif saved_text != config_text:
                raise RlrecError(
                    f"{saved}: the run was started with a different config; resume with the same one"
                )
        else:
            try:
                check_output(self.out, kind, overwrite=overwrite, inputs=inputs)
            except OutputExistsError:
                raise RlrecError(
                    f"{self.out}: run directory already exists; pass {option_hint('resume')} to "
                    f"continue it or {option_hint('overwrite')} to start over"
                ) from None
        if not lock:
            return
        self._created = make_parents(self.out.parent)
        try:
            self._lock = OutputLock(self.out).acquire()
            recover_stale(self.out)
            if resume:
                if marker_kind(self.out) == kind:  # deletes only inside a run rlrec marked
                    remove_partial(self.out)
                return
            check_output(self.out, kind, overwrite=overwrite, inputs=inputs)
            if self.out.exists() and any(self.out.iterdir()):
                self._tmp = self.work = temp_sibling(self.out, kind)
        except BaseException:
            self.close()
            remove_created(self._created)
            raise

    @property
    def replacing(self) -> bool:
        """True while the run is built beside an old one that it will replace."""
        return self._tmp is not None

    def setup(self, steps: Callable[[], None]) -> None:
        """Run the command's set-up after the claim; if it fails, :meth:`abort` and re-raise."""
        try:
            steps()
        except BaseException:
            self.abort()
            raise

    def start(self, write_files: Any) -> None:
        """Write a new run's first files: ``write_files(directory)`` fills a marked temporary
        directory that is then renamed into place (skipped for a resumed run)."""
        if not self.new or self._lock is None:
            return
        in_place = self._tmp is None  # else the run is built beside the old one: no rename yet
        staging = temp_sibling(self.out, self.kind) if self._tmp is None else self._tmp
        try:
            write_files(staging)
            if in_place:
                swap_in(staging, self.out)
        except BaseException as exc:
            if in_place:
                shutil.rmtree(staging, ignore_errors=True)
            if (error := as_os_error(exc, self.out)) is not None:
                raise error from exc
            raise

    def commit(self) -> None:
        """The run is complete: a run built beside the old one replaces it."""
        if self._tmp is not None:
            swap_in(self._tmp, self.out)
            self._tmp = None
            self.work = self.out

    def abort(self) -> None:
        """The command failed before training started: remove what it created."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        elif self._started_here():
            shutil.rmtree(self.out)
            if self._existed:  # the user's empty directory stays
                self.out.mkdir()
        self.close()
        remove_created(self._created)

    def _started_here(self) -> bool:
        """A new run this command started in place and that has no checkpoint yet."""
        return (
            self.new
            and self._lock is not None
            and marker_kind(self.out) == self.kind
            and not (self.out / "checkpoints").exists()
        )

    def fail(self) -> None:
        """Training failed: a run built beside an old one is dropped (the old one stays); a run in
        place stays as it is, resumable from its last checkpoint."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.close()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
