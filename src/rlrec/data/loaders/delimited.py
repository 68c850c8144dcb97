"""Reading delimited raw files fast, and saying exactly which line is wrong when they are malformed.

The fast path is one typed polars scan. When it fails (or leaves nulls in a required field, or an
unknown category), :func:`diagnose` re-reads the file line by line in Python, applying the same rules,
and raises a :class:`DataFormatError` naming the file, the line and the column. The slow pass runs only
on the error path, so well-formed logs of tens of millions of rows are read at polars speed.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, NoReturn

import polars as pl

from rlrec.errors import DataFormatError

Kind = Literal["int", "float", "str", "iso_ts", "any", "skip"]
"""``int``/``float``: numbers; ``str``: non-empty text; ``iso_ts``: ``YYYY-MM-DDThh:mm:ss[.fff]Z``
(converted to Int64 milliseconds); ``any``: text that may be empty; ``skip``: present, not read."""

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_POLARS_DTYPE = {"int": pl.Int64, "float": pl.Float64}
_UNIT_SEP = "\x1f"


MAX_EPOCH_S = 10**11
"""Largest timestamp accepted, in seconds (the year 5138): beyond it a value is a data error, and
one in milliseconds would overflow Int64 nanoseconds downstream."""
MAX_EPOCH_MS = MAX_EPOCH_S * 1000


@dataclass(frozen=True)
class Field:
    """One column of a raw file: its name, kind, (optionally) the allowed values and, for numbers,
    the largest magnitude allowed (timestamps: :data:`MAX_EPOCH_S` or :data:`MAX_EPOCH_MS`)."""

    name: str
    kind: Kind
    choices: tuple[str, ...] | None = None
    max_abs: float | None = None


def check_file(path: Path, what: str) -> Path:
    """Fail clearly for a missing, non-regular or empty file."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, f"{what} not found")
    if not path.is_file():
        raise DataFormatError(path, f"{what} is not a regular file")
    if path.stat().st_size == 0:
        raise DataFormatError(path, f"{what} is empty")
    return path


def read_delimited(
    path: Path,
    fields: Sequence[Field],
    *,
    separator: str,
    header: Sequence[str] | None = None,
    what: str = "file",
    quoted: bool = False,
) -> pl.DataFrame:
    """Read a delimited text file into a typed DataFrame of the non-skipped fields.

    ``header``: the exact header line expected as the first line (``None``: the file has none).
    ``iso_ts`` fields come back as Int64 milliseconds since the epoch. A multi-character separator
    (MovieLens-1M's ``::``) is supported for fields that cannot contain it. Unless ``quoted`` (fields
    may hold a quoted separator), every line must have exactly ``len(fields)`` fields: a streamed count
    of separators catches short lines that polars would silently fill with nulls.
    """
    path = check_file(path, what)
    try:
        df = scan_delimited(
            path, fields, separator=separator, header=header, quoted=quoted
        ).collect()
    except pl.exceptions.PolarsError as exc:
        _unreadable(path, fields, separator, header, what, exc)
    if df.height == 0:
        raise DataFormatError(path, f"{what} has no data rows")
    _check_rows(path, df, fields, separator, header)
    if not quoted:
        _check_line_count(path, df.height, fields, separator, header)
    return df


def iter_delimited(
    path: Path,
    fields: Sequence[Field],
    *,
    separator: str,
    header: Sequence[str] | None = None,
    what: str = "file",
    chunk_rows: int = 1 << 20,
) -> Iterator[pl.DataFrame]:
    """:func:`read_delimited` in batches of about ``chunk_rows`` rows, in file order, in bounded
    memory: the same typed columns and the same checks, batch by batch (a malformed file raises the
    same :class:`DataFormatError`, naming the line). Single-character separators, unquoted fields."""
    if len(separator) != 1:
        raise ValueError("iter_delimited reads single-character separators only")
    path = check_file(path, what)
    rows = 0
    try:
        lf = scan_delimited(path, fields, separator=separator, header=header, quoted=False)
        batches = lf.collect_batches(chunk_size=chunk_rows, engine="streaming")
    except pl.exceptions.PolarsError as exc:
        _unreadable(path, fields, separator, header, what, exc)
    while True:
        try:
            df = next(batches)
        except StopIteration:
            break
        except pl.exceptions.PolarsError as exc:
            _unreadable(path, fields, separator, header, what, exc)
        _check_rows(path, df, fields, separator, header)
        rows += df.height
        yield df
    if rows == 0:
        raise DataFormatError(path, f"{what} has no data rows")
    _check_line_count(path, rows, fields, separator, header)


def scan_delimited(
    path: Path,
    fields: Sequence[Field],
    *,
    separator: str,
    header: Sequence[str] | None,
    quoted: bool,
) -> pl.LazyFrame:
    """The typed lazy scan of a delimited file: non-skipped fields, ``iso_ts`` as Int64 ms."""
    if header is not None:
        _check_header(path, header, separator)
    source: Path | io.BytesIO = path
    sep = separator
    if len(separator) > 1:
        source = io.BytesIO(path.read_bytes().replace(separator.encode(), _UNIT_SEP.encode()))
        sep = _UNIT_SEP
    schema = {f.name: _POLARS_DTYPE.get(f.kind, pl.String) for f in fields}
    keep = [f.name for f in fields if f.kind != "skip"]
    conversions = [
        pl.col(f.name)
        .str.strip_chars()
        .str.to_datetime(ISO_FORMAT, time_unit="ms", time_zone=None, strict=True)
        .dt.epoch("ms")
        .alias(f.name)
        for f in fields
        if f.kind == "iso_ts"
    ]
    lf = pl.scan_csv(
        source,
        has_header=False,
        skip_rows=0 if header is None else 1,
        separator=sep,
        schema=schema,
        quote_char='"' if quoted else None,
        raise_if_empty=False,  # zero data rows: named by the callers' checks, on every polars
    ).select(keep)
    return lf.with_columns(conversions) if conversions else lf


def _unreadable(
    path: Path,
    fields: Sequence[Field],
    separator: str,
    header: Sequence[str] | None,
    what: str,
    exc: Exception,
) -> NoReturn:
    """Name the malformed line (:func:`diagnose`), else report what polars said."""
    diagnose(path, fields, separator=separator, header=header is not None)
    first = str(exc).strip().splitlines()[0]
    raise DataFormatError(path, f"could not be read as a {what}: {first}") from None


def _check_rows(
    path: Path,
    df: pl.DataFrame,
    fields: Sequence[Field],
    separator: str,
    header: Sequence[str] | None,
) -> None:
    """Empty values in required columns, unknown categories, numbers out of range → the line."""
    required = [f.name for f in fields if f.kind in ("int", "float", "str", "iso_ts")]
    has_nulls = any(df.get_column(c).null_count() for c in required)
    bad_choice = any(
        not df.get_column(f.name).is_in(list(f.choices)).all() for f in fields if f.choices
    )
    bad_number = any(_out_of_range(df.get_column(f.name), f) for f in fields if f.name in df)
    if has_nulls or bad_choice or bad_number:
        _invalid(path, fields, separator, header)


def _check_line_count(
    path: Path, rows: int, fields: Sequence[Field], separator: str, header: Sequence[str] | None
) -> None:
    """Every line must have exactly ``len(fields)`` fields: a streamed count of separators catches
    short lines that polars would silently fill with nulls."""
    if _separator_count(path, separator) != (len(fields) - 1) * (rows + (header is not None)):
        _invalid(path, fields, separator, header)


def _invalid(
    path: Path, fields: Sequence[Field], separator: str, header: Sequence[str] | None
) -> NoReturn:
    diagnose(path, fields, separator=separator, header=header is not None)
    raise DataFormatError(path, "empty or invalid values in required columns")


def _out_of_range(column: pl.Series, field: Field) -> bool:
    """A float that is NaN or infinite, or a number beyond ``field.max_abs``."""
    checks = []
    if field.kind == "float":
        checks.append(~column.is_finite())
    if field.kind in ("int", "float") and field.max_abs is not None:
        checks.append(column.abs() > field.max_abs)
    return any(bool(c.fill_null(False).any()) for c in checks)


def _separator_count(path: Path, separator: str, chunk: int = 1 << 24) -> int:
    """Occurrences of ``separator`` in the file, streamed in 16 MiB chunks (C-speed ``bytes.count``)."""
    sep = separator.encode()
    total, tail = 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            data = tail + block
            keep = len(sep) - 1
            body, tail = (data[:-keep], data[-keep:]) if keep else (data, b"")
            total += body.count(sep)
    return total + tail.count(sep)


def _check_header(path: Path, expected: Sequence[str], separator: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
    found = [c.strip().strip('"') for c in first.split(separator)]
    if found != list(expected):
        hint = "" if separator in first else f" (no '{separator}' separator found on the line)"
        raise DataFormatError(
            path,
            f"expected the header '{separator.join(expected)}', found '{first[:200]}'{hint}",
            line=1,
        )


def diagnose(path: Path, fields: Sequence[Field], *, separator: str, header: bool) -> None:
    """Scan ``path`` line by line and raise a DataFormatError at the first malformed line.

    Returns normally only if every line satisfies the rules (the caller then reports the polars error).
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if header and lineno == 1:
                continue
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                parts = (
                    next(csv.reader([line], delimiter=separator))
                    if len(separator) == 1
                    else line.split(separator)
                )
            except csv.Error as exc:  # e.g. a field over the csv module's size limit
                raise DataFormatError(path, f"malformed line ({exc})", line=lineno) from None
            if len(parts) != len(fields):
                hint = "" if separator in line else f"; is the separator '{separator}'?"
                raise DataFormatError(
                    path,
                    f"expected {len(fields)} '{separator}'-separated fields, found {len(parts)}{hint}",
                    line=lineno,
                )
            for field, value in zip(fields, parts, strict=True):
                problem = _check_value(field, value.strip().strip('"'))
                if problem:
                    raise DataFormatError(path, problem, line=lineno, column=field.name)


def _check_value(field: Field, value: str) -> str | None:
    if field.kind in ("any", "skip"):
        return None
    if value == "":
        return "empty value"
    if field.kind == "int":
        if not _INT.match(value):
            return f"expected an integer, found '{value[:50]}'"
        if abs(int(value)) >= 2**63:
            return f"integer '{value[:50]}' does not fit in 64 bits"
    if field.kind == "float":
        try:
            number = float(value)
        except ValueError:
            return f"expected a number, found '{value[:50]}'"
        if not math.isfinite(number):
            return f"expected a finite number, found '{value[:50]}'"
    in_range = field.max_abs is None or abs(float(value)) <= field.max_abs
    if field.kind in ("int", "float") and not in_range:
        return f"value {value[:50]} is out of range (at most {field.max_abs:g} in magnitude)"
    if field.kind == "iso_ts":
        try:
            if not value.endswith("Z"):
                raise ValueError
            datetime.fromisoformat(value[:-1])
        except ValueError:
            return f"expected a timestamp like 2014-04-07T10:51:09.277Z, found '{value[:50]}'"
    if field.choices is not None and value not in field.choices:
        return f"unknown value '{value[:50]}' (expected one of {', '.join(field.choices)})"
    return None


def find_file(path: Path, names: Sequence[str], what: str) -> Path:
    """Resolve ``path`` to a file: itself if it is a file, else the first of ``names`` inside it."""
    path = Path(path)
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise DataFormatError(
            path, f"no {what} found in this directory (looked for {', '.join(names)})"
        )
    return check_file(path, what)
