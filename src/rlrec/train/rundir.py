"""The run directory shared by the offline and online trainers: claiming it, its first files, JSON safety.

A run directory holds the ownership marker (:mod:`rlrec.outputs`), ``config.yaml`` (the resolved
config), ``run.json`` (what the run was trained on), logs, checkpoints and ``summary.json``. A new
run refuses a non-empty directory unless ``overwrite`` (and then only an rlrec run of the same
kind, replaced once the new one is complete); ``resume`` requires the saved config to equal the
current one, except for the ``mutable`` keys a trainer names: its budget (``train.epochs``, ...),
which :func:`record_budget` then records, and its progress display. One process writes a run at
a time (:class:`rlrec.outputs.RunClaim`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from rlrec import __version__
from rlrec.config import config_to_yaml, dump_config, flatten_config, format_validation_error
from rlrec.errors import RlrecError
from rlrec.fsutil import atomic_write_json
from rlrec.outputs import RunClaim

CONFIG = "config.yaml"
RUN_META = "run.json"


def claim_run_dir(
    run_dir: Path,
    cfg: BaseModel,
    kind: str,
    *,
    resume: bool,
    overwrite: bool,
    inputs: Sequence[Path | str | None] = (),
    lock: bool = True,
    mutable: Collection[str] = (),
) -> RunClaim:
    """Claim ``run_dir`` for a new or resumed run of ``cfg`` (see :class:`rlrec.outputs.RunClaim`);
    a resumed run's saved config may differ from ``cfg`` in the dotted keys ``mutable`` only."""

    def check(path: Path, text: str) -> None:
        changed = sorted(
            set(config_changes(saved_config(path, text, type(cfg)), cfg)) - set(mutable)
        )
        if changed:
            allowed = f" (only {', '.join(mutable)} may change)" if mutable else ""
            raise RlrecError(
                f"{path}: the run was started with a different config: {', '.join(changed)} "
                f"changed{allowed}; resume with the same one"
            )

    return RunClaim(
        run_dir,
        kind,
        config_text=config_to_yaml(cfg),
        resume=resume,
        overwrite=overwrite,
        inputs=inputs,
        lock=lock,
        config_name=CONFIG,
        check_config=check,
    )


def saved_config(path: Path, text: str, model: type[BaseModel]) -> BaseModel:
    """A run's saved config (``text`` of ``path``) read with today's ``model``: keys added to rlrec
    since the run started take their defaults."""
    try:
        return model.model_validate(yaml.safe_load(text))
    except yaml.YAMLError:
        raise RlrecError(f"{path}: not valid YAML; the run cannot be resumed") from None
    except ValidationError as exc:
        raise RlrecError(
            f"{path}: not a config this rlrec can resume: {format_validation_error(exc, str(path))}"
        ) from None


def config_changes(old: BaseModel, new: BaseModel) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` of the keys whose resolved values differ."""
    a, b = (flatten_config(c.model_dump(mode="json")) for c in (old, new))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def budget_change(
    run_dir: Path, cfg: BaseModel, keys: Collection[str]
) -> dict[str, tuple[Any, Any]]:
    """The budget ``keys`` whose value in ``run_dir``'s saved config differs from ``cfg``'s."""
    path = Path(run_dir) / CONFIG
    old = saved_config(path, path.read_text(encoding="utf-8"), type(cfg))
    return {k: v for k, v in config_changes(old, cfg).items() if k in keys}


def record_budget(
    run_dir: Path,
    cfg: BaseModel,
    change: dict[str, tuple[Any, Any]],
    step: int,
    totals: tuple[int, int],
) -> None:
    """A resumed run's new budget: an entry ``{"resumed_at_step", "old", "new", "old_total",
    "new_total"}`` appended to ``run.json``'s ``budget_history``, then ``cfg`` saved as the run's
    config (a resume killed in between appends the same entry once)."""
    entry = {
        "resumed_at_step": step,
        "old": {k: old for k, (old, _) in change.items()},
        "new": {k: new for k, (_, new) in change.items()},
        "old_total": totals[0],
        "new_total": totals[1],
    }
    path = Path(run_dir) / RUN_META
    meta = json.loads(path.read_text(encoding="utf-8"))
    history = meta.setdefault("budget_history", [])
    if not history or history[-1] != entry:
        history.append(entry)
    atomic_write_json(path, meta)
    dump_config(cfg, Path(run_dir) / CONFIG)


def run_files(
    cfg: BaseModel, meta: dict[str, Any], extra: Callable[[Path], None] | None = None
) -> Callable[[Path], None]:
    """A writer of a new run's first files: the resolved config, ``run.json`` (``meta`` + the rlrec
    version) and whatever ``extra(directory)`` adds."""

    def write(directory: Path) -> None:
        dump_config(cfg, directory / CONFIG)
        atomic_write_json(directory / RUN_META, {**meta, "rlrec_version": __version__})
        if extra is not None:
            extra(directory)

    return write


def json_safe(obj: Any) -> Any:
    """A JSON-writable copy: NaN/inf → ``None``, NumPy scalars → Python numbers."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj
