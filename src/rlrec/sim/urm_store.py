"""Saving and loading a user-response model: safetensors + JSON, no pickle.

A URM directory holds

* ``model.safetensors`` — the weights (keys ``urm.*``) and the raw feature tables the model was
  trained with (``features.items`` ``(N+1, d_i)`` with a zero padding row, ``features.users``
  ``(U, d_u)``), so an environment can be rebuilt from this one file;
* ``urm.json`` — format/version, the :class:`URMConfig`, feature widths, catalogue size and hash,
  the dataset's content hash, and training information (metrics per epoch, the selected epoch).

:func:`check_catalogue` refuses to pair a URM with a dataset of a different item catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rlrec.device import resolve_device
from rlrec.errors import DataFormatError
from rlrec.fsutil import atomic_write_json
from rlrec.sim.urm import URM, URMConfig

FORMAT = "rlrec.urm"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "urm.json"


@dataclass
class LoadedURM:
    """A URM in eval mode with its feature tables and metadata."""

    model: URM
    item_features: torch.Tensor
    user_features: torch.Tensor
    meta: dict[str, Any]
    path: Path

    @property
    def catalogue_hash(self) -> str:
        return self.meta["catalogue_hash"]


def save_urm(
    out: Path,
    model: URM,
    cfg: URMConfig,
    info: dict[str, Any],
    dataset_manifest: dict[str, Any],
    item_features: torch.Tensor,
    user_features: torch.Tensor,
) -> None:
    """Write ``out/model.safetensors`` and ``out/urm.json`` (``out`` is created if missing).

    ``item_features``: ``(N+1, d_i)`` with the zero padding row; ``user_features``: ``(U, d_u)``.
    Callers wanting atomicity write into a temporary directory and rename it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"urm.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["features.items"] = item_features.detach().cpu().contiguous()
    tensors["features.users"] = user_features.detach().cpu().contiguous()
    save_file(tensors, str(out / WEIGHTS))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.model_dump(mode="json"),
        "user_dim": model.user_dim,
        "item_dim": model.item_dim,
        "n_items": dataset_manifest["n_items"],
        "n_users": dataset_manifest["n_users"],
        "slate_size": dataset_manifest["slate_size"],
        "catalogue_hash": dataset_manifest["catalogue_hash"],
        **info,
    }
    atomic_write_json(out / META, meta)


def read_urm_meta(path: Path) -> dict[str, Any]:
    """``urm.json`` of a URM directory, checked (the directory, both files, format and version)
    without reading the weights: what a sweep checks before it starts any run."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "URM directory not found (create it with rlrec sim train-urm)")
    for name in (META, WEIGHTS):
        if not (path / name).is_file():
            raise DataFormatError(path, f"not a URM directory: {name} missing")
    try:
        meta = json.loads((path / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DataFormatError(path, f"corrupted URM files ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataFormatError(path / META, f"not a URM description (format != '{FORMAT}')")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            path / META, f"URM format version {meta.get('format_version')} is not supported"
        )
    return meta


def load_urm(path: Path, device: torch.device | str = "cpu") -> LoadedURM:
    """Load a URM directory written by :func:`save_urm` (model in eval mode) onto ``device``
    (``auto``: CUDA when present)."""
    path = Path(path)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    meta = read_urm_meta(path)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as exc:
        raise DataFormatError(path, f"corrupted URM files ({exc})") from None
    cfg = URMConfig.model_validate(meta["config"])
    model = URM(cfg, meta["user_dim"], meta["item_dim"], meta["n_items"], meta["n_users"])
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("urm.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = "; ".join(str(exc).strip().splitlines()[:2])
        raise DataFormatError(path / WEIGHTS, f"weights do not match urm.json ({first})") from None
    for key in ("features.items", "features.users"):
        if key not in tensors:
            raise DataFormatError(path / WEIGHTS, f"missing tensor '{key}'")
    items, users = tensors["features.items"], tensors["features.users"]
    if items.shape != (meta["n_items"] + 1, meta["item_dim"]):
        raise DataFormatError(path / WEIGHTS, f"item feature table has shape {tuple(items.shape)}")
    model.eval().to(device)
    return LoadedURM(model, items.to(device), users.to(device), meta, path)


def check_catalogue(
    meta: dict[str, Any], urm_path: Path, dataset_path: Path, manifest: dict[str, Any]
) -> None:
    """Refuse a URM (its ``urm.json`` ``meta``) trained on another item catalogue than the
    dataset's (ids, features)."""
    if meta["catalogue_hash"] != manifest.get("catalogue_hash"):
        raise DataFormatError(
            urm_path,
            f"URM was trained on a different item catalogue ({meta['n_items']} items, "
            f"catalogue {meta['catalogue_hash'][:12]}) than the dataset {dataset_path} "
            f"({manifest.get('n_items')} items, catalogue {str(manifest.get('catalogue_hash'))[:12]}); "
            "train a URM on this dataset with rlrec sim train-urm",
        )
    if meta.get("user_dim") != manifest.get("user_dim"):
        raise DataFormatError(
            urm_path,
            f"URM expects {meta.get('user_dim')} user features, the dataset "
            f"{dataset_path} has {manifest.get('user_dim')}",
        )
