"""Simulator throughput: user-steps per second of the batched list-recommendation simulator.

Target (issue 6): ≥ 100,000 user-steps/s for 1,024 parallel users on 2 CPU cores, slates of 10 from
≥ 3,000 items, scaling linearly with the batch until memory bound.

Setup: a URM of the reference size (width 32, 4 heads, user MLP [128], history window H = 50, padding
mask) with random weights, shifted so that about 85 % of the shown items are clicked (sessions of
about 10 steps, as in P-HAC's Table 2); 3,000 items with
32-d codes; a start pool of 5,000 users whose histories are **full** (50 items), so every step pays
the whole H×H self-attention (the worst case; short histories are cheaper). Slates of 10 distinct
items are drawn in advance, so only the simulator is timed: scoring, Bernoulli responses, reward,
temper, history update, refills and the URM interest of every user whose history changed. About a
tenth of the sessions end at each step and are refilled in the same step (column "ended/step").

Also printed: the share of the time spent recomputing the URM's user interest (history
self-attention + user→history attention), the rate the rest of the simulator would reach without it,
and the rate with a shorter history window (H = 10), to show where the time goes.

The history attention runs both ways, alternating in one run: PyTorch's operators (``torch``) and
the fused numba kernel (``numba``, :mod:`rlrec.sim.fused_attention`; needs ``rlrec[fast]``).

    .venv/bin/python benchmarks/sim_throughput.py [--threads 2] [--steps 30] [--items 3000]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rlrec.sim.env import EnvConfig, ListRecSimulator, StartPool
from rlrec.sim.urm import URM, URMConfig


def build(
    num_envs: int, n_items: int, max_history: int, kernel: str = "torch", seed: int = 0
) -> ListRecSimulator:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    urm = URM(URMConfig(max_history=max_history), user_dim=8, item_dim=32).eval()
    assert urm.fuse is not None
    with torch.no_grad():
        urm.fuse.weight.mul_(4.0)  # logits of std ≈ 1.5
        shift = torch.zeros(32)
        shift[0] = 2.0  # adds ≈ 4 to every logit: ≈ 85 % positives
        urm.item_embed.bias.add_(shift)
        urm.fuse.bias.add_(shift)
    items = torch.cat([torch.zeros(1, 32), torch.randn(n_items, 32, generator=g)])
    users = torch.randn(5000, 8, generator=g)
    pool = StartPool(
        torch.arange(5000),
        torch.randint(1, n_items + 1, (5000, max_history), generator=g),
        torch.ones(5000, max_history, dtype=torch.bool),
        torch.full((5000,), float(max_history)),  # response counts: every item shown was liked
        torch.full((5000,), float(max_history)),
    )
    cfg = EnvConfig(zero_reward_cost=0.1, attention_kernel=kernel)
    return ListRecSimulator(
        urm, items, users, pool, num_envs=num_envs, slate_size=10, cfg=cfg, seed=seed
    )


def slates(num_envs: int, n_items: int, count: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(num_envs, n_items, generator=g).argsort(1)[:, :10] + 1 for _ in range(count)]


def measure(
    num_envs: int, n_items: int, steps: int, max_history: int, kernel: str
) -> dict[str, float]:
    sim = build(num_envs, n_items, max_history, kernel)
    bank = slates(num_envs, n_items, 8)
    sim.reset(seed=0)
    for i in range(3):  # warm-up
        sim.step(bank[i % len(bank)])
    spent = {"urm": 0.0}
    inner = sim._refresh_interest

    def timed(rows, shift=None):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        inner(rows, shift)
        spent["urm"] += time.perf_counter() - t

    sim._refresh_interest = timed  # type: ignore[method-assign]
    ended = 0
    t0 = time.perf_counter()
    for i in range(steps):
        out = sim.step(bank[i % len(bank)])
        ended += int(out.done.sum())
    elapsed = time.perf_counter() - t0
    return {
        "rate": num_envs * steps / elapsed,
        "ms": elapsed / steps * 1000,
        "urm_share": spent["urm"] / elapsed,
        "rate_without_urm": num_envs * steps / (elapsed - spent["urm"]),
        "ended_per_step": ended / steps / num_envs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--batches", type=int, nargs="*", default=[128, 256, 512, 1024, 2048, 4096])
    parser.add_argument(
        "--kernels", nargs="*", default=["torch", "numba"], choices=["torch", "numba"]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
        f"load average {load:.2f}; {args.items} items, slates of 10"
    )
    print(
        "| attention | users | H | user-steps/s | ms/step | URM attention share "
        "| user-steps/s without URM attention | ended/step |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for h in (50, 10):
        for b in args.batches if h == 50 else [1024]:
            for kernel in args.kernels:  # alternating, so both meet the same machine state
                r = measure(b, args.items, args.steps, h, kernel)
                print(
                    f"| {kernel} | {b:,} | {h} | {r['rate']:,.0f} | {r['ms']:.1f} "
                    f"| {r['urm_share']:.0%} "
                    f"| {r['rate_without_urm']:,.0f} | {r['ended_per_step']:.1%} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
