"""The optional numba kernels' plumbing: whether numba is installed, and its thread count.

rlrec's CPU kernels (:mod:`rlrec.sim.fused_attention`, :mod:`rlrec.online.fused_attention`) are
compiled with numba when it is installed (``pip install "rlrec[fast]"``); nothing imports numba until
a kernel is first used. numba keeps its own thread pool, which each call sizes to torch's intra-op
thread count so that ``train.num_threads`` holds for both.

With numba's OpenMP threading layer the two share one OpenMP runtime, and starting numba's pool sets
the process's OpenMP thread count to the pool's size — torch's count with it (a run asked for one
thread then computed with two, and its multi-threaded reductions differed from the single-threaded
ones). :func:`match_torch_threads` puts torch's count back.
"""

from __future__ import annotations

import importlib.util

import torch


def available() -> bool:
    """Whether numba can be imported (a kernel compiles on first use, then numba caches it on disk)."""
    return importlib.util.find_spec("numba") is not None


def match_torch_threads() -> int:
    """Set numba's thread count to torch's (at most numba's pool size) and return it."""
    import numba

    wanted = torch.get_num_threads()
    most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    threads = max(1, min(wanted, most))
    numba.set_num_threads(threads)  # the first call starts numba's pool
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return threads
