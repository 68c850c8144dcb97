"""``rlrec export RUN_DIR --format torchscript|onnx --out DIR``: a run's scoring network as one file
that serves without rlrec, checked against PyTorch before it is kept.

The exported model is :class:`rlrec.models.network.ScoringNetwork` on CPU in eval mode:
``(state [B, L] int64, len_state [B] int64) → scores [B, n_items] float32``, the scores
:class:`rlrec.serve.inference.Recommender` ranks by. ``DIR`` receives

* ``model.pt`` (TorchScript, :func:`torch.jit.trace`) or ``model.onnx`` (:func:`torch.onnx.export`,
  the ``torch.export``-based exporter, ``dynamo=True``; the TorchScript-based one, ``dynamo=False``,
  only when the first fails, and the contract says so and why), batch size free;
* ``items.json`` — the raw item ids as a JSON list, position = score column; ``items.parquet`` —
  the run's item map, copied;
* ``contract.json`` — how to call the model: input and output names, dtypes and shapes, how a
  history becomes ``state``/``len_state`` (with worked examples made by the same code), the run,
  the versions, and the parity check.

**Parity check.** Before anything is kept, the exported file is loaded back (``torch.jit.load``, or
an ONNX Runtime ``InferenceSession`` on the CPU provider) and scores ``check_samples`` seeded random
histories (lengths 0..L, at least one empty), first one alone (batch 1) then the rest in one batch.
The export fails (:class:`ParityError`, nothing written) unless the largest absolute score difference
to PyTorch is at most ``TOLERANCE × max(1, max |PyTorch score|)`` and the top-10 lists
(``torch.topk`` order) are identical in every sample.

The output directory follows :mod:`rlrec.outputs` (kind ``export``): built in a hidden sibling and
renamed into place when complete; ``overwrite`` replaces only an earlier export.

torch, numpy and the ONNX packages are imported inside the functions, so importing this module (the
CLI does, to register the command) stays cheap.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from rlrec import __version__
from rlrec.cli_common import IndexOpt, IndexThresholdOpt, OverwriteOpt, check_index, stages
from rlrec.cli_common import out as console
from rlrec.errors import RlrecError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from rlrec.models.network import ScoringNetwork
    from rlrec.train.config import TrainConfig

    Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
    """``(state [B, L] int64, len_state [B] int64) → scores [B, n_items] float32`` (NumPy)."""

Format = Literal["torchscript", "onnx"]
FORMATS: tuple[Format, ...] = ("torchscript", "onnx")
MODEL_FILE: dict[str, str] = {"torchscript": "model.pt", "onnx": "model.onnx"}
CONTRACT = "contract.json"
ITEMS_JSON = "items.json"
KIND = "export"
INPUTS = ("state", "len_state")
OUTPUT = "scores"
OPSET = 18
TOP_K = 10
TOLERANCE = 1e-4
"""Largest accepted ``|exported − PyTorch|`` score difference, per unit of score scale
(``max(1, max |PyTorch score|)`` over the checked histories): float32 rounding of a reordered
computation, far below any gap that matters for ranking."""
EXTERNAL_DATA_BYTES = 1 << 30
"""Weights larger than this go to ``model.onnx.data`` beside the graph (protobuf files end at 2 GiB)."""
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
STATE_OUTPUT = "query"
STATE_FILE: dict[str, str] = {"torchscript": "state.pt", "onnx": "state.onnx"}
INDEX_FILE = "items.faiss"
HEAD_FILE = "head.safetensors"


class ExportError(RlrecError):
    """The export cannot be made as asked: an unknown format, a missing package, a bad setting."""


class ParityError(ExportError):
    """The exported model does not reproduce the PyTorch network's scores."""


def check_format(fmt: str) -> Format:
    """``fmt`` if it is a known export format, else :class:`ExportError`."""
    for known in FORMATS:
        if fmt == known:
            return known
    raise ExportError(f"format must be one of {', '.join(FORMATS)}, got '{fmt}'")


def require(packages: Sequence[str] = ONNX_PACKAGES) -> None:
    """Import ``packages`` or fail with one line naming the extra that installs them."""
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}, which is not installed: "
            "pip install 'rlrec[export]'"
        )


def random_histories(n_items: int, state_size: int, samples: int, seed: int) -> list[list[int]]:
    """``samples`` seeded histories of item indices with lengths drawn from ``0..state_size``; the
    first is always empty and the second (if any) fills the whole window."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, state_size + 1, size=samples)
    lengths[0] = 0
    if samples > 1:
        lengths[1] = state_size
    return [rng.integers(0, n_items, size=int(length)).tolist() for length in lengths]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log lines (deprecations, torchvision ops not installed,
    attributes assigned during tracing): the parity check, not a warning, decides whether an export
    is good, and a CLI user cannot act on them."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def load_exported(
    path: Path, fmt: Format, *, threads: int | None = None, output: str = "scores"
) -> Scorer:
    """The exported model at ``path`` as a NumPy :data:`Scorer`, on CPU, loaded without rlrec's
    model code (``torch.jit.load``, or ONNX Runtime's ``CPUExecutionProvider``).

    ``threads``: ONNX Runtime's intra-op threads (TorchScript follows ``torch.set_num_threads``)."""
    if fmt == "torchscript":
        import torch

        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")

        def score_torchscript(state: np.ndarray, len_state: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(state), torch.from_numpy(len_state)).numpy()

        return score_torchscript
    require(("onnxruntime",))
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def score_onnx(state: np.ndarray, len_state: np.ndarray) -> np.ndarray:
        return session.run([output], {INPUTS[0]: state, INPUTS[1]: len_state})[0]

    return score_onnx


def check_parity(
    reference: ScoringNetwork,
    exported: Scorer,
    *,
    n_items: int,
    state_size: int,
    pad_id: int,
    samples: int,
    seed: int,
) -> dict[str, Any]:
    """Score :func:`random_histories` with both models and compare (the module docstring's rule).

    The exported model sees the first history alone (batch 1) and the others as one batch, so a
    batch size frozen into the file cannot pass. Returns the numbers and ``passed``."""
    import numpy as np
    import torch

    from rlrec.serve.inference import history_states

    histories = random_histories(n_items, state_size, samples, seed)
    state, len_state = history_states(histories, state_size, pad_id)
    with torch.inference_mode():
        expected = reference(state, len_state)  # [S, n] float32
    arrays = (state.numpy(), len_state.numpy())
    batches = [slice(0, 1), slice(1, samples)] if samples > 1 else [slice(0, 1)]
    got = np.concatenate([exported(*(a[rows] for a in arrays)) for rows in batches])
    if got.shape != tuple(expected.shape) or got.dtype != np.float32:
        raise ParityError(
            f"the exported model returned {got.dtype} {got.shape} for {samples} histories, "
            f"expected float32 {tuple(expected.shape)}"
        )
    scores = torch.from_numpy(got)
    max_diff = float((scores - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    k = min(TOP_K, n_items)
    same = (torch.topk(scores, k).indices == torch.topk(expected, k).indices).all(dim=1)
    identical = int(same.sum())
    tolerance = TOLERANCE * scale
    return {
        "samples": samples,
        "seed": seed,
        "empty_histories": sum(not h for h in histories),
        "batch_sizes": [rows.stop - rows.start for rows in batches],
        "max_abs_diff": max_diff,
        "score_scale": scale,
        "tolerance": tolerance,
        "top_k": k,
        "top_k_identical": identical,
        "top_k_mismatches": samples - identical,
        "passed": bool(max_diff <= tolerance) and identical == samples,
    }


def _write_torchscript(
    model: torch.nn.Module,
    example: tuple[torch.Tensor, torch.Tensor],
    path: Path,
    output: str = OUTPUT,
) -> dict[str, Any]:
    """Trace ``model`` on ``example`` and save it; returns how (for the contract)."""
    import torch

    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))
    return {"tool": "torch.jit.trace", "torch_version": torch.__version__}


def _write_onnx(
    model: torch.nn.Module,
    example: tuple[torch.Tensor, torch.Tensor],
    path: Path,
    output: str = OUTPUT,
) -> dict[str, Any]:
    """Export ``model`` with a free batch axis: ``dynamo=True`` first, ``dynamo=False`` if that
    fails; returns which, why, and the opset actually written (for the contract)."""
    import onnx
    import torch

    common: dict[str, Any] = {
        "input_names": list(INPUTS),
        "output_names": [output],
        "opset_version": OPSET,
    }
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    batch = torch.export.Dim("batch")
    how: dict[str, Any] = {"tool": "torch.onnx.export", "dynamo": True}
    try:
        with _quiet():
            torch.onnx.export(
                model,
                example,
                path,
                dynamo=True,
                dynamic_shapes={name: {0: batch} for name in INPUTS},
                external_data=weights > EXTERNAL_DATA_BYTES,
                verbose=False,
                **common,
            )
    except Exception as exc:  # whatever torch.export cannot capture, the legacy exporter may
        first = (str(exc).strip().splitlines() or [""])[0]
        how = {**how, "dynamo": False, "fallback_reason": f"{type(exc).__name__}: {first}"}
        for partial in path.parent.glob(f"{path.name}*"):
            partial.unlink()
        with _quiet():
            torch.onnx.export(
                model,
                example,
                path,
                dynamo=False,
                dynamic_axes={name: {0: "batch"} for name in (*INPUTS, output)},
                **common,
            )
    graph = onnx.load(str(path), load_external_data=False)
    how["opset"] = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {**how, "torch_version": torch.__version__, "onnx_version": onnx.__version__}


def _contract(
    fmt: Format,
    files: list[str],
    exporter: dict[str, Any],
    parity: dict[str, Any],
    *,
    run: dict[str, Any],
    n_items: int,
    state_size: int,
    pad_id: int,
) -> dict[str, Any]:
    """``contract.json``: everything a caller without rlrec needs, the state rule's examples made
    by :func:`rlrec.serve.inference.history_states` itself (so they are exact, not paraphrased)."""
    from rlrec.serve.inference import history_states

    cases = [[], [i % n_items for i in range(min(3, state_size))]]
    cases.append([i % n_items for i in range(state_size + 2)])
    state, len_state = history_states(cases, state_size, pad_id)
    examples = [
        {"history": h, "state": s, "len_state": n}
        for h, s, n in zip(cases, state.tolist(), len_state.tolist(), strict=True)
    ]
    call = (
        "torch.jit.load('model.pt')(state, len_state) -> scores (positional arguments)"
        if fmt == "torchscript"
        else "onnxruntime.InferenceSession('model.onnx').run(['scores'], "
        "{'state': state, 'len_state': len_state})[0]"
    )
    return {
        "format": fmt,
        "files": files,
        "model_file": MODEL_FILE[fmt],
        "call": call,
        "exporter": exporter,
        "inputs": [
            {
                "name": INPUTS[0],
                "dtype": "int64",
                "shape": ["batch", state_size],
                "meaning": "item indices of the history window (see state_rule)",
            },
            {
                "name": INPUTS[1],
                "dtype": "int64",
                "shape": ["batch"],
                "meaning": "number of real items in the window; 1 for an empty history",
            },
        ],
        "outputs": [
            {
                "name": OUTPUT,
                "dtype": "float32",
                "shape": ["batch", n_items],
                "meaning": "a score per catalogue item, column j = items.json[j]; higher = better "
                "(rank by descending score); the pad id has no column",
            }
        ],
        "n_items": n_items,
        "state_size": state_size,
        "pad_id": pad_id,
        "state_rule": {
            "item_index": "an item's index is its position in items.json; ids not in items.json "
            "are unknown to the model (leave them out or reject the request)",
            "order": "oldest first",
            "window": f"only the last {state_size} items of a history are used; older ones are "
            "dropped",
            "padding": f"right: the window's m = min(len(history), {state_size}) items fill "
            f"positions 0..m-1 in order, every later position holds the pad id {pad_id}",
            "len_state": f"m = min(len(history), {state_size}), but 1 for an empty history "
            "(whose state is all pad)",
            "examples": examples,
        },
        "items": {
            "json": ITEMS_JSON,
            "parquet": "items.parquet",
            "meaning": "raw item id of each score column (items.parquet: columns item = column, "
            "item_id = raw id)",
        },
        "run": run,
        "rlrec_version": __version__,
        "parity": parity,
    }


def _run_facts(
    run_dir: Path, checkpoint: str, cfg: TrainConfig, meta: dict[str, Any]
) -> dict[str, Any]:
    """The run part of the contract: which run, method, encoder and checkpoint (with its step);
    ``meta`` is :func:`rlrec.serve.inference.load_run`'s."""
    return {
        "name": run_dir.resolve().name,
        "path": str(run_dir.resolve()),
        "method": cfg.objective.kind,
        "encoder": cfg.encoder.kind,
        "eval_head": cfg.objective.eval_head,
        "checkpoint": checkpoint,
        "checkpoint_step": meta["checkpoint"]["step"],
        "dataset_content_hash": meta.get("dataset_content_hash"),
    }


def export_run(
    run_dir: Path,
    fmt: Format,
    out_dir: Path,
    checkpoint: str = "best",
    overwrite: bool = False,
    check_samples: int = 256,
    seed: int = 0,
    index: Literal["auto", "exact", "faiss"] = "exact",
    index_threshold: int = 100_000,
) -> dict[str, Any]:
    """Export ``run_dir``'s scoring network (``checkpoint``: best, latest or a checkpoint
    directory) as ``fmt`` into the new directory ``out_dir``; returns the parity check (with the
    index's part under ``"index"`` when one is exported).

    ``index``: ``faiss`` adds an approximate top-k index (:func:`_export_index`); ``auto`` adds it
    from ``index_threshold`` items on when the ``faiss`` extra is installed and its recall@10
    reaches 0.95, as ``rlrec serve`` decides.

    Raises :class:`ExportError` (format, packages), :class:`ParityError` (the exported model does
    not reproduce PyTorch; nothing is written), or the run's and the output's own
    :class:`~rlrec.errors.RlrecError` (not a run directory, no such checkpoint, ``out_dir`` exists).
    """
    fmt = check_format(fmt)
    if check_samples < 1:
        raise ExportError(f"check_samples must be at least 1, got {check_samples}")
    if fmt == "onnx":
        require()
    from rlrec.models.network import ScoringNetwork
    from rlrec.outputs import MARKER, check_output, new_output
    from rlrec.serve.inference import Recommender, history_states, load_run, read_items
    from rlrec.train.trainer import ITEMS

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_output(out_dir, KIND, overwrite=overwrite, inputs=[run_dir])  # refuse before loading
    cfg, net, meta = load_run(run_dir, checkpoint, "cpu")
    n_items, state_size = meta["n_items"], meta["state_size"]
    pad_id = net.encoder.pad_id
    items = read_items(run_dir, n_items)
    raw_ids = items.sort("item").get_column("item_id").to_list()
    run = _run_facts(run_dir, checkpoint, cfg, meta)
    rec = Recommender(cfg, net, items, state_size)
    index_note = rec.choose_index(index, index_threshold)
    model = ScoringNetwork(net, cfg.objective.eval_head).eval().requires_grad_(False)
    # batch 2 (batch 1 would be frozen by torch.export), one short history and one empty one
    example = history_states([list(range(min(3, n_items, state_size))), []], state_size, pad_id)
    with new_output(out_dir, KIND, overwrite=overwrite, inputs=[run_dir]) as tmp:
        path = tmp / MODEL_FILE[fmt]
        write = _write_torchscript if fmt == "torchscript" else _write_onnx
        exporter = write(model, example, path)
        try:
            parity = check_parity(
                model,
                load_exported(path, fmt),
                n_items=n_items,
                state_size=state_size,
                pad_id=pad_id,
                samples=check_samples,
                seed=seed,
            )
        except ParityError as exc:
            raise ParityError(f"{out_dir}: {exc}; nothing was written") from None
        parity["runtime"] = "torch.jit.load" if fmt == "torchscript" else _ort_runtime()
        if not parity["passed"]:
            raise ParityError(
                f"{out_dir}: the exported {fmt} model does not reproduce PyTorch on "
                f"{check_samples} random histories (max |Δscore| {parity['max_abs_diff']:.3g}, "
                f"tolerance {parity['tolerance']:.3g}; top-{parity['top_k']} differs in "
                f"{parity['top_k_mismatches']}); nothing was written"
            )
        index_part = None
        if rec.ann is not None:
            index_part = _export_index(rec, fmt, tmp, example, check_samples, seed)
            index_part["chosen"] = index_note
            parity["index"] = index_part["parity"]
        shutil.copyfile(run_dir / ITEMS, tmp / ITEMS)
        (tmp / ITEMS_JSON).write_text(json.dumps(raw_ids, ensure_ascii=False) + "\n")
        files = sorted(
            {*(p.name for p in tmp.iterdir() if p.name != MARKER), ITEMS, ITEMS_JSON, CONTRACT}
        )
        contract = _contract(
            fmt,
            files,
            exporter,
            parity,
            run=run,
            n_items=n_items,
            state_size=state_size,
            pad_id=pad_id,
        )
        if index_part is not None:
            contract["index"] = index_part
        (tmp / CONTRACT).write_text(json.dumps(contract, indent=2, ensure_ascii=False) + "\n")
    return parity


def _export_index(
    rec: Any,
    fmt: Format,
    tmp: Path,
    example: tuple[torch.Tensor, torch.Tensor],
    samples: int,
    seed: int,
) -> dict[str, Any]:
    """Write the approximate top-k part of an export into ``tmp`` and describe it: the encoder
    alone (``state.*``: history → query vector ``[B, H]``, :class:`~rlrec.models.network.StateNetwork`),
    ``items.faiss`` (``rec.ann``'s HNSW graph over the head's MIPS-transformed rows,
    :mod:`rlrec.serve.ann`, breadth calibrated to recall@10 ≥ 0.95) and ``head.safetensors``
    (``weight [n, H]``, ``bias [n]``: the exact scores of the candidates).

    Checked before it is kept: the exported encoder reproduces PyTorch's states on
    :func:`random_histories` within :data:`TOLERANCE` (batch 1 and batched), and the index read
    back from its file returns the same candidates as the one in memory.
    """
    import faiss
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from rlrec.models.network import StateNetwork
    from rlrec.serve.inference import history_states

    model = StateNetwork(rec.net).eval().requires_grad_(False)
    path = tmp / STATE_FILE[fmt]
    write = _write_torchscript if fmt == "torchscript" else _write_onnx
    exporter = write(model, example, path, STATE_OUTPUT)
    exported = load_exported(path, fmt, output=STATE_OUTPUT)
    n_items, pad_id = len(rec.raw_ids), rec.net.encoder.pad_id
    histories = random_histories(n_items, rec.state_size, samples, seed)
    state, len_state = history_states(histories, rec.state_size, pad_id)
    with torch.inference_mode():
        expected = model(state, len_state)
    arrays = (state.numpy(), len_state.numpy())
    got = np.concatenate(
        [exported(*(a[rows] for a in arrays)) for rows in (slice(0, 1), slice(1, None))]
    )
    max_diff = float((torch.from_numpy(got) - expected).abs().max())
    tolerance = TOLERANCE * max(1.0, float(expected.abs().max()))
    if got.shape != tuple(expected.shape) or not max_diff <= tolerance:
        raise ParityError(
            f"the exported encoder does not reproduce PyTorch's states (shape {got.shape}, "
            f"max |Δ| {max_diff:.3g}, tolerance {tolerance:.3g}); nothing was written"
        )
    faiss.write_index(rec.ann.index, str(tmp / INDEX_FILE))
    reread = faiss.read_index(str(tmp / INDEX_FILE))
    query = np.ascontiguousarray(
        np.concatenate(
            [got, np.ones((len(got), 1), np.float32), np.zeros((len(got), 1), np.float32)], 1
        )
    )
    same = bool((reread.search(query, TOP_K)[1] == rec.ann.index.search(query, TOP_K)[1]).all())
    if not same:
        raise ParityError(
            "the index read back from items.faiss answers differently; nothing was written"
        )
    head = rec.net.head_layer(rec.cfg.objective.eval_head)
    save_file(
        {
            "weight": head.weight.detach().float().cpu().contiguous(),
            "bias": head.bias.detach().float().cpu().contiguous(),
        },
        tmp / HEAD_FILE,
    )
    hnsw = rec.ann.index.hnsw
    return {
        "files": [STATE_FILE[fmt], INDEX_FILE, HEAD_FILE],
        "state_model": {
            "file": STATE_FILE[fmt],
            "inputs": "as the scoring model (state, len_state)",
            "output": {
                "name": STATE_OUTPUT,
                "dtype": "float32",
                "shape": ["batch", expected.shape[1]],
            },
            "exporter": exporter,
        },
        "kind": "faiss.IndexHNSWFlat",
        "hnsw_m": rec.ann.m,
        "ef_search": int(hnsw.efSearch),
        "query_rule": "search items.faiss with [query, 1, 0] (the state model's output, then 1 "
        "and 0: dimension H + 2); the index holds item i as [weight_i, bias_i, "
        "sqrt(R^2 - |[weight_i, bias_i]|^2)] with R the largest such norm, so the nearest items "
        "in L2 are those of the largest score query . weight_i + bias_i",
        "rescore": "score each candidate exactly, query . weight[i] + bias[i] (head.safetensors), "
        "and rank by descending score, equal scores by lower index; fetch k plus the history's "
        "length when the history's own items are to be left out",
        "recall_at_10": rec.index_recall,
        "parity": {
            "samples": samples,
            "state_max_abs_diff": max_diff,
            "state_tolerance": tolerance,
            "reloaded_index_identical": same,
            "recall_at_10": rec.index_recall,
        },
    }


def _ort_runtime() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} CPUExecutionProvider"


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by rlrec train.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="torchscript or onnx", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Export directory to write.", show_default=False)
    ],
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, latest or a checkpoint directory")
    ] = "best",
    overwrite: OverwriteOpt = False,
    index: IndexOpt = "auto",
    index_threshold: IndexThresholdOpt = 100_000,
) -> None:
    """Export the scoring network as TorchScript or ONNX, with its item map and input contract,
    checked against PyTorch (see docs/export.md); from --index-threshold items on also the encoder
    and a FAISS index for approximate top-k (--index)."""
    mode = check_index(index)
    with stages("exporting") as advance:
        advance(f"exporting {format} and checking it against PyTorch")
        parity = export_run(
            run_dir,
            format,  # type: ignore[arg-type]
            out,
            checkpoint,
            overwrite,
            index=mode,
            index_threshold=index_threshold,
        )
    files = json.loads((out / CONTRACT).read_text())["files"]
    console.print(f"wrote {out}: {', '.join(files)}")
    console.print(
        f"checked on {parity['samples']} random histories: max |Δscore| "
        f"{parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:.1e}), "
        f"top-{parity['top_k']} identical {parity['top_k_identical']}/{parity['samples']}"
    )
    if "index" in parity:
        console.print(
            f"FAISS index: recall@10 {parity['index']['recall_at_10']:.3f} against the exact "
            f"top 10; encoder max |Δ| {parity['index']['state_max_abs_diff']:.2e}"
        )
