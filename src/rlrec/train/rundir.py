"""The run directory shared by the offline and online trainers: claiming it, its metadata, JSON safety.

A run directory holds ``config.yaml`` (the resolved config), ``run.json`` (what the run was trained
on), logs, checkpoints and ``summary.json``. A new run refuses a non-empty directory unless
``overwrite``; ``resume`` requires the saved config to equal the current one exactly.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from rlrec import __version__
from rlrec.config import config_to_yaml, dump_config
from rlrec.errors import ConfigError
from rlrec.fsutil import atomic_write_json

CONFIG = "config.yaml"
RUN_META = "run.json"


def open_run_dir(
    run_dir: Path, cfg: BaseModel, *, resume: bool, overwrite: bool, remove: bool = True
) -> bool:
    """Check ``run_dir`` for a new or resumed run; True when a new run must be written into it.

    With ``overwrite`` an existing run is deleted (only where ``remove``: e.g. rank 0 of several).
    """
    saved = run_dir / CONFIG
    if resume:
        if not saved.is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no {CONFIG}); start without --resume")
        if saved.read_text() != config_to_yaml(cfg):
            raise ConfigError(
                f"{saved}: the run was started with a different config; resume with the same one"
            )
        return False
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{run_dir}: run directory already exists; pass --resume to continue it "
                "or --overwrite to start over"
            )
        if remove:
            shutil.rmtree(run_dir)
    return True


def start_run_dir(run_dir: Path, cfg: BaseModel, meta: dict[str, Any]) -> None:
    """Create ``run_dir`` with the resolved config and ``run.json`` (``meta`` + the rlrec version)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / CONFIG)
    atomic_write_json(run_dir / RUN_META, {**meta, "rlrec_version": __version__})


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
