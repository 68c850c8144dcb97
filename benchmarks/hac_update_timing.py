"""HAC's update alone, per attention path, alternating in one process on one agent.

Whole-run timings (``hac_table2.py --timing``) move by ±10 % between runs on a shared 2-core machine,
more than the attention path changes; here one HAC agent with the ML-100K shapes (1,682 items, 943
users, K = 10, H = 50, batch 64, the shipped ``configs/sim/agents/hac.yaml`` widths) runs
``--rounds`` rounds of two updates per path, the paths taking turns, so that a drift of the machine
meets every path alike; glibc keeps freed blocks, as in the online trainer (without that the torch
path's large temporaries fault in fresh pages after each kernel round, which made it look 1.1–1.2×
slower). Paths: ``torch`` (PyTorch's operators), ``kernel`` (the fused kernel for attention with
dropout, ``scaled_dot_product_attention`` without, as shipped), and ``kernel_always`` (the kernel
for every attention pass, as before 2026-12-04). Prints the median update time of each.

    .venv/bin/python benchmarks/hac_update_timing.py [--rounds 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import cast

import torch

from rlrec.device import keep_freed_memory
from rlrec.models.dropout import dropout_words
from rlrec.online import layers
from rlrec.online.agents import CONFIG_OF, HAC
from rlrec.online.buffer import Batch

N_ITEMS, N_USERS, K, H, DIM, B = 1682, 943, 10, 50, 32, 64


def batch(seed: int) -> Batch:
    """``B`` replayed transitions with left-padded histories: half full windows of ``H``, half of
    uniform lengths 1..H−1, like the replay buffer of an ML-100K HAC run (measured there: mean 35.9
    items, 49 % full windows). The kernel visits only a row's open keys, so shorter histories would
    favour it."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, H, (B,), generator=g)
    lengths[torch.rand(B, generator=g) < 0.5] = H
    history = torch.randint(1, N_ITEMS + 1, (B, H), generator=g)
    history = torch.where(torch.arange(H)[None] >= H - lengths[:, None], history, 0)
    last = torch.randint(1, N_ITEMS + 1, (B, 1), generator=g)
    return Batch(
        user=torch.randint(0, N_USERS, (B,), generator=g),
        history=history,
        next_history=torch.cat([history[:, 1:], last], 1),
        state=torch.randn(B, DIM, generator=g),
        hyper=torch.randn(B, DIM, generator=g),
        slate=torch.randint(1, N_ITEMS + 1, (B, K), generator=g),
        response=(torch.rand(B, K, generator=g) < 0.3).float(),
        reward=torch.rand(B, generator=g),
        terminated=torch.zeros(B, dtype=torch.bool),
        truncated=torch.zeros(B, dtype=torch.bool),
    )


@contextmanager
def kernel_for_every_pass() -> Iterator[None]:
    """The layers' attention as before 2026-12-04: the kernel also without dropout."""
    shipped = layers.TransformerLayer._attend

    def attend(
        self: layers.TransformerLayer,
        q_src: torch.Tensor,
        kv_src: torch.Tensor | None,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        if not self.fused:
            return shipped(self, q_src, kv_src, bias)
        q, k, _ = layers.unpack(q_src, kv_src)
        shape = (q.shape[0], q.shape[2], q.shape[1], k.shape[1])
        words = dropout_words(shape) if self.training and self.p > 0 else None
        return layers.fused_attention(q_src, kv_src, bias, words, self.p)

    layers.TransformerLayer._attend = attend  # type: ignore[method-assign]
    try:
        yield
    finally:
        layers.TransformerLayer._attend = shipped  # type: ignore[method-assign]


def make_agent(attention_kernel: str) -> HAC:
    """A HAC agent (seed 0) over random item (20) and user (30) features of the ML-100K sizes."""
    g = torch.Generator().manual_seed(0)
    items = torch.cat([torch.zeros(1, 20), torch.randn(N_ITEMS, 20, generator=g)])
    users = torch.randn(N_USERS, 30, generator=g)
    torch.manual_seed(0)
    spec = {"policy": {"dim": DIM, "max_history": H, "attention_kernel": attention_kernel}}
    return cast(HAC, CONFIG_OF["hac"].model_validate(spec).create(items, users, K))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the online trainer: without it the torch path's temporaries fault pages
    agent = make_agent("numba")
    gen = torch.Generator().manual_seed(0)
    batches = [batch(s) for s in range(2)]
    times: dict[str, list[float]] = {"torch": [], "kernel": [], "kernel_always": []}
    step = 0
    for _ in range(args.rounds):
        for path, seconds in times.items():
            for net in (agent.actor, agent.actor_target):
                for layer in net.layers:
                    layer.fused = path != "torch"
            with kernel_for_every_pass() if path == "kernel_always" else nullcontext():
                t0 = time.perf_counter()
                for b in batches:
                    agent.update(b, step, gen)
                    step += 1
                seconds.append((time.perf_counter() - t0) / len(batches))
    warm = max(1, args.rounds // 10)
    medians = {path: statistics.median(s[warm:]) for path, s in times.items()}
    print(f"HAC update (ML-100K shapes, batch {B}, H = {H}), {args.threads} thread(s), "
          f"median of {args.rounds - warm} rounds:")  # fmt: skip
    for path, seconds in medians.items():
        print(f"  {path:14s} {1e3 * seconds:6.2f} ms  ({medians['torch'] / seconds:.2f}× torch)")


if __name__ == "__main__":
    main()
