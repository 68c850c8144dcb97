"""The simulator's per-step numba kernels (hashing, history update) against PyTorch and plain Python."""

from __future__ import annotations

import pytest
import torch

from rlrec.sim import functional as Fn
from rlrec.sim import fused_attention

needs_numba = pytest.mark.skipif(not fused_attention.available(), reason="numba not installed")

M32 = 0xFFFFFFFF


def fmix32(x: int) -> int:
    """MurmurHash3's finaliser in Python integers (the definition)."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & M32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & M32
    return x ^ (x >> 16)


def combine(a: int, b: int) -> int:
    return fmix32(a ^ fmix32(((b & M32) * 0x9E3779B1 + 0x7F4A7C15) & M32))


@pytest.fixture(params=["numba", "torch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on each path: the numba kernels (CPU default) and the PyTorch operators."""
    if request.param == "numba" and not fused_attention.available():
        pytest.skip("numba not installed")
    if request.param == "torch":
        monkeypatch.setattr(Fn, "_step_kernels", lambda x: None)
    return str(request.param)


def test_hash_combine_is_murmur3_of_the_pair(path: str) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.cat([torch.tensor([0, 1, M32]), torch.randint(0, 2**32, (200,), generator=gen)])
    b = torch.cat(
        [torch.tensor([0, M32, 7]), torch.randint(-(2**40), 2**40, (200,), generator=gen)]
    )
    got = Fn.hash_combine(a, b)
    assert got.dtype == torch.int64
    assert got.tolist() == [combine(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert Fn.hash_combine(a, 12345).tolist() == [combine(x, 12345) for x in a.tolist()]
    assert int(Fn.hash_combine(torch.tensor(5), 9)) == combine(5, 9)  # 0-d


def test_hash_uniform_broadcasts_like_the_simulator(path: str) -> None:
    """``hash_uniform(episode key (B, 1), depth (B, 1), slate (B, K))``: 24 bits of the hash."""
    gen = torch.Generator().manual_seed(1)
    key = torch.randint(0, 2**32, (6, 1), generator=gen)
    depth = torch.randint(0, 20, (6, 1), generator=gen)
    slate = torch.randint(1, 3000, (6, 4), generator=gen)
    got = Fn.hash_uniform(key, depth, slate)
    assert got.shape == (6, 4) and got.dtype == torch.float32
    for i in range(6):
        for j in range(4):
            h = combine(combine(int(key[i, 0]), int(depth[i, 0])), int(slate[i, j]))
            assert float(got[i, j]) == (h >> 8) / 2**24


@needs_numba
def test_the_kernels_give_what_pytorch_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random windows (padding, short, full) and responses, also more positives than the window."""
    gen = torch.Generator().manual_seed(2)
    for width, k in [(50, 10), (3, 5), (1, 1)]:
        b = 40
        lengths = torch.randint(0, width + 1, (b,), generator=gen)
        mask = torch.arange(width)[None, :] >= width - lengths[:, None]
        hist = torch.randint(1, 500, (b, width), generator=gen).masked_fill(~mask, 0)
        slate = torch.randint(1, 500, (b, k), generator=gen)
        response = torch.rand(b, k, generator=gen) < torch.rand(b, 1, generator=gen)
        keys = torch.randint(0, 2**32, (b, 1), generator=gen)
        fast = [*Fn.append_positives(hist, mask, slate, response)]
        fast += [*Fn.append_positives(hist, mask, slate, response.to(torch.int8))]
        fast += [Fn.hash_uniform(keys, lengths[:, None], slate)]
        with monkeypatch.context() as m:
            m.setattr(Fn, "_step_kernels", lambda x: None)
            plain = [*Fn.append_positives(hist, mask, slate, response)] * 2
            plain += [Fn.hash_uniform(keys, lengths[:, None], slate)]
        for got, want in zip(fast, plain, strict=True):
            assert got.dtype == want.dtype
            assert torch.equal(got, want)
