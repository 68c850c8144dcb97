"""Data-parallel training: 2 processes (torchrun, gloo on CPU) = 1 process with the same global batch,
for every objective, with dropout, augmentations, sampled negatives and the global-batch terms
(contrastive negatives, SAC's legacy batch mean) that make the split visible if it is done wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from rlrec.config import config_to_yaml

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
STEPS = 8
SWITCH = {"warmup_steps": 4}  # SAC/CO/CCQL reach their second phase within the run
SASREC = {"kind": "sasrec", "hidden": 16, "dropout": 0.3}

# name → (encoder, objective): every objective kind, and each term that could depend on the split
CASES: dict[str, tuple[dict, dict]] = {
    "supervised_sasrec": (SASREC, {"kind": "supervised"}),
    "sqn_caser": ({"kind": "caser", "hidden": 16, "dropout": 0.3}, {"kind": "sqn"}),
    "dqn_nextitnet": ({"kind": "nextitnet", "hidden": 16}, {"kind": "dqn"}),
    "snqn_target_dropout": (
        SASREC,
        {"kind": "snqn", "target_dropout": True, "exclude_history": True},
    ),
    "sac_legacy_batch_mean_polyak": (
        SASREC,
        {
            "kind": "sac",
            **SWITCH,
            "sac_weighting": "legacy_batch_mean",
            "double_q_mode": "polyak",
        },
    ),
    "sa2c_ips": (
        {"kind": "gru", "hidden": 16},
        {"kind": "sa2c", "pretrain_steps": 4, "ips_smooth": 0.5},
    ),
    "co_nt_xent_two_crops": (
        SASREC,
        {
            "kind": "co",
            **SWITCH,
            "contrastive": {"augmentation": "crop", "both_views_augmented": True},
        },
    ),
    "co_ts2vec_permutation_legacy": (
        SASREC,
        {
            "kind": "co",
            **SWITCH,
            "sac_weighting": "legacy_batch_mean",
            "contrastive": {"loss": "ts2vec_legacy", "augmentation": "permutation_legacy"},
        },
    ),
    "ccql_sampled_mask_negative_td": (
        SASREC,
        {"kind": "ccql", **SWITCH, "negative_td": True, "contrastive": {"augmentation": "mask"}},
    ),
    "ccql_legacy_reorder": (SASREC, {"kind": "ccql", **SWITCH, "cql_variant": "legacy"}),
    "ccql_full": (SASREC, {"kind": "ccql", **SWITCH, "cql_variant": "full"}),
}


def _config(data: Path, out: Path, encoder: dict, objective: dict) -> str:
    cfg = tiny_train_config(
        data,
        out,
        encoder=encoder,
        objective=objective,
        train={"batch_size": 32, "max_steps": STEPS, "eval_every": STEPS, "log_every": 1},
    )
    return config_to_yaml(cfg)


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{STEPS:09d}" / "model.safetensors"))


def _train_logs(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "train"]


def _assert_same(one: Path, two: Path) -> None:
    """Every step's logged loss terms agree to rounding, and so do the final weights. The weights'
    tolerance is Adam's: a parameter whose gradient is ≈ 1e-10 (pure rounding, below Adam's ε)
    still moves by up to ``lr·|g|/ε`` ≈ 1e-4 in a direction set by that rounding."""
    a, b = _final(one), _final(two)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=5e-4, rtol=1e-4), key
    for x, y in zip(_train_logs(one), _train_logs(two), strict=True):
        # (q_abs_max, the window mean of each step's largest |Q|, is only bounded: see window_across)
        for key in (
            "loss",
            "ce",
            "contrastive",
            "cql",
            "td_pos",
            "td_neg",
            "q_max",
            "actor_weight",
        ):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-6), (x["step"], key)
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2


@pytest.fixture(scope="module")
def runs(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case trained once alone and once on 2 processes (one launch each)."""
    root = tmp_path_factory.mktemp("dp")
    for world in ("one", "two"):
        paths = []
        for name, (encoder, objective) in CASES.items():
            path = root / f"{name}_{world}.yaml"
            path.write_text(_config(tiny_dataset, root / world / name, encoder, objective))
            paths.append(str(path))
        worker = str(Path(__file__).with_name("dp_worker.py"))
        _run([*TORCHRUN, worker, *paths] if world == "two" else [sys.executable, worker, *paths])
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_match_one(runs: Path, name: str) -> None:
    _assert_same(runs / "one" / name, runs / "two" / name)


def test_torchrun_rlrec_train_matches_one_process(tiny_dataset: Path, tmp_path: Path) -> None:
    """The user's path: ``torchrun … -m rlrec train`` (SASRec-CCQL with dropout, the default
    paper form: sampled negatives outside the history, NT-Xent on reorders)."""
    for world, launcher in (("one", [sys.executable]), ("two", TORCHRUN)):
        path = tmp_path / f"{world}.yaml"
        path.write_text(_config(tiny_dataset, tmp_path / world, SASREC, {"kind": "ccql", **SWITCH}))
        _run([*launcher, "-m", "rlrec", "train", "--config", str(path)])
    _assert_same(tmp_path / "one", tmp_path / "two")


def test_a_two_process_run_resumes_on_one_process(tiny_dataset: Path, tmp_path: Path) -> None:
    """Resume on another world size: a run started on 2 processes, interrupted after its step-4
    checkpoint (the later files removed, as a kill leaves it), continues on 1 process and ends
    where the uninterrupted 2-process run ends."""
    import shutil

    for name in ("full", "cut"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            _config(tiny_dataset, tmp_path / name, SASREC, {"kind": "snqn"}).replace(
                f"eval_every: {STEPS}", "eval_every: 4"
            )
        )
        _run([*TORCHRUN, "-m", "rlrec", "train", "--config", str(path)])
    cut = tmp_path / "cut"
    shutil.rmtree(cut / "checkpoints" / f"step_{STEPS:09d}")
    (cut / "checkpoints" / "latest.json").write_text(
        json.dumps({"checkpoint": "step_000000004", "step": 4})
    )
    (cut / "summary.json").unlink()
    _run(
        [sys.executable, "-m", "rlrec", "train", "--config", str(tmp_path / "cut.yaml"), "--resume"]
    )
    a, b = _final(tmp_path / "full"), _final(cut)
    assert all(torch.allclose(a[k], b[k], atol=5e-4, rtol=1e-4) for k in a)
    assert json.loads((cut / "summary.json").read_text())["world_size"] == 1
