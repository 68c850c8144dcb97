"""Small attribute files (users/movies/item context) read line by line, with line-numbered errors.

These files have a few thousand rows at most, so plain Python parsing is fast enough and lets every
error name its line. Values are kept as text; callers turn them into feature columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rlrec.data.loaders.delimited import check_file
from rlrec.errors import DataFormatError


def read_rows(
    path: Path,
    n_fields: int,
    *,
    separator: str,
    encoding: str = "utf-8",
    header: bool = False,
    what: str = "file",
) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """``(header fields or None, [(line number, fields)])``; every row must have ``n_fields`` fields."""
    path = check_file(path, what)
    text = path.read_bytes().decode(encoding, errors="replace")
    head: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(separator)
        if header and head is None:
            head = parts
            continue
        if len(parts) != n_fields:
            raise DataFormatError(
                path,
                f"expected {n_fields} '{separator}'-separated fields, found {len(parts)}",
                line=lineno,
            )
        rows.append((lineno, parts))
    if not rows:
        raise DataFormatError(path, f"{what} has no data rows")
    return head, rows


def lookup(
    path: Path, rows: list[tuple[int, list[str]]], key_field: int, wanted: list[object], what: str
) -> list[tuple[int, list[str]]]:
    """The rows whose ``key_field`` equals each wanted raw id (compared as text), in wanted order."""
    index: dict[str, tuple[int, list[str]]] = {}
    for lineno, parts in rows:
        index.setdefault(parts[key_field].strip(), (lineno, parts))
    missing = [w for w in wanted if str(w) not in index]
    if missing:
        shown = ", ".join(map(str, missing[:5]))
        raise DataFormatError(
            path, f"{len(missing)} {what} id(s) of the log are not listed: {shown}"
        )
    return [index[str(w)] for w in wanted]


def parse_float(
    path: Path, lineno: int, column: str, value: str, missing_ok: bool = False
) -> float:
    """A float from text, or a line-numbered error (empty → NaN when ``missing_ok``)."""
    text = value.strip()
    if text == "" and missing_ok:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(
            path, f"expected a number, found '{text[:50]}'", line=lineno, column=column
        ) from None


def frame_of(rows: list[tuple[int, list[str]]], names: list[str]) -> pl.DataFrame:
    """All-text DataFrame of parsed rows (for one-hot helpers)."""
    cols = np.array([parts for _, parts in rows], dtype=object).T
    return pl.DataFrame({n: [str(v).strip() for v in cols[i]] for i, n in enumerate(names)})
