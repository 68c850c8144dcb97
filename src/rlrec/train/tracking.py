"""Where a run's metrics go: one adapter interface, the run directory's own files, and the
composite :class:`Tracker` the trainers log to.

An adapter (:class:`TrackerAdapter`, after d3rlpy's loggers) takes the resolved config once
(``log_params``), then records (``log_metrics(kind, step, values)``), and is closed. The files
adapter (JSONL + CSV) is always on: reports and ``--resume`` read it; TensorBoard, MLflow and
Weights & Biases are in :mod:`.tracking_backends`, opened on demand (``train.trackers``,
:mod:`.reporting`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from rlrec.fsutil import atomic_write_bytes


class TrackerAdapter:
    """One destination of a run's records. Values reaching :meth:`log_metrics` are plain Python
    numbers (NaN/inf as ``None``), strings, or lists (per-episode data)."""

    def log_params(self, config: dict[str, Any]) -> None:
        """Record the resolved run config (nested, JSON-like) once per session."""

    def log_metrics(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """Record ``values`` of ``kind`` (``train``, ``val``, ``test``, ...) at step ``step``."""
        raise NotImplementedError

    def truncate_after(self, step: int, ends: Collection[str]) -> None:
        """Forget the records after the checkpoint of ``step`` (see :meth:`FileTracker.truncate_after`);
        a remote store keeps what it received: the resumed run logs those steps again."""

    def close(self, failed: bool = False) -> None:
        """Flush and release; ``failed``: the run stopped with an error."""


class FileTracker(TrackerAdapter):
    """Appends records to ``metrics.jsonl`` (every record) and ``<kind>.csv`` (one file per kind).

    NaN is written as ``null`` in JSON and empty in CSV. A record with a list value (e.g.
    per-episode data) goes to ``metrics.jsonl`` only.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._csv_columns: dict[str, list[str]] = {}

    def log_metrics(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        self._jsonl.flush()
        if any(isinstance(v, list) for v in values.values()):
            return
        self._write_csv(kind, step, values)

    def _write_csv(self, kind: str, step: int, values: dict[str, Any]) -> None:
        path = self.run_dir / f"{kind}.csv"
        columns = self._csv_columns.get(kind)
        if columns is None:
            if path.exists():
                with open(path, encoding="utf-8") as fh:
                    columns = next(csv.reader(fh), None)
            if not columns:
                columns = ["step", *values]
                with open(path, "w", newline="", encoding="utf-8") as fh:
                    csv.writer(fh).writerow(columns)
            self._csv_columns[kind] = columns
        row = {"step": step, **values}
        with open(path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(["" if row.get(c) is None else row.get(c) for c in columns])

    def truncate_after(self, step: int, ends: Collection[str] = ()) -> None:
        """Drop the records logged after the checkpoint of ``step`` (a resumed run replays them).

        Those are the records of later steps, and the records of the kinds in ``ends`` at ``step``
        itself: the end-of-run evaluation is logged at the last step *after* its checkpoint, so a
        run killed during it, or a finished run resumed, logs it again. A line cut short by a kill
        is dropped too. Each file is replaced atomically.
        """
        self._jsonl.close()
        for path in [self.run_dir / "metrics.jsonl", *self.run_dir.glob("*.csv")]:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            if path.suffix == ".jsonl":
                keep = [ln for ln in lines if _before(*_record(ln, json_line=True), step, ends)]
            else:
                keep = lines[:1] + [
                    ln for ln in lines[1:] if _before(path.stem, _record(ln)[1], step, ends)
                ]
            atomic_write_bytes(path, "".join(keep).encode())
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def close(self, failed: bool = False) -> None:
        self._jsonl.close()


class Tracker:
    """The adapters of a run, logged to together (the files adapter first)."""

    def __init__(self, adapters: Sequence[TrackerAdapter]) -> None:
        self.adapters = list(adapters)

    def log_params(self, config: dict[str, Any]) -> None:
        for adapter in self.adapters:
            adapter.log_params(config)

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """Record ``values`` of ``kind`` (e.g. ``train``, ``val``) at step ``step``."""
        clean = {k: _plain(v) for k, v in values.items()}
        for adapter in self.adapters:
            adapter.log_metrics(kind, step, clean)

    def truncate_after(self, step: int, *, ends: Collection[str] = ()) -> None:
        """Drop the records logged after the checkpoint of ``step`` (a resumed run replays them)."""
        for adapter in self.adapters:
            adapter.truncate_after(step, ends)

    def close(self, failed: bool = False) -> None:
        for adapter in self.adapters:
            adapter.close(failed)


def _record(line: str, json_line: bool = False) -> tuple[str | None, float]:
    """``(kind, step)`` of a complete log line (``kind`` of JSON lines only); step ``inf``
    (dropped) for a line a kill cut short."""
    if not line.endswith("\n"):
        return None, math.inf
    try:
        if not json_line:
            return None, float(line.split(",", 1)[0])
        record = json.loads(line)
        return record.get("kind"), float(record["step"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, math.inf


def _before(kind: str | None, step: float, checkpoint: int, ends: Collection[str]) -> bool:
    """Whether a record of ``kind`` at ``step`` was logged before the checkpoint of ``checkpoint``."""
    return step < checkpoint if kind in ends else step <= checkpoint


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
