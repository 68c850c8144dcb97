"""The same seed gives the same weights on CPU with more than one thread, and numba's thread pool
leaves torch's thread count as the run set it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config

from rlrec import numba_support
from rlrec.models.network import rows
from rlrec.online.agents import CONFIG_OF
from rlrec.online.buffer import Batch

N, K, H, DIM, B = 300, 5, 50, 32, 64  # the history gather is B·H·DIM = 102,400 elements


def batch(seed: int) -> Batch:
    """``B`` transitions over ``N`` items with full windows of ``H``: many repeated item ids."""
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, N + 1, (B, H), generator=g)
    next_history = torch.cat([history[:, 1:], torch.randint(1, N + 1, (B, 1), generator=g)], 1)
    return Batch(
        user=torch.randint(0, 7, (B,), generator=g),
        history=history,
        next_history=next_history,
        state=torch.randn(B, DIM, generator=g),
        hyper=torch.randn(B, DIM, generator=g),
        slate=torch.randint(1, N + 1, (B, K), generator=g),
        response=(torch.rand(B, K, generator=g) < 0.3).float(),
        reward=torch.rand(B, generator=g),
        terminated=torch.zeros(B, dtype=torch.bool),
        truncated=torch.zeros(B, dtype=torch.bool),
    )


@pytest.fixture
def two_threads():  # type: ignore[no-untyped-def]
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("sparse", [False, True])
def test_head_rows_have_a_reproducible_gradient(two_threads: None, sparse: bool) -> None:
    """The offline heads' rows at sampled items (256 × 200 lookups of 64-wide rows, every item
    repeated): ten backward passes give bitwise the same weight and bias gradients."""
    head = torch.nn.Linear(64, 300)
    items = torch.randint(0, 300, (256, 200), generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(256, 200, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for _ in range(10):
        head.zero_grad(set_to_none=True)
        weight, bias = rows(head, items, sparse)
        ((weight * upstream).sum(-1) + bias).square().sum().backward()
        assert head.weight.grad is not None and head.bias.grad is not None
        grads.append((head.weight.grad.to_dense(), head.bias.grad))
    for w, b in grads[1:]:
        assert torch.equal(w, grads[0][0]) and torch.equal(b, grads[0][1])


@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_hac_updates_are_bitwise_reproducible_on_two_threads(
    two_threads: None, kernel: str
) -> None:
    """Three HAC runs of three updates each from one seed, torch on two threads: identical actor
    and critic weights, and identical gradients of the last actor step (Adam's first steps move a
    weight by about ±lr whatever the last bits of its gradient, so the weights alone hide them).
    Gathering the kernel table by advanced indexing failed this: its backward adds repeated ids'
    gradients with atomics across threads, in an order that varies."""
    if kernel == "numba" and not numba_support.available():
        pytest.skip("numba is not installed")
    items = torch.randn(N + 1, 6, generator=torch.Generator().manual_seed(0))
    items[0] = 0.0
    users = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    spec = {"policy": {"dim": DIM, "max_history": H, "attention_kernel": kernel}}
    runs = []
    for _ in range(3):
        torch.manual_seed(0)
        agent = CONFIG_OF["hac"].model_validate(spec).create(items, users, K)
        gen = torch.Generator().manual_seed(0)
        for step in range(3):
            agent.update(batch(step), step, gen)
        grads = {
            f"{k}.grad": p.grad for k, p in agent.actor.named_parameters() if p.grad is not None
        }
        runs.append({**agent.actor.state_dict(), **agent.critic.state_dict(), **grads})
    for other in runs[1:]:
        assert [k for k, v in runs[0].items() if not torch.equal(v, other[k])] == []


def test_starting_numbas_pool_keeps_torchs_thread_count() -> None:
    """In a fresh process (numba's pool not started yet): torch asked for one thread still has one
    after the first kernel call sized numba's pool (with numba's OpenMP layer, starting the pool
    used to set the shared OpenMP count to the pool's size)."""
    if not numba_support.available():
        pytest.skip("numba is not installed")
    code = (
        "import torch, numba\n"
        "from rlrec.numba_support import match_torch_threads\n"
        "torch.set_num_threads(1)\n"
        "assert match_torch_threads() == 1\n"
        "print(torch.get_num_threads(), numba.threading_layer())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert out[0] == "1", out


def test_an_offline_run_repeats_bit_for_bit_on_two_threads(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """``rlrec train``'s trainer twice from one seed, two threads: SA2C on SASRec with 10 sampled
    negatives per transition (the heads' rows gathered at 256 × 11 items): every saved tensor of the
    two runs is equal. (Both runs' weights differed before the gather's backward was made ordered.)"""
    from safetensors.torch import load_file

    from rlrec.train.trainer import Trainer

    saved = torch.get_num_threads()
    try:
        for name in ("a", "b"):
            cfg = tiny_train_config(
                tiny_dataset,
                tmp_path / name,
                encoder={"kind": "sasrec", "hidden": 64},
                objective={"kind": "sa2c", "pretrain_steps": 10, "num_negatives": 10},
                train={"batch_size": 256, "max_steps": 24, "eval_every": 12, "num_threads": 2},
            )
            Trainer(cfg).fit()
    finally:
        torch.set_num_threads(saved)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.safetensors"))
    assert files
    for f in files:
        a, b = load_file(tmp_path / "a" / f), load_file(tmp_path / "b" / f)
        assert [k for k in a if not torch.equal(a[k], b[k])] == [], f
