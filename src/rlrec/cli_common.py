"""Pieces shared by the root CLI (:mod:`rlrec.cli`) and its ``sim`` sub-app (:mod:`rlrec.sim.cli`).

The consoles (``out`` for results, ``err`` for progress and errors), the app factory, the option
types every command takes (``--config``, ``--set``, ``--overwrite``, ``--raw``), the config keys that
commands build from their arguments, and the stage spinner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.text import Text

from rlrec.errors import RlrecError

# markup=False: paths, ids and values are printed as they are, never read as rich markup (a path
# like /runs/[x]/ would otherwise vanish or crash); styles are given as rich Text.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config key: --set a.b=value (YAML value).",
        show_default=False,
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace an existing output (only once the new one is complete)."
    ),
]
RawOpt = Annotated[
    Path | None,
    typer.Option("--raw", "-r", help="Raw file or directory (source.path).", show_default=False),
]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")]
IndexOpt = Annotated[
    str,
    typer.Option(
        "--index",
        help="Top-k: auto (a FAISS index from --index-threshold items, if installed), exact or faiss.",
    ),
]
IndexThresholdOpt = Annotated[
    int,
    typer.Option("--index-threshold", help="Catalogue size from which --index auto uses FAISS."),
]


def check_index(value: str) -> Literal["auto", "exact", "faiss"]:
    """The ``--index`` value, checked."""
    if value not in ("auto", "exact", "faiss"):
        raise RlrecError(f"--index must be auto, exact or faiss, got {value!r}")
    return value  # type: ignore[return-value]


def new_app(help_text: str) -> typer.Typer:
    """A typer app as every rlrec (sub-)command group is made: errors propagate (the root prints a
    :class:`rlrec.errors.RlrecError` on one line), no shell-completion options."""
    return typer.Typer(
        help=help_text, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )


def given(**values: Path | None) -> dict[str, Any]:
    """Config keys from optional path arguments: the ones given, as strings."""
    return {key: str(value) for key, value in values.items() if value is not None}


def source_section(source: str, raw: Path | None) -> dict[str, Any]:
    """The ``{"source": {"kind": ..., "path": ...}}`` part of a prepare config from the arguments."""
    section: dict[str, Any] = {"kind": source}
    if raw is not None:
        section["path"] = str(raw)
    return {"source": section}


@contextmanager
def stages(title: str) -> Iterator[Any]:
    """A spinner naming the current stage; each finished stage is printed with its duration."""
    state: dict[str, Any] = {"name": None, "t": time.perf_counter()}

    with err.status(Text(title)) as status:

        def advance(name: str) -> None:
            now = time.perf_counter()
            if state["name"] is not None:
                err.print(
                    Text.assemble(
                        "  ", ("✓", "green"), f" {state['name']} ({now - state['t']:.1f} s)"
                    )
                )
            state.update(name=name, t=now)
            status.update(Text(f"{name} …"))

        yield advance
        advance("")
