"""Device choice (CUDA automatically when present, CPU otherwise), CPU threads and the allocator."""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import torch

from rlrec.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; ``cpu``/``cuda``/``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return device


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, quota) if quota else n)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """``ceil(quota / period)`` of cgroup v2 ``cpu.max`` or v1 ``cpu/cpu.cfs_quota_us``, if limited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def set_threads(requested: int | None) -> int:
    """Set torch's CPU threads: ``requested``, else torch's default capped by
    :func:`available_cpus` (torch counts the machine's cores, not the container's share)."""
    threads = requested or min(torch.get_num_threads(), available_cpus())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def keep_freed_memory() -> None:
    """Let glibc's ``malloc`` keep freed blocks up to 32 MiB for reuse (no ``mmap``/``munmap`` per
    tensor, no trimming of the heap).

    A training step allocates and frees the same large tensors (``[B, n_items]`` logits and their
    gradients) every time; by default each is a fresh ``mmap`` whose pages fault in on first
    touch — hundreds of page faults per step, about 10 % of a SASRec step on 2 cores
    (benchmarks/README.md). Changes no result; a no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    mallopt(m_trim_threshold, 1 << 30)
