"""``rlrec export``: TorchScript and ONNX files that reproduce PyTorch, their contract, the
documented serving snippet, the file-safety rules and the failure paths."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from conftest import tiny_train_config
from typer.testing import CliRunner

from rlrec.errors import DataFormatError, OutputExistsError, RlrecError
from rlrec.serve import export
from rlrec.serve.export import ExportError, ParityError, export_command, export_run
from rlrec.serve.inference import Recommender

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"
# SASRec ranks with the CE head (SNQN), GRU with the Q head (DQN): both heads get exported
ENCODERS = {"sasrec": "snqn", "gru": "dqn"}
CASES = [(encoder, fmt) for encoder in ENCODERS for fmt in ("torchscript", "onnx")]


@pytest.fixture(scope="module")
def runs(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny finished runs (4 steps, validated at 2 and 4), one per encoder."""
    from rlrec.train.trainer import Trainer

    root = tmp_path_factory.mktemp("export_runs")
    for encoder, method in ENCODERS.items():
        cfg = tiny_train_config(
            tiny_dataset,
            root / encoder,
            encoder={"kind": encoder, "hidden": 16},
            objective={"kind": method},
            train={"max_steps": 4, "eval_every": 2, "log_every": 2},
        )
        Trainer(cfg).fit()
    return {encoder: root / encoder for encoder in ENCODERS}


@pytest.fixture(scope="module")
def exports(
    runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    """Every run exported in both formats: ``(encoder, format) → (directory, parity check)``."""
    root = tmp_path_factory.mktemp("exports")
    done = {}
    for encoder, fmt in CASES:
        out = root / f"{encoder}_{fmt}"
        done[encoder, fmt] = out, export_run(runs[encoder], fmt, out)  # type: ignore[arg-type]
    return done


def raw_ids(run: Path) -> list[Any]:
    import polars as pl

    return pl.read_parquet(run / "items.parquet").sort("item").get_column("item_id").to_list()


def contract_inputs(
    contract: dict[str, Any], histories: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """``state``/``len_state`` built from item-index histories by the contract's written rule
    (independently of rlrec's code): the last state_size items, right-padded, len 1 when empty."""
    size, pad = contract["state_size"], contract["pad_id"]
    state = np.full((len(histories), size), pad, dtype=np.int64)
    len_state = np.ones(len(histories), dtype=np.int64)
    for row, history in enumerate(histories):
        window = history[-size:]
        state[row, : len(window)] = window
        len_state[row] = max(1, len(window))
    return state, len_state


def reload_scores(
    directory: Path, fmt: str, state: np.ndarray, len_state: np.ndarray
) -> np.ndarray:
    """Scores of the exported file, loaded with torch.jit / onnxruntime only (no rlrec code)."""
    if fmt == "torchscript":
        module = torch.jit.load(str(directory / "model.pt"))
        with torch.no_grad():
            return module(torch.from_numpy(state), torch.from_numpy(len_state)).numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(directory / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session.run(["scores"], {"state": state, "len_state": len_state})[0]


@pytest.mark.parametrize(("encoder", "fmt"), CASES)
def test_export_passes_parity_and_writes_the_contract(
    encoder: str, fmt: str, exports: dict, runs: dict[str, Path]
) -> None:
    out, parity = exports[encoder, fmt]
    run = runs[encoder]
    meta = json.loads((run / "run.json").read_text())
    n, size = meta["n_items"], meta["state_size"]
    assert parity["passed"] and parity["samples"] == 256 and parity["batch_sizes"] == [1, 255]
    assert 0 <= parity["max_abs_diff"] <= parity["tolerance"] <= 1e-4 * parity["score_scale"]
    assert parity["top_k"] == 10 and parity["top_k_identical"] == 256
    assert parity["top_k_mismatches"] == 0 and parity["empty_histories"] >= 1

    model = "model.pt" if fmt == "torchscript" else "model.onnx"
    files = {"contract.json", "items.json", "items.parquet", model}
    assert {p.name for p in out.iterdir()} == files | {".rlrec-output.json"}
    assert not list(out.parent.glob(f".{out.name}*"))  # no temporary sibling or lock left
    contract = json.loads((out / "contract.json").read_text())
    assert contract["parity"] == parity and set(contract["files"]) == files
    assert contract["format"] == fmt and contract["model_file"] == model
    fields = ("name", "dtype", "shape")
    assert [tuple(i[f] for f in fields) for i in contract["inputs"]] == [
        ("state", "int64", ["batch", size]),
        ("len_state", "int64", ["batch"]),
    ]
    assert [tuple(o[f] for f in fields) for o in contract["outputs"]] == [
        ("scores", "float32", ["batch", n])
    ]
    assert "higher = better" in contract["outputs"][0]["meaning"]
    assert (contract["n_items"], contract["state_size"], contract["pad_id"]) == (n, size, n)
    best = json.loads((run / "best" / "state.json").read_text())
    assert contract["run"] | {"path": ""} == {
        "name": encoder,
        "path": "",
        "method": ENCODERS[encoder],
        "encoder": encoder,
        "eval_head": "ce" if ENCODERS[encoder] == "snqn" else "q",
        "checkpoint": "best",
        "checkpoint_step": best["step"],
        "dataset_content_hash": meta["dataset_content_hash"],
    }
    assert contract["rlrec_version"] == meta["rlrec_version"]
    # the worked examples obey the written rule (and cover empty, padded and truncated histories)
    examples = contract["state_rule"]["examples"]
    state, len_state = contract_inputs(contract, [e["history"] for e in examples])
    assert [e["state"] for e in examples] == state.tolist()
    assert [e["len_state"] for e in examples] == len_state.tolist() and len_state[0] == 1
    assert {len(e["history"]) > size for e in examples} == {True, False}

    assert json.loads((out / "items.json").read_text()) == raw_ids(run)
    assert (out / "items.parquet").read_bytes() == (run / "items.parquet").read_bytes()
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(out / model))
        assert (
            contract["exporter"]["dynamo"] is True and "fallback_reason" not in contract["exporter"]
        )
        opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= 17 and contract["exporter"]["opset"] == opset
        assert [i.name for i in graph.graph.input] == ["state", "len_state"]
        batch = [i.type.tensor_type.shape.dim[0] for i in (*graph.graph.input, *graph.graph.output)]
        assert all(d.dim_param and not d.dim_value for d in batch)  # a free batch axis


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("encoder", "fmt"), CASES)
def test_reloaded_file_gives_the_recommenders_top10(
    encoder: str, fmt: str, exports: dict, runs: dict[str, Path]
) -> None:
    out, _ = exports[encoder, fmt]
    contract = json.loads((out / "contract.json").read_text())
    items = json.loads((out / "items.json").read_text())
    size = contract["state_size"]
    histories = [[], [items[7]], items[3:8], items[20 : 20 + size + 4], [items[5]] * 3]
    index = {item: j for j, item in enumerate(items)}
    state, len_state = contract_inputs(contract, [[index[i] for i in h] for h in histories])
    scores = reload_scores(out, fmt, state, len_state)
    expected = Recommender.from_run(runs[encoder], device="cpu").recommend(histories, k=10)
    for row, recs in zip(scores, expected, strict=True):
        top = np.argsort(-row, kind="stable")[:10]
        assert [items[j] for j in top] == [item for item, _ in recs]
        np.testing.assert_allclose(row[top], [s for _, s in recs], rtol=0, atol=1e-5)


def test_documented_snippet_serves_onnx_without_rlrec(
    exports: dict, runs: dict[str, Path], tmp_path: Path
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/export.md should hold exactly one python block (the snippet)"
    script = tmp_path / "serve_onnx.py"
    script.write_text(blocks[0])
    out, _ = exports["sasrec", "onnx"]
    items = json.loads((out / "items.json").read_text())
    size = json.loads((out / "contract.json").read_text())["state_size"]
    rec = Recommender.from_run(runs["sasrec"], device="cpu")
    # rlrec made unimportable, so the snippet cannot lean on it
    runner = (
        "import runpy, sys; sys.modules['rlrec'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    for history in ([], items[10 : 10 + size + 3], items[:2]):
        done = subprocess.run(
            [sys.executable, "-c", runner, script, out, json.dumps(history)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        top = json.loads(done.stdout)
        expected = rec.recommend([history], k=10)[0]
        assert [item for item, _ in top] == [item for item, _ in expected]
        np.testing.assert_allclose([s for _, s in top], [s for _, s in expected], atol=1e-5)


def perturb(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """Make the parity check see ``change(scores)`` from the exported model."""
    load = export.load_exported

    def load_changed(path: Path, fmt: Any, **kwargs: Any) -> Any:
        score = load(path, fmt, **kwargs)
        return lambda state, len_state: change(score(state, len_state))

    monkeypatch.setattr(export, "load_exported", load_changed)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))  # no temporary sibling or lock left


def test_parity_failures_raise_and_write_nothing(
    exports: dict, runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tolerance = exports["gru", "torchscript"][1]["tolerance"]  # same run, seed and samples
    out = tmp_path / "new" / "gru"
    perturb(monkeypatch, lambda s: s + 10 * tolerance)  # order kept, scores off
    with pytest.raises(ParityError, match=r"max \|Δscore\| .*top-10 differs in 0\)"):
        export_run(runs["gru"], "torchscript", out)
    assert_nothing_written(out)
    assert not out.parent.exists()  # the parent it created is removed again

    perturb(monkeypatch, lambda s: s[:, ::-1].copy())  # same values, other columns
    with pytest.raises(ParityError, match=r"top-10 differs in [1-9]"):
        export_run(runs["gru"], "onnx", out)
    assert_nothing_written(out)

    perturb(monkeypatch, lambda s: s[:, :-1])
    with pytest.raises(
        ParityError,
        match=r"gru: the exported model returned float32 \(256, \d+\) .*nothing was written",
    ):
        export_run(runs["gru"], "torchscript", out)
    assert_nothing_written(out)


def test_parity_accepts_a_difference_within_tolerance(
    exports: dict, runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tolerance = exports["gru", "torchscript"][1]["tolerance"]
    perturb(monkeypatch, lambda s: s + np.float32(tolerance / 4))
    parity = export_run(runs["gru"], "torchscript", tmp_path / "ok")
    assert parity["passed"] and tolerance / 8 < parity["max_abs_diff"] < tolerance / 2


def test_overwrite_rules(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["gru"]
    out = tmp_path / "ts"
    export_run(run, "torchscript", out)
    contract = (out / "contract.json").read_bytes()
    with pytest.raises(OutputExistsError, match="output already exists"):
        export_run(run, "torchscript", out)
    assert (out / "contract.json").read_bytes() == contract
    (out / "stale.txt").write_text("from the old export")
    export_run(run, "onnx", out, overwrite=True)  # an earlier export is replaced whole
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "contract.json"}
    assert not (out / "model.pt").exists() and not (out / "stale.txt").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        export_run(run, "torchscript", mine)
    with pytest.raises(RlrecError, match="not a directory rlrec made"):
        export_run(run, "torchscript", mine, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(RlrecError, match="is an rlrec run directory, not a export"):
        export_run(runs["sasrec"], "torchscript", run, overwrite=True)
    assert (run / "config.yaml").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    export_run(run, "torchscript", empty)  # an empty directory counts as new
    assert (empty / "model.pt").is_file()


def test_user_errors_are_one_clear_line(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    cases = [
        (dict(run_dir=tmp_path, fmt="onnx"), DataFormatError, "not an rlrec run directory"),
        (dict(fmt="torchscript", checkpoint="nope"), DataFormatError, "nope: checkpoint not found"),
        (dict(fmt="tflite"), ExportError, "format must be one of torchscript, onnx, got 'tflite'"),
        (dict(fmt="onnx", check_samples=0), ExportError, "check_samples must be at least 1"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=re.escape(message)) as caught:
            export_run(**{"run_dir": runs["gru"], "out_dir": out, **kwargs})
        assert "\n" not in str(caught.value)
        assert_nothing_written(out)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(
        ExportError,
        match=re.escape("onnxruntime, which is not installed: pip install 'rlrec[export]'"),
    ):
        export_run(runs["gru"], "onnx", out)
    assert_nothing_written(out)


def test_legacy_onnx_exporter_only_when_dynamo_fails(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = torch.onnx.export
    calls = []

    def dynamo_fails(*args: Any, dynamo: bool = True, **kwargs: Any) -> Any:
        calls.append(dynamo)
        if dynamo:
            raise RuntimeError("simulated torch.export failure\nmore detail")
        return real(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    parity = export_run(runs["sasrec"], "onnx", tmp_path / "legacy")
    assert calls == [True, False] and parity["passed"] and parity["top_k_identical"] == 256
    exporter = json.loads((tmp_path / "legacy" / "contract.json").read_text())["exporter"]
    assert exporter["dynamo"] is False
    assert exporter["fallback_reason"] == "RuntimeError: simulated torch.export failure"
    assert not list((tmp_path / "legacy").glob("model.onnx?*"))  # no leftover of the failed try


def test_command_prints_a_summary(runs: dict[str, Path], tmp_path: Path) -> None:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("export")(export_command)
    app.callback()(lambda: None)  # keep "export" a sub-command, as under the rlrec app
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["export", str(runs["gru"]), "--format", "torchscript", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: contract.json, items.json, items.parquet, model.pt" in result.output
    assert re.search(r"max \|Δscore\| \d\.\d\de[-+]\d\d .*top-10 identical 256/256", result.output)
    again = CliRunner().invoke(
        app, ["export", str(runs["gru"]), "-f", "torchscript", "-o", str(out)]
    )
    assert isinstance(again.exception, OutputExistsError)  # the rlrec CLI prints it as one line
    args = ["-f", "onnx", "-o", str(out), "--overwrite", "--checkpoint", "latest"]
    result = CliRunner().invoke(app, ["export", str(runs["gru"]), *args])
    assert result.exit_code == 0 and "model.onnx" in result.output, result.output
    run = json.loads((out / "contract.json").read_text())["run"]
    latest = json.loads((runs["gru"] / "checkpoints" / "latest.json").read_text())
    assert (run["checkpoint"], run["checkpoint_step"]) == ("latest", latest["step"])


def test_index_export_serves_without_rlrec(runs: dict[str, Path], tmp_path: Path) -> None:
    """``--index faiss``: the encoder, the index and the head, used as the contract says with
    onnxruntime, faiss and safetensors only, give the Recommender's top 10 (a tiny catalogue, where
    a calibrated HNSW search is exact)."""
    import faiss
    import onnxruntime as ort
    from safetensors.numpy import load_file

    out = tmp_path / "indexed"
    parity = export_run(runs["sasrec"], "onnx", out, index="faiss")
    contract = json.loads((out / "contract.json").read_text())
    part = contract["index"]
    assert set(part["files"]) == {"state.onnx", "items.faiss", "head.safetensors"}
    assert set(part["files"]) <= set(contract["files"])
    assert parity["index"]["reloaded_index_identical"]
    assert parity["index"]["state_max_abs_diff"] <= parity["index"]["state_tolerance"]
    assert part["recall_at_10"] == 1.0
    items = json.loads((out / "items.json").read_text())
    size = contract["state_size"]
    histories = [[], [items[7]], items[3:8], items[20 : 20 + size + 4]]
    where = {item: j for j, item in enumerate(items)}
    state, len_state = contract_inputs(contract, [[where[i] for i in h] for h in histories])
    session = ort.InferenceSession(str(out / "state.onnx"), providers=["CPUExecutionProvider"])
    query = session.run(["query"], {"state": state, "len_state": len_state})[0]
    index = faiss.read_index(str(out / "items.faiss"))
    index.hnsw.efSearch = part["ef_search"]
    ones, zeros = np.ones((len(query), 1), np.float32), np.zeros((len(query), 1), np.float32)
    _, found = index.search(np.hstack([query, ones, zeros]).astype(np.float32), 10)
    head = load_file(out / "head.safetensors")
    scores = np.einsum("bh,bkh->bk", query, head["weight"][found]) + head["bias"][found]
    expected = Recommender.from_run(runs["sasrec"], device="cpu").recommend(histories, k=10)
    for cand, score, recs in zip(found, scores, expected, strict=True):
        order = np.lexsort((cand, -score))
        assert [items[j] for j in cand[order]] == [item for item, _ in recs]
        np.testing.assert_allclose(score[order], [s for _, s in recs], rtol=0, atol=1e-5)
    plain = export_run(runs["sasrec"], "onnx", tmp_path / "plain", index="auto")
    assert "index" not in plain  # below the threshold: no index
    assert not (tmp_path / "plain" / "items.faiss").exists()
