"""The bad-input corpus: every user mistake through the real CLI gives one clear error and loses
nothing.

Each case builds its inputs (data files, configs, damaged copies of real run directories and
checkpoints) in its own directory, then runs ``rlrec ...`` through :func:`rlrec.cli.main` with that
directory as the working directory. Every case must

* exit non-zero, print no traceback, and print exactly one ``error:`` line (the last line) that
  contains the expected fragments (the offending file, field or value);
* leave the file system exactly as it was: no new, changed or removed file or directory in the
  case directory or in the shared fixtures (checked by content hash).

A few mistakes are made through the Python API instead (:func:`test_python_api_mistakes`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file, save_file

from rlrec.config import config_to_yaml

CORPUS = Path(__file__).resolve().parent / "corpus"


# ------------------------------------------------------------------------------ shared fixtures


@dataclass
class World:
    """Real rlrec outputs the cases damage copies of (never the originals)."""

    root: Path
    raw: Path  # rlrec data synth output
    data: Path  # prepared dataset
    run: Path  # finished offline run
    lists: Path  # prepared list dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from online_helpers import tiny_lists

    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.data.synthetic import SynthConfig, write_synthetic
    from rlrec.train.trainer import Trainer

    root = tmp_path_factory.mktemp("world")
    write_synthetic(SynthConfig(n_sessions=300, n_items=60, n_topics=4, seed=3), root / "raw")
    prepare(PrepareConfig(source=SyntheticSource(path=root / "raw")), root / "data")
    Trainer(tiny_train_config(root / "data", root / "run")).fit()
    lists = tiny_lists(root)
    return World(root, root / "raw", root / "data", root / "run", lists)


@dataclass
class Ctx:
    """One case's directory and helpers to build its inputs there."""

    dir: Path
    w: World
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    enospc: bool = False  # writing Parquet fails with ENOSPC (a full disk)
    erofs: bool = False  # mkdir below the case directory fails with EROFS

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def copy(self, src: Path, name: str) -> Path:
        return Path(shutil.copytree(src, self.dir / name))

    def train_config(self, name: str = "train.yaml", **overrides: object) -> Path:
        cfg = tiny_train_config(self.w.data, self.dir / "new_run", **overrides)
        return self.file(name, config_to_yaml(cfg))

    def run_copy(self) -> Path:
        """A copy of the finished run whose config names the copy as its ``out``."""
        run = self.copy(self.w.run, "run")
        text = (run / "config.yaml").read_text().replace(str(self.w.run), str(run))
        (run / "config.yaml").write_text(text)
        return run


@dataclass
class Case:
    args: list[str | Path]
    fragments: tuple[str, ...]


CASES: dict[str, Callable[[Ctx], Case]] = {}


def case(name: str) -> Callable[[Callable[[Ctx], Case]], Callable[[Ctx], Case]]:
    def register(fn: Callable[[Ctx], Case]) -> Callable[[Ctx], Case]:
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def C(*args: str | Path, expect: str | tuple[str, ...]) -> Case:
    return Case(list(args), (expect,) if isinstance(expect, str) else expect)


GENERIC_HEADER = "session_id,item_id,timestamp"
BOMB = (CORPUS / "anchor_bomb.yaml").read_text()
NOT_UTF8 = b"seed: 1\nname: caf\xe9\n"


# ------------------------------------------------------------------------------ data synth


@case("synth: config value out of range")
def _(c: Ctx) -> Case:
    return C("data", "synth", "--out", "raw", "--set", "n_sessions=0", expect="'n_sessions'")


@case("synth: unknown config key")
def _(c: Ctx) -> Case:
    return C(
        "data", "synth", "--out", "raw", "--set", "bogus=1", expect="unknown config key 'bogus'"
    )


@case("synth: override is not YAML")
def _(c: Ctx) -> Case:
    return C(
        "data", "synth", "--out", "raw", "--set", "n_sessions=[", expect="override 'n_sessions=['"
    )


@case("synth: override without =")
def _(c: Ctx) -> Case:
    return C("data", "synth", "--out", "raw", "--set", "n_sessions", expect="expected KEY=VALUE")


@case("synth: config file missing")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "synth",
        "--out",
        "raw",
        "--config",
        "nope.yaml",
        expect="nope.yaml: config file not found",
    )


@case("synth: config file not UTF-8")
def _(c: Ctx) -> Case:
    c.file("bad.yaml", NOT_UTF8)
    return C(
        "data", "synth", "--out", "raw", "--config", "bad.yaml", expect=("bad.yaml", "not UTF-8")
    )


@case("synth: config file is a YAML anchor bomb")
def _(c: Ctx) -> Case:
    c.file("bomb.yaml", BOMB)
    return C(
        "data", "synth", "--out", "raw", "--config", "bomb.yaml", expect=("bomb.yaml", "aliases")
    )


@case("synth: config file is malformed YAML")
def _(c: Ctx) -> Case:
    c.file("bad.yaml", "seed: [1, 2\n")
    return C(
        "data",
        "synth",
        "--out",
        "raw",
        "--config",
        "bad.yaml",
        expect=("bad.yaml", "not valid YAML", "line"),
    )


@case("synth: config top level is a list")
def _(c: Ctx) -> Case:
    c.file("list.yaml", "- 1\n- 2\n")
    return C("data", "synth", "--out", "raw", "--config", "list.yaml", expect="expected a mapping")


@case("synth: config file is a directory")
def _(c: Ctx) -> Case:
    (c.dir / "cfgdir").mkdir()
    return C(
        "data",
        "synth",
        "--out",
        "raw",
        "--config",
        "cfgdir",
        expect="cfgdir: config file not found",
    )


@case("synth: --out is the working directory")
def _(c: Ctx) -> Case:
    return C("data", "synth", "--out", ".", "--overwrite", expect="is the working directory")


@case("synth: --out is a parent of the working directory")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "synth",
        "--out",
        "..",
        "--overwrite",
        expect="is the working directory or one of its parents",
    )


@case("synth: --out is the filesystem root")
def _(c: Ctx) -> Case:
    return C("data", "synth", "--out", "/", "--overwrite", expect="is the filesystem root")


@case("synth: --out is the home directory")
def _(c: Ctx) -> Case:
    return C("data", "synth", "--out", Path.home(), "--overwrite", expect="home directory")


@case("synth: --out is an existing file")
def _(c: Ctx) -> Case:
    c.file("notes.txt", "mine")
    return C("data", "synth", "--out", "notes.txt", "--overwrite", expect="notes.txt: is a file")


@case("synth: --out is under a file")
def _(c: Ctx) -> Case:
    c.file("notes.txt", "mine")
    return C("data", "synth", "--out", "notes.txt/raw", expect="notes.txt is a file")


@case("synth: --out is a symbolic link")
def _(c: Ctx) -> Case:
    (c.dir / "real").mkdir()
    (c.dir / "link").symlink_to(c.dir / "real")
    return C("data", "synth", "--out", "link", "--overwrite", expect="link: is a symbolic link")


@case("synth: --overwrite on a directory rlrec did not make")
def _(c: Ctx) -> Case:
    c.file("mine/important.txt", "keep")
    return C(
        "data",
        "synth",
        "--out",
        "mine",
        "--overwrite",
        expect=("mine: not a directory rlrec made",),
    )


@case("synth: --overwrite on an rlrec output of another kind")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    return C(
        "data",
        "synth",
        "--out",
        data,
        "--overwrite",
        expect="is an rlrec dataset directory, not a synthetic_raw",
    )


@case("synth: existing output without --overwrite")
def _(c: Ctx) -> Case:
    raw = c.copy(c.w.raw, "raw")
    return C("data", "synth", "--out", raw, expect="output already exists; pass --overwrite")


@case("synth: the disk is full")
def _(c: Ctx) -> Case:
    c.enospc = True
    return C(
        "data",
        "synth",
        "--out",
        "new/deeper/raw",
        expect=("No space left on device", "nothing was replaced"),
    )


@case("synth: the output file system is read-only")
def _(c: Ctx) -> Case:
    c.erofs = True
    return C(
        "data",
        "synth",
        "--out",
        "sub/raw",
        expect=("Read-only file system", "choose another output path"),
    )


# ------------------------------------------------------------------------------ data prepare


@case("prepare: generic CSV with a NaN timestamp")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n1,2,3\n1,3,nan\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect="log.csv:3: column 'timestamp': expected a finite number",
    )


@case("prepare: generic CSV with an overflowing timestamp")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n1,2,3\n1,3,1e300\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect=("log.csv:3", "out of range"),
    )


@case("prepare: generic CSV with an infinite timestamp")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n1,2,inf\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect="log.csv:2: column 'timestamp'",
    )


@case("prepare: RecBole timestamp:float NaN")
def _(c: Ctx) -> Case:
    c.file(
        "ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t5\tnan\n"
    )
    return C(
        "data",
        "prepare",
        "recbole",
        "--raw",
        "ml.inter",
        "--out",
        "ds",
        expect="ml.inter:2: column 'timestamp'",
    )


@case("prepare: RecBole timestamp:float overflow")
def _(c: Ctx) -> Case:
    c.file(
        "ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t5\t9e99\n"
    )
    return C(
        "data",
        "prepare",
        "recbole",
        "--raw",
        "ml.inter",
        "--out",
        "ds",
        expect=("ml.inter:2", "out of range"),
    )


@case("prepare: RecBole header without types")
def _(c: Ctx) -> Case:
    c.file("ml.inter", "user_id\titem_id\n1\t2\n")
    return C(
        "data",
        "prepare",
        "recbole",
        "--raw",
        "ml.inter",
        "--out",
        "ds",
        expect=("ml.inter:1", "name:type"),
    )


@case("prepare: a 10 MB single line")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n" + "x" * 10_000_000 + "\n")
    return C("data", "prepare", "generic", "--raw", "log.csv", "--out", "ds", expect="log.csv:2")


@case("prepare: a header without data rows")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect=("log.csv", "no data rows"),
    )


@case("prepare: a log too small to split")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n1,2,3\n1,3,4\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect="would have no sessions",
    )


@case("prepare: a CSV that is not UTF-8")
def _(c: Ctx) -> Case:
    c.file("log.csv", f"{GENERIC_HEADER}\n".encode() + b"1,\xff\xfe,3\n")
    return C("data", "prepare", "generic", "--raw", "log.csv", "--out", "ds", expect="log.csv")


@case("prepare: header lacks a mapped column")
def _(c: Ctx) -> Case:
    c.file("log.csv", "visitor,item_id,timestamp\n1,2,3\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        expect=("log.csv:1", "session_id"),
    )


@case("prepare: raw file missing")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "nope.csv",
        "--out",
        "ds",
        expect="nope.csv: log file not found",
    )


@case("prepare: raw directory without the expected files")
def _(c: Ctx) -> Case:
    (c.dir / "yc").mkdir()
    return C(
        "data",
        "prepare",
        "yoochoose",
        "--raw",
        "yc",
        "--out",
        "ds",
        expect="yoochoose-clicks.dat: YooChoose clicks file not found",
    )


@case("prepare: unknown source")
def _(c: Ctx) -> Case:
    return C("data", "prepare", "bogus", "--raw", "x", "--out", "ds", expect="Input tag 'bogus'")


@case("prepare: split ratios that do not sum to 1")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        "ds",
        "--set",
        "split.ratios=[0.5,0.1,0.1]",
        expect="'split.ratios'",
    )


@case("prepare: split file without a file")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        "ds",
        "--set",
        "split.kind=file",
        expect="split.file is required",
    )


@case("prepare: filters leave nothing")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        "ds",
        "--set",
        "filters.min_session_events=1000",
        expect="no events left after filtering",
    )


@case("prepare: --overwrite on the directory that holds the input")
def _(c: Ctx) -> Case:
    raw = c.copy(c.w.raw, "parent/raw")
    c.file("parent/keep/important.txt", "keep")
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        raw,
        "--out",
        "parent",
        "--overwrite",
        expect="parent: the output would contain the input",
    )


@case("prepare: --out equals --raw")
def _(c: Ctx) -> Case:
    raw = c.copy(c.w.raw, "raw")
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        raw,
        "--out",
        raw,
        "--overwrite",
        expect="the output would contain the input",
    )


@case("prepare: --overwrite on a run directory")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        run,
        "--overwrite",
        expect="is an rlrec run directory, not a dataset",
    )


@case("prepare: --overwrite on a directory rlrec did not make")
def _(c: Ctx) -> Case:
    c.file("mine/important.txt", "keep")
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        "mine",
        "--overwrite",
        expect="mine: not a directory rlrec made",
    )


@case("prepare: another process is writing the output")
def _(c: Ctx) -> Case:
    from rlrec.outputs import OutputLock

    lock = OutputLock(c.dir / "ds").acquire()
    c.cleanup.append(lock.release)
    return C(
        "data", "prepare", "synthetic", "--raw", c.w.raw, "--out", "ds", expect=f"PID {os.getpid()}"
    )


@case("prepare: --memory-limit that is not a size")
def _(c: Ctx) -> Case:
    return C(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        c.w.raw,
        "--out",
        "ds",
        "--memory-limit",
        "6 parsecs",
        expect="--memory-limit: expected a size like 6GB or 512MiB, got '6 parsecs'",
    )


@case("prepare: --memory-limit with a source read in memory")
def _(c: Ctx) -> Case:
    c.file("log.csv", "session_id,item_id,timestamp\n1,2,3\n1,3,4\n")
    return C(
        "data",
        "prepare",
        "generic",
        "--raw",
        "log.csv",
        "--out",
        "ds",
        "--memory-limit",
        "1GB",
        expect="--memory-limit: the generic source is read into memory",
    )


# ------------------------------------------------------------------------------ data stats


@case("stats: not a dataset")
def _(c: Ctx) -> Case:
    (c.dir / "empty").mkdir()
    return C("data", "stats", "empty", expect="manifest.json: missing manifest")


@case("stats: dataset directory missing")
def _(c: Ctx) -> Case:
    return C("data", "stats", "nope", expect="nope: dataset directory not found")


@case("stats: manifest is not JSON")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    (data / "manifest.json").write_text("{ not json")
    return C("data", "stats", data, expect="manifest.json: manifest is not valid JSON")


@case("stats: manifest is not UTF-8")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    (data / "manifest.json").write_bytes(b"\xff\xfe{}")
    return C("data", "stats", data, expect="manifest.json: manifest is not UTF-8")


@case("stats: manifest lists a path outside the dataset")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"]["../escape.parquet"] = "0" * 64
    (data / "manifest.json").write_text(json.dumps(manifest))
    return C("data", "stats", data, expect="'files' must map file names of this directory")


@case("stats: a data file was modified")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    with (data / "train.parquet").open("ab") as fh:
        fh.write(b"x")
    return C("data", "stats", data, expect="train.parquet: file content does not match")


@case("stats: a data file is missing")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    (data / "test.parquet").unlink()
    return C("data", "stats", data, expect="test.parquet: file listed in the manifest is missing")


# ------------------------------------------------------------------------------ train


@case("train: select_metric is not a metric")
def _(c: Ctx) -> Case:
    cfg = c.train_config(train={"select_metric": "ndcg@10", "batch_size": 32, "max_steps": 5})
    return C("train", "--config", cfg, expect="train.select_metric 'ndcg@10' is not a metric")


@case("train: batch larger than the data, over a finished run")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    cfg = tiny_train_config(c.w.data, run, train={"batch_size": 10**6, "max_steps": 5})
    path = c.file("big.yaml", config_to_yaml(cfg))
    return C("train", "--config", path, "--overwrite", expect="train.batch_size 1000000 exceeds")


@case("train: dataset missing")
def _(c: Ctx) -> Case:
    cfg = tiny_train_config(c.dir / "nope", c.dir / "new_run")
    path = c.file("t.yaml", config_to_yaml(cfg))
    return C("train", "--config", path, expect="nope: dataset directory not found")


@case("train: config without data")
def _(c: Ctx) -> Case:
    c.file("t.yaml", "out: new_run\n")
    return C("train", "--config", "t.yaml", expect="'data'")


@case("train: unknown encoder")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C("train", "--config", cfg, "--set", "encoder.kind=lstm", expect="encoder")


@case("train: unknown objective option")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C(
        "train",
        "--config",
        cfg,
        "--set",
        "objective.bogus=1",
        expect="unknown config key 'objective.snqn.bogus'",
    )


@case("train: existing run without --resume or --overwrite")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C("train", "--config", path, expect="run directory already exists; pass --resume")


@case("train: --resume of a run that does not exist")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C("train", "--config", cfg, "--resume", expect="nothing to resume")


@case("train: --resume with a different config")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C(
        "train",
        "--config",
        path,
        "--resume",
        "--set",
        "seed=7",
        expect="the run was started with a different config",
    )


@case("train: --resume and --overwrite together")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C(
        "train",
        "--config",
        cfg,
        "--resume",
        "--overwrite",
        expect="at most one of --resume and --overwrite",
    )


@case("train: --overwrite on a directory rlrec did not make")
def _(c: Ctx) -> Case:
    c.file("new_run/thesis.tex", "keep")
    cfg = c.train_config()
    return C("train", "--config", cfg, "--overwrite", expect="new_run: not a directory rlrec made")


@case("train: --overwrite on a prepared dataset")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    path = c.file("t.yaml", config_to_yaml(tiny_train_config(c.w.data, data)))
    return C(
        "train", "--config", path, "--overwrite", expect="is an rlrec dataset directory, not a run"
    )


@case("train: out is the dataset")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    path = c.file("t.yaml", config_to_yaml(tiny_train_config(data, data)))
    return C("train", "--config", path, "--overwrite", expect="the output would contain the input")


@case("train: config with non-UTF-8 bytes")
def _(c: Ctx) -> Case:
    c.file("t.yaml", NOT_UTF8)
    return C("train", "--config", "t.yaml", expect=("t.yaml", "not UTF-8"))


@case("train: --resume with a corrupted latest.json")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "checkpoints" / "latest.json").write_text("{bad")
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C(
        "train", "--config", path, "--resume", expect="latest.json: checkpoint pointer is corrupted"
    )


@case("train: --resume with latest.json pointing outside the run")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "checkpoints" / "latest.json").write_text('{"checkpoint": "../../elsewhere"}')
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C(
        "train", "--config", path, "--resume", expect="'checkpoint' must name a step_<N> directory"
    )


@case("train: --resume from a checkpoint with the wrong dtype")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["checkpoint"]
    _retype(run / "checkpoints" / latest / "model.safetensors", torch.float64)
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C(
        "train", "--config", path, "--resume", expect="checkpoint tensors have the wrong dtype"
    )


@case("train: another process is writing the run")
def _(c: Ctx) -> Case:
    from rlrec.outputs import OutputLock

    run = c.run_copy()
    lock = OutputLock(run).acquire()
    c.cleanup.append(lock.release)
    path = c.file("t.yaml", (run / "config.yaml").read_text())
    return C("train", "--config", path, "--resume", expect=f"PID {os.getpid()}")


# ------------------------------------------------------------------------------ evaluate


@case("evaluate: not a run directory")
def _(c: Ctx) -> Case:
    (c.dir / "empty").mkdir()
    return C("evaluate", "empty", expect="empty: not an rlrec run directory")


@case("evaluate: run.json without a field")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    meta = json.loads((run / "run.json").read_text())
    del meta["state_size"]
    (run / "run.json").write_text(json.dumps(meta))
    return C("evaluate", run, expect="run.json: field 'state_size' must be a positive integer")


@case("evaluate: run.json is not JSON")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "run.json").write_text("not json")
    return C("evaluate", run, expect="run.json: run metadata is not valid JSON")


@case("evaluate: run config is an anchor bomb")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "config.yaml").write_text(BOMB)
    return C("evaluate", run, expect=("config.yaml", "aliases"))


@case("evaluate: --checkpoint latest with a corrupted latest.json")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "checkpoints" / "latest.json").write_text('{"checkpoint": 5}')
    return C(
        "evaluate",
        run,
        "--checkpoint",
        "latest",
        expect="'checkpoint' must name a step_<N> directory",
    )


@case("evaluate: --checkpoint that does not exist")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    return C("evaluate", run, "--checkpoint", "nowhere", expect="nowhere: checkpoint not found")


@case("evaluate: checkpoint tensors of the wrong dtype")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    _retype(run / "best" / "model.safetensors", torch.float16)
    return C("evaluate", run, expect=("best", "wrong dtype", "torch.float16"))


@case("evaluate: truncated checkpoint")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    weights = run / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return C("evaluate", run, expect=("best", "corrupted checkpoint"))


@case("evaluate: checkpoint without weights")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "best" / "model.safetensors").unlink()
    return C("evaluate", run, expect="incomplete checkpoint: model.safetensors missing")


@case("evaluate: unknown split")
def _(c: Ctx) -> Case:
    return C("evaluate", c.w.run, "--split", "train", expect="--split must be val or test")


@case("evaluate: --out exists")
def _(c: Ctx) -> Case:
    c.file("m.json", "{}")
    return C(
        "evaluate",
        c.w.run,
        "--out",
        "m.json",
        expect="m.json: output already exists; pass --overwrite",
    )


@case("evaluate: --out is a directory")
def _(c: Ctx) -> Case:
    (c.dir / "out").mkdir()
    return C("evaluate", c.w.run, "--out", "out", expect="out: is a directory")


@case("evaluate: --out inside the run directory's files")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    return C(
        "evaluate",
        run,
        "--out",
        run / "run.json",
        "--overwrite",
        expect="replacing it would change the input",
    )


@case("evaluate: --data is another dataset")
def _(c: Ctx) -> Case:
    other = c.dir / "other"
    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare

    prepare(PrepareConfig(source=SyntheticSource(path=c.w.raw), seed=5), other)
    return C("evaluate", c.w.run, "--data", other, expect="not the dataset this run was trained on")


# ------------------------------------------------------------------------------ recommend


@case("recommend: --session that is not an integer")
def _(c: Ctx) -> Case:
    return C(
        "recommend",
        c.w.run,
        "--session",
        "abc",
        expect="--session abc: the dataset's session ids are integers",
    )


@case("recommend: --session that does not exist")
def _(c: Ctx) -> Case:
    return C(
        "recommend", c.w.run, "--session", "987654321", expect="no session with at least 2 events"
    )


@case("recommend: unknown items in --history")
def _(c: Ctx) -> Case:
    return C(
        "recommend", c.w.run, "--history", "999999", expect="not in the trained catalogue (999999)"
    )


@case("recommend: non-integer items in --history")
def _(c: Ctx) -> Case:
    return C("recommend", c.w.run, "--history", "1,x", expect="item ids must be integers, found x")


@case("recommend: no mode given")
def _(c: Ctx) -> Case:
    return C("recommend", c.w.run, expect="give exactly one of --history, --sessions or --session")


@case("recommend: k of zero")
def _(c: Ctx) -> Case:
    return C("recommend", c.w.run, "--history", "1", "-k", "0", expect="k must be between 1 and")


@case("recommend: sessions file without the columns")
def _(c: Ctx) -> Case:
    c.file("s.csv", "a,b\n1,2\n")
    return C(
        "recommend",
        c.w.run,
        "--sessions",
        "s.csv",
        expect="s.csv: needs columns session_id,item_id",
    )


@case("recommend: sessions file missing")
def _(c: Ctx) -> Case:
    return C("recommend", c.w.run, "--sessions", "s.csv", expect="s.csv: sessions file not found")


@case("recommend: --out is the sessions file")
def _(c: Ctx) -> Case:
    c.file("s.csv", "session_id,item_id\n1,1\n")
    return C(
        "recommend",
        c.w.run,
        "--sessions",
        "s.csv",
        "--out",
        "s.csv",
        "--overwrite",
        expect="s.csv: the output would contain the input",
    )


@case("recommend: items.parquet missing")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "items.parquet").unlink()
    return C("recommend", run, "--history", "1", expect="items.parquet: missing")


@case("recommend: items.parquet too short")
def _(c: Ctx) -> Case:
    import polars as pl

    run = c.run_copy()
    pl.read_parquet(run / "items.parquet").head(5).write_parquet(run / "items.parquet")
    return C("recommend", run, "--history", "1", expect=("items.parquet", "has 5 rows"))


@case("recommend: items.parquet is not Parquet")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "items.parquet").write_text("item,item_id\n")
    return C(
        "recommend", run, "--history", "1", expect="items.parquet: not a readable Parquet file"
    )


# ------------------------------------------------------------------------------ compare, sweep, report


@case("compare: a run without summary")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "summary.json").unlink()
    return C("compare", run, expect="summary.json: no summary")


@case("compare: summary is not JSON")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "summary.json").write_text("[")
    return C("compare", run, expect="summary.json: run summary is not valid JSON")


@case("sweep: the base config's dataset does not exist")
def _(c: Ctx) -> Case:
    path = c.file("t.yaml", config_to_yaml(tiny_train_config(c.dir / "nope", c.dir / "x")))
    return C(
        "sweep",
        "--base",
        path,
        "--out",
        "sw",
        "--set",
        "seeds=[0,1]",
        expect=("sweep run seed_0", "nope: dataset directory not found"),
    )


@case("sweep: a grid key with no values")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C(
        "sweep",
        "--base",
        cfg,
        "--out",
        "sw",
        "--set",
        "grid={seed: []}",
        expect="grid.seed: needs at least one value",
    )


@case("sweep: --out is a directory rlrec did not make")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    c.file("sw/notes.txt", "mine")
    return C(
        "sweep",
        "--base",
        cfg,
        "--out",
        "sw",
        "--set",
        "seeds=[0]",
        expect="a directory rlrec did not make",
    )


@case("sweep: select_metric is not a metric")
def _(c: Ctx) -> Case:
    cfg = c.train_config()
    return C(
        "sweep",
        "--base",
        cfg,
        "--out",
        "sw",
        "--set",
        "overrides={train.select_metric: x}",
        expect="train.select_metric 'x' is not a metric",
    )


@case("report: a run's config.yaml is an anchor bomb")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    (run / "config.yaml").write_text(BOMB)
    return C("report", run, "--out", "rep", "--no-plots", expect=("config.yaml", "aliases"))


@case("report: nothing to report")
def _(c: Ctx) -> Case:
    (c.dir / "empty").mkdir()
    return C("report", "empty", "--out", "rep", "--no-plots", expect="empty")


@case("report: --out is a run it reads")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    return C(
        "report",
        run,
        "--out",
        run,
        "--overwrite",
        "--no-plots",
        expect="the output would contain the input",
    )


@case("report: --overwrite on a directory rlrec did not make")
def _(c: Ctx) -> Case:
    c.file("mine/paper.tex", "keep")
    return C(
        "report",
        c.w.run,
        "--out",
        "mine",
        "--overwrite",
        "--no-plots",
        expect="mine: not a directory rlrec made",
    )


@case("sim train: --overwrite on a directory rlrec did not make")
def _(c: Ctx) -> Case:
    c.file("mine/paper.tex", "keep")
    return C(
        "sim",
        "train",
        "--set",
        f"data={c.w.lists}",
        "--out",
        "mine",
        "--overwrite",
        "--set",
        "eval.users=20",
        "--set",
        "eval.val_users=10",
        expect="mine: not a directory rlrec made",
    )


@case("report: unknown protocol")
def _(c: Ctx) -> Case:
    return C("report", c.w.run, "--protocol", "bogus", expect="--protocol must be one of")


@case("report: metrics.jsonl line is not JSON")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write("{oops\n")
    return C("report", run, "--out", "rep", expect=("metrics.jsonl", "not JSON"))


# ------------------------------------------------------------------------------ sim


@case("sim prepare: unknown source")
def _(c: Ctx) -> Case:
    return C("sim", "prepare", "bogus", "--out", "lists", expect="Input tag 'bogus'")


@case("sim prepare: raw file missing")
def _(c: Ctx) -> Case:
    return C("sim", "prepare", "movielens", "--raw", "nope", "--out", "lists", expect="nope")


@case("sim prepare: --overwrite on an offline dataset")
def _(c: Ctx) -> Case:
    data = c.copy(c.w.data, "data")
    return C(
        "sim",
        "prepare",
        "synthetic",
        "--out",
        data,
        "--overwrite",
        expect="is an rlrec dataset directory, not a list_dataset",
    )


@case("sim train-urm: list dataset missing")
def _(c: Ctx) -> Case:
    return C("sim", "train-urm", "--data", "nope", "--out", "urm", expect="nope")


@case("sim train-urm: --out is the list dataset")
def _(c: Ctx) -> Case:
    lists = c.copy(c.w.lists, "lists")
    return C(
        "sim",
        "train-urm",
        "--data",
        lists,
        "--out",
        lists,
        "--overwrite",
        expect="the output would contain the input",
    )


@case("sim train: num_envs of zero")
def _(c: Ctx) -> Case:
    return C(
        "sim",
        "train",
        "--set",
        f"data={c.w.lists}",
        "--out",
        "r",
        "--set",
        "train.num_envs=0",
        expect="'train.num_envs'",
    )


@case("sim train: --resume and --overwrite together")
def _(c: Ctx) -> Case:
    return C(
        "sim",
        "train",
        "--set",
        f"data={c.w.lists}",
        "--out",
        "r",
        "--resume",
        "--overwrite",
        expect="at most one of --resume and --overwrite",
    )


@case("sim train: --overwrite on an offline run")
def _(c: Ctx) -> Case:
    run = c.run_copy()
    return C(
        "sim",
        "train",
        "--set",
        f"data={c.w.lists}",
        "--out",
        run,
        "--overwrite",
        "--set",
        "train.iterations=2",
        "--set",
        "eval.users=20",
        "--set",
        "eval.val_users=10",
        expect="is an rlrec run directory, not a sim_run",
    )


@case("sim evaluate: not a run directory")
def _(c: Ctx) -> Case:
    (c.dir / "empty").mkdir()
    return C("sim", "evaluate", "empty", "--no-plots", expect="empty")


@case("sim evaluate: unknown checkpoint")
def _(c: Ctx) -> Case:
    return C(
        "sim",
        "evaluate",
        c.w.run,
        "--checkpoint",
        "latest",
        "--no-plots",
        expect="--checkpoint must be best or last",
    )


@case("sim online-report: not a run directory")
def _(c: Ctx) -> Case:
    (c.dir / "empty").mkdir()
    return C("sim", "online-report", "empty", expect="empty")


# ------------------------------------------------------------------------------ the runner


def _retype(path: Path, dtype: torch.dtype) -> None:
    """Rewrite a safetensors file with every floating tensor cast to ``dtype``."""
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(tensors, str(path))


def _snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` → content hash (files), ``dir`` or ``link``."""
    state: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                p = Path(dirpath, name)
                state[str(p)] = "link" if p.is_symlink() else "dir"
            for name in filenames:
                p = Path(dirpath, name)
                state[str(p)] = (
                    "link" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
                )
    return state


def _inject_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    import polars as pl

    def full(self: object, file: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)


def _inject_erofs(monkeypatch: pytest.MonkeyPatch, under: Path) -> None:
    """``mkdir`` fails with EROFS below ``under`` (root ignores permission bits, so a read-only
    file system cannot be made with chmod here)."""
    real = os.mkdir

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)).resolve().is_relative_to(under):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_corpus_size() -> None:
    assert len(CASES) >= 60, len(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(
    name: str,
    world: World,
    tmp_path: Path,
    cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(tmp_path, world)
    monkeypatch.chdir(tmp_path)
    try:
        spec = CASES[name](ctx)
        if ctx.enospc:
            _inject_enospc(monkeypatch)
        if ctx.erofs:
            _inject_erofs(monkeypatch, tmp_path)
        before = _snapshot(tmp_path, world.root)
        result = cli(*spec.args)
        code, out, err = result.code, result.out, result.err
        monkeypatch.undo()
        after = _snapshot(tmp_path, world.root)
    finally:
        for undo in ctx.cleanup:
            undo()
    assert code != 0, (name, out, err)
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    text = " ".join(err.split())  # messages may be wrapped
    for fragment in spec.fragments:
        assert " ".join(str(fragment).split()) in text, (fragment, err)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not (added or removed or changed), (added, removed, changed)


def test_paths_are_printed_as_given_never_as_markup(world: World, tmp_path: Path, cli) -> None:
    """A path like ``/x/[bold]y[/]/`` is shown verbatim (rich markup is off), and an absolute
    checkpoint path works with ``--out``."""
    run = Path(shutil.copytree(world.run, tmp_path / "[bold]runs[/]" / "run"))
    text = (run / "config.yaml").read_text().replace(str(world.run), str(run))
    (run / "config.yaml").write_text(text)
    step = json.loads((run / "checkpoints" / "latest.json").read_text())["checkpoint"]
    checkpoint = (run / "checkpoints" / step).resolve()
    result = cli("evaluate", run, "--checkpoint", checkpoint, "--out", tmp_path / "m.json")
    assert result.code == 0, result.err
    assert str(checkpoint) in "".join(result.out.split())  # the table title may wrap
    assert json.loads((tmp_path / "m.json").read_text())["checkpoint"] == str(checkpoint)


def test_python_api_mistakes(world: World, tmp_path: Path) -> None:
    """The same promises hold for Python callers: one RlrecError, nothing written."""
    from gymnasium.error import ResetNeeded

    from rlrec.data.loaders.synthetic import SyntheticSource
    from rlrec.data.prepare import PrepareConfig, prepare
    from rlrec.errors import ConfigError, RlrecError
    from rlrec.serve.inference import Recommender
    from rlrec.sim.build import make_simulator
    from rlrec.sim.gym_env import ListRecEnv
    from rlrec.train.trainer import Trainer

    before = _snapshot(tmp_path, world.root)
    with pytest.raises(RlrecError, match="the output would contain the input"):
        prepare(PrepareConfig(source=SyntheticSource(path=world.raw)), world.root, overwrite=True)
    with pytest.raises(ConfigError, match="select_metric"):
        Trainer(tiny_train_config(world.data, tmp_path / "r", train={"select_metric": "auc"}))
    with pytest.raises(ConfigError, match="num_envs must be at least 1"):
        make_simulator(num_envs=0, synthetic={"n_users": 20, "n_items": 30})
    assert _snapshot(tmp_path, world.root) == before

    rec = Recommender.from_run(world.run)
    ids = rec.raw_ids.to_list()
    (got,) = rec.recommend([ids[:-3]], k=10, exclude_history=True)  # 3 items are left
    assert len(got) == 3 and {item for item, _ in got} == set(ids[-3:])

    env = ListRecEnv(synthetic={"n_users": 20, "n_items": 30, "slate_size": 3}, seed=1)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    with pytest.raises(ResetNeeded):
        env.step(env.action_space.sample())
    env.reset()
    env.step(env.action_space.sample())  # fine again after reset
