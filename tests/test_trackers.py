"""The tracker adapters: MLflow and W&B offline (read back), TensorBoard's calls, missing extras,
the files adapter's formats, resume with trackers."""

from __future__ import annotations

import glob
import importlib.util
import json
import struct
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_train_config

from rlrec.config import build_config
from rlrec.errors import RlrecError
from rlrec.train.config import LoopConfig
from rlrec.train.trackers import mlflow_key, open_tracker
from rlrec.train.trainer import Trainer


def _records(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _kill_after_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    original = Trainer._train_step

    def dies(self, pos):  # type: ignore[no-untyped-def]
        if self.step == step:
            raise KeyboardInterrupt
        return original(self, pos)

    monkeypatch.setattr(Trainer, "_train_step", dies)


def test_mlflow_file_store_in_the_run_dir_read_back(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metrics and params reach a local ``file:`` store under the run directory, read back with
    the MLflow client; a run killed and resumed continues the same MLflow run."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    cfg = tiny_train_config(tiny_dataset, run, train={"trackers": ["mlflow"], "progress": "none"})
    _kill_after_step(monkeypatch, 25)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).fit()
    monkeypatch.undo()
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    (first,) = client.search_runs([client.get_experiment_by_name("rlrec").experiment_id])
    assert first.info.status == "FAILED" and first.info.run_name == "snqn/gru"
    Trainer(cfg, resume=True).fit()

    (mlrun,) = client.search_runs([client.get_experiment_by_name("rlrec").experiment_id])
    assert mlrun.info.run_id == first.info.run_id and mlrun.info.status == "FINISHED"
    assert json.loads((run / "trackers.json").read_text()) == {"mlflow": mlrun.info.run_id}
    params = mlrun.data.params
    assert params["train.batch_size"] == "32" and params["encoder.kind"] == "gru"
    assert params["objective.kind"] == "snqn"
    history = client.get_metric_history(mlrun.info.run_id, "val/ndcg_purchase_at_10")
    logged = {(m.step, m.value) for m in history}
    val = {(r["step"], r["ndcg_purchase@10"]) for r in _records(run, "val")}
    # steps 10 and 20 came before the kill; the resumed run replays nothing before its checkpoint
    assert logged == val and {s for s, _ in logged} == {10, 20, 30, 40}
    (test,) = client.get_metric_history(mlrun.info.run_id, "test/hr_purchase_at_10")
    assert test.step == 40 and test.value == _records(run, "test")[0]["hr_purchase@10"]


def test_mlflow_at_a_given_tracking_uri_and_a_grown_budget_as_tag(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "store").as_uri()
    train = {"trackers": ["files", "mlflow"], "mlflow_uri": store, "tracker_project": "exp"}
    train |= {"max_steps": 20, "progress": "none"}
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", train=train)
    Trainer(cfg).fit()
    assert not (tmp_path / "run" / "mlruns").exists()
    longer = tiny_train_config(tiny_dataset, tmp_path / "run", train={**train, "max_steps": 30})
    Trainer(longer, resume=True).fit()
    client = MlflowClient(tracking_uri=store)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    # MLflow params cannot change: the first budget stays, the new one is a tag
    assert mlrun.data.params["train.max_steps"] == "20"
    assert mlrun.data.tags["resumed.train.max_steps"] == "30"
    steps = [
        m.step for m in client.get_metric_history(mlrun.info.run_id, "val/ndcg_purchase_at_10")
    ]
    assert sorted(steps) == [10, 20, 30]


def test_mlflow_key() -> None:
    assert mlflow_key("ndcg_purchase@10") == "ndcg_purchase_at_10"
    assert mlflow_key("ndcg_purchase@10/nonempty") == "ndcg_purchase_at_10.nonempty"
    assert mlflow_key("a.b-c d:e_g") == "a.b-c d:e_g"
    assert mlflow_key("x[0]") == "x_0_"


def _wandb_records(path: str) -> list[Any]:
    """The protobuf records of a W&B transaction log (``run-ID.wandb``): a 7-byte header, then
    LevelDB-log records in 32 KiB blocks (CRC, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunks, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            chunks.append(buf)
            buf = b""
    records = []
    for chunk in chunks:
        record = pb.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def test_wandb_offline_files_in_the_run_dir(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``WANDB_MODE=offline``: the run's history and config are in ``wandb/`` of the run
    directory, read back from W&B's offline transaction log (no network)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    cfg = tiny_train_config(tiny_dataset, run, train={"trackers": ["wandb"], "progress": "none"})
    Trainer(cfg).fit()
    run_id = json.loads((run / "trackers.json").read_text())["wandb"]
    (log,) = glob.glob(str(run / "wandb" / "offline-run-*" / f"run-{run_id}.wandb"))
    records = _wandb_records(log)
    history: dict[int, dict[str, float]] = {}
    config: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item
            }
            history.setdefault(r.history.step.num, {}).update(items)
        elif r.WhichOneof("record_type") == "config":
            config.update({i.key: json.loads(i.value_json) for i in r.config.update})
    assert config["train"]["batch_size"] == 32 and config["objective"]["kind"] == "snqn"
    for rec in _records(run, "val"):
        assert history[rec["step"]]["val/ndcg_purchase@10"] == rec["ndcg_purchase@10"]
    for rec in _records(run, "train"):
        assert history[rec["step"]]["train/loss"] == pytest.approx(rec["loss"])
    assert history[40]["test/hr_purchase@10"] == _records(run, "test")[0]["hr_purchase@10"]


@pytest.mark.parametrize(
    ("tracker", "extra"), [("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "track")]
)
def test_missing_extra_is_one_line_naming_it(
    cli,
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tracker: str,
    extra: str,
) -> None:
    real = importlib.util.find_spec
    module = {"track": "tensorboard"}.get(extra, extra)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == module else real(n, *a)
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {tiny_dataset}\nout: {tmp_path / 'run'}\ntrain: {{trackers: [{tracker}], max_steps: 5}}\n"
    )
    r = cli("train", "--config", cfg)
    assert r.code == 2
    assert r.err.strip() == (
        f"error: train.trackers lists {tracker}, which needs {module}: pip install rlrec[{extra}]"
    )
    assert not (tmp_path / "run").exists()


def test_tensorboard_gets_scalars_hparams_and_the_config_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stand-in ``torch.utils.tensorboard`` (TensorBoard is not a test dependency): numeric
    values as ``kind/key`` scalars, the flattened config as hparams, the YAML as text."""
    calls: list[tuple[Any, ...]] = []

    class Writer:
        def __init__(self, logdir: str) -> None:
            calls.append(("open", logdir))
            self.file_writer = types.SimpleNamespace(add_summary=lambda s: calls.append(("hp", s)))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append(("scalar", tag, value, step))

        def add_text(self, tag: str, text: str) -> None:
            calls.append(("text", tag, text))

        def close(self) -> None:
            calls.append(("close",))

    board = types.ModuleType("torch.utils.tensorboard")
    board.SummaryWriter = Writer  # type: ignore[attr-defined]
    summary = types.ModuleType("torch.utils.tensorboard.summary")
    summary.hparams = lambda h, m: [("exp", dict(h), dict(m)), "ssi", "sei"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", board)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard.summary", summary)
    options = build_config(LoopConfig, cli={"trackers": ["tensorboard"]})
    config = {"train": {"batch_size": 32, "trackers": ["tensorboard"]}, "seed": 0}
    tracker = open_tracker(tmp_path, options, config, "run")
    tracker.log("val", 10, {"hr@10": 0.5, "message": "x", "nan": float("nan")})
    tracker.close()
    assert calls[0] == ("open", str(tmp_path / "tb"))
    assert calls[1] == (
        "hp",
        ("exp", {"train.batch_size": 32, "train.trackers": '["tensorboard"]', "seed": 0}, {}),
    )
    assert calls[4][:2] == ("text", "config") and "    batch_size: 32\n" in calls[4][2]
    assert calls[5:] == [("scalar", "val/hr@10", 0.5, 10), ("close",)]
    assert (tmp_path / "metrics.jsonl").read_text() == (
        '{"kind": "val", "step": 10, "hr@10": 0.5, "message": "x", "nan": null}\n'
    )


def test_tracker_options() -> None:
    """Unset ``trackers``: files + TensorBoard-if-installed per the old ``tensorboard`` flag;
    files is always on; a contradiction is refused."""
    assert LoopConfig().tracker_names() == ["files", "tensorboard?"]
    assert LoopConfig(tensorboard=False).tracker_names() == ["files"]
    assert LoopConfig(trackers=["wandb", "mlflow", "wandb"]).tracker_names() == [
        "files",
        "wandb",
        "mlflow",
    ]
    assert LoopConfig(trackers=["files"], tensorboard=True).tracker_names() == ["files"]
    with pytest.raises(RlrecError, match="contradicts"):
        build_config(LoopConfig, cli={"trackers": ["tensorboard"], "tensorboard": False})
