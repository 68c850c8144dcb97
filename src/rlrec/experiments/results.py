"""Finished runs as data: find them, group them by method, aggregate seeds (P-SA2C §4.1.2 and
P-CCQL §4.1 average five runs; P-HAC §3.1.4 reports mean ± std over seeds).

A run directory (written by ``rlrec train`` or ``rlrec sim train``) holds ``config.yaml``,
``run.json``, ``summary.json`` and ``metrics.jsonl``; a sweep directory's ``sweep.json`` names its
runs (only finished ones are read: a pruned or failed run is skipped). Runs whose resolved configs
are equal except for ``seed`` and ``out`` form one :class:`Group` (one method, several seeds).
Three protocols turn an ``rlrec train`` run into one number per metric (an ``rlrec sim train`` run
has one: the evaluation metrics of the checkpoint selected on validation users, ``best``):

* ``best`` (rlrec's default) — the test metrics of the checkpoint with the best validation
  ``select_metric``;
* ``top_k_mean`` — the mean test metrics of the (up to ``k``) best validation checkpoints by
  ``select_metric``;
* ``per_metric_top_k`` — for each metric separately, the mean test value of the ``k`` checkpoints
  with the best *validation value of that metric* (P-CCQL's "mean of the top-5 checkpoints",
  optimistic: each column picks its own checkpoints; train with ``keep_top_by: each_metric``).

A group's value is the mean ± sample standard deviation of its runs' values.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from rlrec.config import flatten_config, load_yaml_text
from rlrec.errors import DataFormatError, RlrecError
from rlrec.experiments.kinds import SIM_SELECT, RunKind, run_kind
from rlrec.fsutil import read_json, read_text

Protocol = Literal["best", "top_k_mean", "per_metric_top_k"]
PROTOCOLS: tuple[str, ...] = ("best", "top_k_mean", "per_metric_top_k")
RUN_FILES = ("config.yaml", "run.json", "summary.json", "metrics.jsonl")
PER_SEED_KEYS = ("seed", "out")


@dataclass
class Run:
    """One finished training run, read from its directory."""

    path: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    summary: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Run:
        """Read a run directory; a missing or unreadable file is a clear error naming it."""
        for name in RUN_FILES:
            if not (path / name).is_file():
                hint = " (has the run finished?)" if name == "summary.json" else ""
                raise DataFormatError(path / name, f"missing{hint}")
        config_path = path / "config.yaml"
        config = load_yaml_text(read_text(config_path, "run config"), str(config_path))
        meta = read_json(path / "run.json", "run metadata")
        summary = read_json(path / "summary.json", "run summary")
        for name, value in (("config.yaml", config), ("run.json", meta), ("summary.json", summary)):
            if not isinstance(value, dict):
                raise DataFormatError(path / name, "expected a mapping at the top level")
        if RunKind.final_metrics(summary) is None:
            raise DataFormatError(path / "summary.json", "has no test or evaluation metrics")
        return cls(path, config, meta, summary)

    @property
    def kind(self) -> RunKind:
        """``train`` (``rlrec train``) or ``sim`` (``rlrec sim train``)."""
        return run_kind(self.summary)

    @property
    def final(self) -> dict[str, Any]:
        """The reported metrics of the selected checkpoint (test, or the evaluation environment's)."""
        return RunKind.final_metrics(self.summary) or {}

    @property
    def select_metric(self) -> str:
        """The validation metric the run selected its checkpoint on."""
        return self.summary.get("select_metric") or SIM_SELECT

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every line of ``metrics.jsonl`` (train windows, validations, stability flags, test)."""
        path = self.path / "metrics.jsonl"
        out = []
        for number, line in enumerate(read_text(path, "metrics log").splitlines(), 1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, f"not JSON ({exc.msg})", line=number) from None
        return out

    def curve(self, kind: str, key: str) -> dict[int, float]:
        """``step → value`` of ``key`` in the records of ``kind`` (``train`` or ``val``)."""
        return {
            int(r["step"]): float(r[key])
            for r in self.records
            if r.get("kind") == kind and isinstance(r.get(key), (int, float))
        }

    def value(self, protocol: Protocol, metric: str, k: int) -> float | None:
        """This run's ``metric`` under ``protocol`` (``None`` if it was not measured)."""
        if protocol == "best":
            return _number(self.final.get(metric))
        top = self.summary.get("top") or []
        if protocol == "top_k_mean":
            chosen = top[:k]  # already ordered by the validation select_metric
        else:
            ranked = [t for t in top if _number(t["val"].get(metric)) is not None]
            ranked.sort(key=lambda t: (-t["val"][metric], t["step"]))
            chosen = ranked[:k]
        values = [v for t in chosen if (v := _number(t["test"].get(metric))) is not None]
        return statistics.fmean(values) if values else None


@dataclass
class Group:
    """Runs of one method that differ only by seed."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def stats(self, protocol: Protocol, metric: str, k: int) -> tuple[float, float, int] | None:
        """``(mean, std, n)`` over the runs (std 0 for a single run), ``None`` if unmeasured."""
        values = [v for r in self.runs if (v := r.value(protocol, metric, k)) is not None]
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), std, len(values)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def sweep_runs(path: Path) -> tuple[list[Path], list[str]]:
    """The finished runs a sweep directory's ``sweep.json`` names, and ``name (status)`` of the
    others (pruned, failed, not yet run)."""
    from rlrec.experiments.sweep import SWEEP_INDEX

    index = read_json(path / SWEEP_INDEX, "sweep index")
    entries = index.get("runs") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise DataFormatError(path / SWEEP_INDEX, "has no list of runs")
    done, others = [], []
    for entry in entries:
        run = path / str(entry.get("name"))  # runs live at OUT/NAME wherever the sweep ran from
        if entry.get("status") == "done" and (run / "summary.json").is_file():
            done.append(run)
        else:
            others.append(f"{entry.get('name')} ({entry.get('status')})")
    return done, others


def _run_dirs(path: Path, skipped: list[str]) -> list[Path]:
    """The finished runs of the sweeps under ``path`` (their others appended to ``skipped``) and
    every other run directory under it."""
    from rlrec.experiments.sweep import SWEEP_INDEX

    sweeps = sorted(p.parent for p in path.rglob(SWEEP_INDEX))
    found: set[Path] = set()
    for sweep in sweeps:
        done, others = sweep_runs(sweep)
        found.update(done)
        skipped.extend(f"{sweep}/{name}" for name in others)
    found.update(
        p.parent
        for p in path.rglob("config.yaml")
        if (p.parent / "run.json").is_file()
        and not any(p.parent.is_relative_to(sweep) for sweep in sweeps)
    )
    return sorted(found)


def find_runs(paths: list[Path], skipped: list[str] | None = None) -> list[Run]:
    """Runs at ``paths``: each a run directory, or a directory searched recursively for runs and
    sweeps (a sweep contributes its finished runs; the others are appended to ``skipped``)."""
    skipped = [] if skipped is None else skipped
    runs: list[Run] = []
    for path in paths:
        if not path.exists():
            raise RlrecError(f"{path}: no such run or directory")
        if (path / "config.yaml").is_file() or (path / "summary.json").is_file():
            runs.append(Run.load(path))
            continue
        found = _run_dirs(path, skipped)
        if not found:
            raise RlrecError(f"{path}: contains no finished run directory (config.yaml + run.json)")
        runs.extend(Run.load(p) for p in found)
    if not runs:
        raise RlrecError("no runs given")
    first = runs[0]
    for run in runs[1:]:
        if run.kind != first.kind:
            raise RlrecError(
                f"{run.path} is an rlrec {' '.join(run.kind.command)} run and {first.path} an "
                f"rlrec {' '.join(first.kind.command)} run: a report compares runs of one kind"
            )
        if run.meta.get("dataset_content_hash") != first.meta.get("dataset_content_hash"):
            raise RlrecError(
                f"{run.path} was trained on {run.meta.get('dataset')} and {first.path} on "
                f"{first.meta.get('dataset')}: a report compares runs on one dataset only"
            )
    return runs


def method_config(run: Run) -> dict[str, Any]:
    """The run's flattened config without the per-seed keys (``seed``, ``out``)."""
    flat = flatten_config(run.config)
    return {k: v for k, v in flat.items() if k not in PER_SEED_KEYS and v != {}}


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs by their config minus seed and output directory, in order of first appearance.

    A group's label is the config's ``name``, else ``<objective>/<encoder>`` (``rlrec train``) or the
    agent's kind (``rlrec sim train``); where two groups would
    share a label, the config keys in which they differ are appended, e.g.
    ``ccql/sasrec (objective.cql_variant=legacy)``.
    """
    groups: dict[str, tuple[dict[str, Any], list[Run]]] = {}
    for run in runs:
        flat = method_config(run)
        key = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()
        groups.setdefault(key, (flat, []))[1].append(run)
    base = {
        key: flat.get("name")
        or flat.get("agent.kind")
        or f"{flat.get('objective.kind')}/{flat.get('encoder.kind')}"
        for key, (flat, _) in groups.items()
    }
    out = []
    for key, (flat, members) in groups.items():
        label = base[key]
        twins = [groups[k][0] for k in groups if k != key and base[k] == label]
        if twins:
            differing = sorted(
                name
                for name in set(flat).union(*twins)
                if name not in ("data", "name")
                and any(t.get(name) != flat.get(name) for t in twins)
            )
            label += " (" + ", ".join(f"{n}={flat.get(n)}" for n in differing) + ")"
        out.append(Group(label, sorted(members, key=lambda r: r.config.get("seed", 0))))
    return out
