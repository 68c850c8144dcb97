"""rlrec: reinforcement-learning recommender systems, from raw logs to a served top-k list."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    """The installed distribution's version; pyproject.toml's ``version`` (the one source) when
    rlrec runs from a source checkout that was never installed (``PYTHONPATH=src``)."""
    try:
        return version("rlrec")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        return match.group(1) if match else "0+unknown"


__version__ = _version()
