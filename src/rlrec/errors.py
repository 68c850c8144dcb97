"""User-facing errors.

Everything a user can get wrong (a missing file, a malformed line, an unknown config key, an output
that already exists) raises a subclass of :class:`RlrecError`. The CLI prints its message on one line
and exits with status 2, without a traceback; any other exception is a bug in rlrec.
"""

from __future__ import annotations

from pathlib import Path

# Who is calling: the command line (rlrec.cli.main sets "cli" while it runs) or Python code.
CALLER = "python"


def option_hint(name: str, value: str = "True") -> str:
    """How this caller sets the option ``name``: ``--name`` on the command line, ``name=True``
    from Python (a message that tells a notebook user to "pass --overwrite" does not help)."""
    return f"--{name.replace('_', '-')}" if CALLER == "cli" else f"{name}={value}"


class RlrecError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class ConfigError(RlrecError):
    """A configuration file or override is invalid."""


class OutputExistsError(RlrecError):
    """The output path exists and overwriting was not requested."""

    def __init__(self, path: Path, flag: str | None = None) -> None:
        flag = flag or option_hint("overwrite")
        hint = f"pass {flag}" if flag.startswith("-") else f"call with {flag}"
        super().__init__(f"{path}: output already exists; {hint} to replace it")


class DataFormatError(RlrecError):
    """A data file is missing, empty or malformed; names the file and, where known, line and column."""

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        if column is not None:
            message = f"column '{column}': {message}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
        self.column = column
