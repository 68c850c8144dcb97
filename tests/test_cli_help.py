"""Every command and option of the ``rlrec`` CLI and of the ``reproductions/`` runners says what it
is for in ``--help``, and ``rlrec --version`` prints the installed version."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import rlrec
from rlrec import __version__
from rlrec.cli import app
from tests.test_reproductions import load_runner


def _commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, command)`` of a click command and all its sub-commands, depth first."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def _missing_help(root: Any) -> list[str]:
    """``rlrec sim train --agent``-style names of the commands, options and arguments without help
    text (typer may vendor its own click, so this reads attributes instead of testing classes)."""
    missing = []
    for path, command in _commands(root, "rlrec"):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if not getattr(param, "help", None):
                missing.append(f"{path} {'/'.join(param.opts)}")
    return missing


def test_every_command_and_option_has_help_text() -> None:
    root = typer.main.get_command(app)
    names = [path for path, _ in _commands(root, "rlrec")]
    assert {"rlrec data prepare", "rlrec sim train", "rlrec serve", "rlrec export"} <= set(names)
    assert _missing_help(root) == []


def test_the_walk_finds_an_option_without_help() -> None:
    """The check above can fail: an app with one bare option is reported by name."""
    bare = typer.Typer(help="A group.")

    @bare.command("go")
    def go(speed: int = typer.Option(1, "--speed")) -> None:
        """Go."""

    @bare.command("stop")
    def stop() -> None:
        """Stop."""

    assert _missing_help(typer.main.get_command(bare)) == ["rlrec go --speed"]


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rlrec {__version__}"
    assert __version__[0].isdigit()


def test_version_from_a_source_tree_is_pyprojects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never installed (``PYTHONPATH=src``): the version is read from pyproject.toml."""

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(rlrec, "version", not_installed)
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)
    assert declared is not None
    assert rlrec._version() == declared.group(1) == __version__


@pytest.mark.parametrize("script", ["sa2c_tables", "ccql_tables"])
def test_reproduction_runner_options_have_help_text(script: str) -> None:
    parser = load_runner(script).build_parser()
    bare = [
        "/".join(action.option_strings or [action.dest])
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert len(parser._actions) > 5
    assert bare == []
