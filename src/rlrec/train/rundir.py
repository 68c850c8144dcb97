"""The run directory shared by the offline and online trainers: claiming it, its first files, JSON safety.

A run directory holds the ownership marker (:mod:`rlrec.outputs`), ``config.yaml`` (the resolved
config), ``run.json`` (what the run was trained on), logs, checkpoints and ``summary.json``. A new
run refuses a non-empty directory unless ``overwrite`` (and then only an rlrec run of the same
kind, replaced once the new one is complete); ``resume`` requires the saved config to equal the
current one exactly. One process writes a run at a time (:class:`rlrec.outputs.RunClaim`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from rlrec import __version__
from rlrec.config import config_to_yaml, dump_config
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
) -> RunClaim:
    """Claim ``run_dir`` for a new or resumed run of ``cfg`` (see :class:`rlrec.outputs.RunClaim`)."""
    return RunClaim(
        run_dir,
        kind,
        config_text=config_to_yaml(cfg),
        resume=resume,
        overwrite=overwrite,
        inputs=inputs,
        lock=lock,
        config_name=CONFIG,
    )


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
