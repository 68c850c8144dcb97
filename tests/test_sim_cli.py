"""``rlrec sim prepare`` and ``rlrec sim train-urm`` through the typer sub-app, errors on one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer
from conftest import CliResult
from sim_helpers import single_thread, write_text

from rlrec.errors import RlrecError
from rlrec.sim.cli import sim_app

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


@pytest.fixture
def sim_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``rlrec sim ARGS...`` as the root CLI would: RlrecError → one line, exit 2, messages
    that name --flags."""
    monkeypatch.setattr("rlrec.errors.CALLER", "cli")
    root = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    root.add_typer(sim_app, name="sim")

    def run(*args: str | Path) -> CliResult:
        code = 0
        try:
            root(["sim", *map(str, args)], prog_name="rlrec")
        except SystemExit as exc:
            code = int(exc.code or 0)
        except RlrecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def test_prepare_and_train_urm(sim_cli, tmp_path: Path) -> None:
    data, urm = tmp_path / "data", tmp_path / "urm"
    r = sim_cli(
        "prepare", "synthetic", "--out", data,
        "--set", "source.n_users=30", "--set", "source.n_items=40", "--set", "source.mean_lists=4",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert f"wrote {data}" in r.out and "40 items" in r.out
    r = sim_cli(
        "train-urm", "--data", data, "--out", urm,
        "--set", "epochs=1", "--set", "urm.dim=8", "--set", "urm.hidden_dims=[8]",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "epoch 1/1: train loss" in r.err and "val AUC" in r.err
    assert f"wrote {urm}" in r.out and (urm / "model.safetensors").is_file()
    r = sim_cli("train-urm", "--data", data, "--out", urm, "--set", "epochs=1")
    assert r.code == 2 and "already exists; pass --overwrite" in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "nosuch", "--out", "x"], "invalid config: 'source'"),
        (
            ["prepare", "rl4rs", "--raw", "missing.csv", "--out", "x"],
            "missing.csv: RL4RS data file not found",
        ),
        (
            ["train-urm", "--data", "nowhere", "--out", "u"],
            "nowhere: list dataset directory not found",
        ),
        (["train-urm", "--out", "u"], "'data': Field required"),
        (["train-urm", "--data", "d", "--out", "u", "--set", "urm.dim=30"], "divisible by n_heads"),
    ],
)
def test_user_errors_are_one_line(sim_cli, tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    r = sim_cli(*args)
    assert r.code == 2
    assert message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_bad_rl4rs_file_via_cli(sim_cli, tmp_path: Path) -> None:
    head = "timestamp@session_id@sequence_id@exposed_items@user_feedback@user_seqfeature@user_protrait@item_feature@behavior_policy_id"
    write_text(
        tmp_path / "item_info.csv", ["item_id item_vec price location special_item", "1 0.5 1 1 0"]
    )
    write_text(tmp_path / "b.csv", [head, "1@2@1@1,1@1,0,1@@0.1@x@1"])
    r = sim_cli("prepare", "rl4rs", "--raw", tmp_path / "b.csv", "--out", tmp_path / "o")
    assert r.code == 2
    assert "b.csv:2: column 'exposed_items': 2 exposed items, expected K = 9" in r.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: p.name)
def test_shipped_sim_configs_are_valid(path: Path) -> None:
    from rlrec.config import build_config
    from rlrec.online.config import OnlineTrainConfig
    from rlrec.sim.prepare import ListPrepareConfig
    from rlrec.sim.urm_train import URMTrainConfig

    if path.parent.name == "agents":
        run = build_config(OnlineTrainConfig, path=path)
        assert run.name and run.out.name == path.stem and run.train.num_envs == 32
    elif path.parent.name == "data":
        cfg = build_config(
            ListPrepareConfig,
            path=path,
            cli={"source": {"path": "raw"}} if "synthetic" not in path.name else None,
        )
        assert cfg.split.train_frac == 0.8
    else:
        cfg = build_config(URMTrainConfig, path=path)
        assert cfg.urm.max_history == 50
