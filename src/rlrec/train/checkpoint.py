"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory ``checkpoints/step_<N>/`` holding

* ``model.safetensors`` — the networks' weights, keys prefixed ``net0.``, ``net1.``, ``target.``;
* ``optim.safetensors`` — Adam's tensors, keys ``<optimizer name>/<param index>/<field>``;
* ``state.json`` — step, the optimisers' hyper-parameters, best-metric bookkeeping.

It is written into a temporary sibling and renamed, and ``checkpoints/latest.json`` is replaced
atomically afterwards, so a crash at any moment leaves the previous checkpoint intact and loadable.
The run's ``best/`` and ``top/step_<N>/`` directories hold weights and ``state.json`` only
(:func:`save_weights`). Nothing is pickled.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rlrec.errors import DataFormatError
from rlrec.fsutil import atomic_directory, atomic_write_json
from rlrec.outputs import as_os_error

LATEST = "latest.json"
CHECKPOINT_NAME = re.compile(r"step_\d{9}")


def module_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Flatten named modules' state dicts into one ``prefix.key → tensor`` dict (contiguous, CPU)."""
    return {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }


def optimizer_payload(
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split optimiser state dicts into tensors (safetensors) and JSON-able hyper-parameters."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for index, fields in sd["state"].items():
            for field, value in fields.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{name}/{index}/{field}"] = t.detach().cpu().contiguous()
        meta[name] = sd["param_groups"]
    return tensors, meta


def restore_optimizer(
    opt: torch.optim.Optimizer, name: str, tensors: dict[str, torch.Tensor], groups: list[Any]
) -> None:
    """Load the state saved by :func:`optimizer_payload` into ``opt``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = f"{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            _, index, field = key.split("/")
            state.setdefault(int(index), {})[field] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def _save_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors.torch.save_file``; a failed write (a full disk) is raised as an ``OSError``."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as exc:
        if (error := as_os_error(exc, path)) is not None:
            raise error from exc
        raise


def save_checkpoint(
    root: Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    keep_last: int,
    protect: set[str] | None = None,
) -> Path:
    """Write ``root/step_<step>`` atomically, point ``latest.json`` at it, prune old checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:09d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _save_file(module_tensors(modules), tmp / "model.safetensors")
        opt_tensors, opt_meta = optimizer_payload(optimizers)
        _save_file(opt_tensors, tmp / "optim.safetensors")
        atomic_write_json(tmp / "state.json", {**state, "step": step, "optimizers": opt_meta})
    except BaseException:  # e.g. disk full: no partial checkpoint stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_json(root / LATEST, {"checkpoint": name, "step": step})
    keep = {name, *(protect or set())}
    existing = sorted(p.name for p in root.glob("step_*") if p.is_dir())
    for old in existing[: max(0, len(existing) - keep_last)]:
        if old not in keep:
            shutil.rmtree(root / old)
    return final


def save_weights(path: Path, modules: dict[str, nn.Module], state: dict[str, Any]) -> None:
    """Write weights and a JSON state (no optimiser) to the directory ``path``, atomically."""
    with atomic_directory(path, overwrite=True) as tmp:
        _save_file(module_tensors(modules), tmp / "model.safetensors")
        atomic_write_json(tmp / "state.json", state)


def latest_checkpoint(root: Path) -> Path | None:
    """The directory ``latest.json`` points to, or ``None`` when there is no checkpoint yet."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(pointer, f"checkpoint pointer is corrupted ({exc})") from None
    if not isinstance(name, str) or not CHECKPOINT_NAME.fullmatch(name):
        raise DataFormatError(
            pointer, f"'checkpoint' must name a step_<N> directory of this run, got {name!r}"
        )
    path = root / name
    if not path.is_dir():
        raise DataFormatError(pointer, f"points to {name}, which does not exist")
    return path


def load_checkpoint(
    path: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """``(model tensors, optimiser tensors, state)`` of a checkpoint directory, validated."""
    for name in ("model.safetensors", "state.json"):
        if not (path / name).is_file():
            raise DataFormatError(path, f"incomplete checkpoint: {name} missing")
    try:
        model = load_file(str(path / "model.safetensors"))
        optim = (
            load_file(str(path / "optim.safetensors"))
            if (path / "optim.safetensors").exists()
            else {}
        )
        state = json.loads((path / "state.json").read_text())
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DataFormatError(path, f"corrupted checkpoint ({exc})") from None
    return model, optim, state


def load_modules(
    modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor], source: Path
) -> None:
    """Load ``prefix.key`` tensors into the named modules; a shape or key mismatch is a clear error."""
    for name, module in modules.items():
        prefix = f"{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = module.state_dict()
        wrong = [
            f"{prefix}{k}: {v.dtype} (expected {expected[k].dtype})"
            for k, v in sd.items()
            if k in expected and v.dtype != expected[k].dtype
        ]
        if wrong:
            raise DataFormatError(
                source, f"checkpoint tensors have the wrong dtype ({'; '.join(wrong[:3])})"
            )
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise DataFormatError(
                source, f"checkpoint does not match the configured model ({'; '.join(first[:3])})"
            ) from None
