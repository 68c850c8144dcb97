"""The ``manifest.json`` of a prepared directory (session datasets and list datasets alike).

A manifest names its format and version, the source and resolved options, the raw inputs with their
hashes, every data file with its SHA-256 and one content hash over them. :func:`manifest_head`
writes those common fields; :func:`read_manifest` checks them when the directory is opened again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlrec import __version__
from rlrec.errors import DataFormatError
from rlrec.fsutil import read_json, sha256_file

MANIFEST = "manifest.json"


def content_hash(files: dict[str, str]) -> str:
    """One hash over the data files' hashes (name-ordered)."""
    text = "".join(f"{name}:{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_head(
    directory: Path, fmt: str, version: int, cfg: BaseModel, source_kind: str, inputs: list[Path]
) -> dict[str, Any]:
    """The common manifest fields for the Parquet files already written into ``directory``."""
    files = {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.suffix == ".parquet"}
    return {
        "format": fmt,
        "format_version": version,
        "rlrec_version": __version__,
        "source": source_kind,
        "options": cfg.model_dump(mode="json"),
        "inputs": [
            {"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in inputs
        ],
        "files": files,
        "content_hash": content_hash(files),
    }


def read_manifest(
    path: Path,
    *,
    fmt: str,
    version: int,
    required: tuple[str, ...],
    what: str,
    command: str,
    verify: bool = True,
) -> dict[str, Any]:
    """Open the manifest of the directory ``path`` (a ``what`` written by ``command``) and check its
    format, version and keys; with ``verify`` every listed file's SHA-256 and the content hash."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, f"{what} directory not found (create it with {command})")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise DataFormatError(mpath, f"missing manifest: not a prepared rlrec {what}")
    manifest = read_json(mpath, "manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise DataFormatError(
            mpath, f"not an rlrec {what} manifest (format != '{fmt}'; see {command})"
        )
    missing = [k for k in required if k not in manifest]
    if missing:
        raise DataFormatError(mpath, f"manifest lacks key(s) {', '.join(missing)}")
    if manifest["format_version"] != version:
        raise DataFormatError(
            mpath,
            f"{what} format version {manifest['format_version']} is not supported "
            f"(this rlrec reads version {version}); prepare it again",
        )
    files = manifest["files"]
    if not isinstance(files, dict) or any(Path(n).name != n for n in files):
        raise DataFormatError(mpath, "'files' must map file names of this directory to hashes")
    for name, digest in files.items():
        fpath = path / name
        if not fpath.is_file():
            raise DataFormatError(fpath, "file listed in the manifest is missing")
        if verify and sha256_file(fpath) != digest:
            raise DataFormatError(fpath, "file content does not match the manifest's hash")
    if verify and content_hash(manifest["files"]) != manifest.get("content_hash"):
        raise DataFormatError(mpath, "content_hash does not match the listed files")
    return manifest
