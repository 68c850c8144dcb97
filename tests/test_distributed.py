"""Data-parallel training: 2 processes (torchrun, gloo on CPU) = 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from conftest import tiny_train_config
from safetensors.torch import load_file

from rlrec.config import config_to_yaml


def test_two_processes_match_one(tiny_dataset: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    final = {}
    for name, launcher in (
        ("one", [sys.executable, "-m", "rlrec"]),
        (
            "two",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "rlrec",
            ],
        ),
    ):
        cfg = tiny_train_config(
            tiny_dataset,
            tmp_path / name,
            objective={"kind": "snqn"},  # GRU has no dropout: the runs can agree to rounding
            train={
                "batch_size": 32,
                "max_steps": 12,
                "eval_every": 12,
                "log_every": 4,
                "tensorboard": False,
            },
        )
        path = tmp_path / f"{name}.yaml"
        path.write_text(config_to_yaml(cfg))
        proc = subprocess.run(
            [*launcher, "train", "--config", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        final[name] = load_file(
            str(tmp_path / name / "checkpoints" / "step_000000012" / "model.safetensors")
        )
        summary = yaml.safe_load((tmp_path / name / "summary.json").read_text())
        assert summary["world_size"] == (1 if name == "one" else 2)
    assert final["one"].keys() == final["two"].keys()
    for key in final["one"]:
        assert torch.allclose(final["one"][key], final["two"][key], atol=1e-5, rtol=1e-4), key
