"""Every shell and Python block of the README runs as written, top to bottom, as a newcomer would.

The blocks run in order in a copy of the repository (tracked and untracked-but-not-ignored files)
with ``../shared`` beside it and ``.venv`` active, so a later block sees what an earlier one made
(``make demo`` → ``rlrec serve runs/demo/...``). Where a block would take long or needs the network,
an HTML comment right above it declares literal replacements::

    <!-- readme-test: {replace: {"--set seeds=[0,1,2]": "--set seeds=[0,1]"}, why: "..."} -->

Each replaced text must occur in its block (a stale declaration fails), and ``why`` says why;
``expect: [...]`` lists texts the block's output must contain (a command that exits 0 without doing
its job fails too).
``text`` blocks are usage synopses (placeholders in capitals) and are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
RUN_LANGS = ("bash", "python")
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!-- readme-test: (.*) -->$")
TIMEOUT_S = 600


@dataclass
class Block:
    """One fenced block of the README: its language, code, first line and test declaration."""

    lang: str
    code: str
    line: int
    replace: dict[str, str] = field(default_factory=dict)
    why: str = ""
    expect: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"README.md:{self.line}:{self.lang}"

    def as_run(self) -> str:
        """The code with the declared replacements applied (each must occur in the code)."""
        code = self.code
        for old, new in self.replace.items():
            assert old in code, f"{self.name}: declared replacement {old!r} is not in the block"
            code = code.replace(old, new)
        return code


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` with the ``readme-test`` comment on the line above, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        block = Block(m.group(1), "\n".join(lines[start + 1 : i]) + "\n", start + 1)
        above = lines[start - 1] if start else ""
        if d := DIRECTIVE.match(above):
            spec = yaml.safe_load(d.group(1))
            assert set(spec) <= {"replace", "why", "expect"}, f"{block.name}: unknown keys"
            block.replace, block.why = spec.get("replace", {}), spec.get("why", "")
            block.expect = spec.get("expect", [])
            assert block.why or not block.replace, f"{block.name}: say why it is replaced"
        blocks.append(block)
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())
RUNNABLE = [b for b in BLOCKS if b.lang in RUN_LANGS]


def test_every_block_is_run_or_a_synopsis() -> None:
    """A block is run (bash, python), a usage synopsis (text) or a diagram (no language)."""
    langs = {b.name: b.lang for b in BLOCKS if b.lang not in (*RUN_LANGS, "text", "")}
    assert not langs, f"blocks in a language the README test does not run: {langs}"
    assert len(RUNNABLE) >= 10  # the parser found the README's blocks
    for b in BLOCKS:
        if b.lang == "text":  # a synopsis, not commands: it must show its placeholders
            assert re.search(r"\b[A-Z]{3,}\b|\[", b.code), f"{b.name}: a text block runs nothing"
        if b.lang not in RUN_LANGS:
            assert not b.replace, f"{b.name}: a declaration on a block that is not run"


def test_parser_reads_declarations() -> None:
    text = (
        'intro\n<!-- readme-test: {replace: {"a 1": "a 2"}, why: "short", expect: [a 2]} -->\n'
        "```bash\necho a 1\n```\n\n```text\nrlrec X DIR\n```\n"
    )
    first, second = readme_blocks(text)
    assert (first.lang, first.line, first.as_run(), first.why) == ("bash", 3, "echo a 2\n", "short")
    assert first.expect == ["a 2"]
    assert (second.lang, second.replace) == ("text", {})
    stale = Block("bash", "echo b\n", 1, {"a 1": "a 2"}, "x")
    with pytest.raises(AssertionError, match="is not in the block"):
        stale.as_run()


def _copy_checkout(dst: Path) -> None:
    """The files a clean clone has (tracked, and untracked ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)  # keeps mtimes: make sees .venv as up to date


def _venv_view(real: Path, dst: Path) -> None:
    """A ``.venv`` for the copy that is this test's virtual environment (bin/ and lib/ linked),
    with an install stamp newer than the copied pyproject.toml, so ``make`` installs nothing."""
    dst.mkdir()
    for name in ("bin", "lib", "include", "lib64"):
        if (real / name).exists():
            (dst / name).symlink_to(real / name)
    shutil.copy2(real / "pyvenv.cfg", dst / "pyvenv.cfg")
    (dst / ".rlrec-installed").touch()


def _stand_in_recbole_wheel(path: Path) -> None:
    """A zip laid out like the ``recbole`` 1.2.1 wheel's data folder, with the same three files."""
    with zipfile.ZipFile(path, "w") as zf:
        for suffix in ("inter", "item", "user"):
            zf.write(
                ML100K / f"ml-100k.{suffix}", f"recbole/dataset_example/ml-100k/ml-100k.{suffix}"
            )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the README test runs from the project's virtual environment (make test)")
    if not (ML100K / "ml-100k.inter").is_file() or shutil.which("git") is None:
        pytest.skip("needs ../shared/datasets/ml-100k beside the checkout and git")
    base = tmp_path_factory.mktemp("readme")
    repo = base / "rlrec"
    _copy_checkout(repo)
    (base / "shared").symlink_to(ROOT.parent / "shared")
    _venv_view(Path(sys.prefix), repo / ".venv")
    wheel = base / "recbole-1.2.1-py3-none-any.whl"
    _stand_in_recbole_wheel(wheel)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RLREC_", "PYTEST_", "VIRTUAL_"))
    }
    env.update(
        PATH=f"{repo / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(repo / ".venv"),
        README_TEST_RECBOLE_WHEEL=str(wheel),
        MPLBACKEND="Agg",
    )
    return repo, env


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(block: Block, workspace: tuple[Path, dict[str, str]]) -> None:
    repo, env = workspace
    argv = (
        ["bash", "-euo", "pipefail", "-c", block.as_run()]
        if block.lang == "bash"
        else [str(repo / ".venv" / "bin" / "python"), "-c", block.as_run()]
    )
    try:
        done = subprocess.run(
            argv, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name} ran past {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")
    output = f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{block.name} failed (exit {done.returncode}):\n{output}"
    missing = [text for text in block.expect if text not in done.stdout + done.stderr]
    assert not missing, f"{block.name}: output lacks {missing}:\n{output}"
