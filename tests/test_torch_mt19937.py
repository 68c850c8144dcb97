"""rlrec.models.torch_mt19937: the same int64 words as torch's ``random_`` and the same state after."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlrec.models import torch_mt19937 as mt
from rlrec.models.dropout import dropout_words

pytest.importorskip("numba")

LOW, HIGH = -(2**63), 2**63 - 1


def torch_words(n: int) -> torch.Tensor:
    return torch.empty(n, dtype=torch.int64).random_(LOW, HIGH)


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 7])
def test_words_and_state_equal_torch_across_twists(seed: int) -> None:
    """From a fresh seed (``left = 1``), mid-block, at and across the 624-draw twists, and after
    torch's other draws (normal cache set), the words and the whole generator state match."""
    torch.manual_seed(seed)
    for n in [1, 2, 311, 312, 313, 1, 623, 624, 625, 5000, 41_616]:
        before = torch.get_rng_state()
        expected, after = torch_words(n), torch.get_rng_state()
        torch.set_rng_state(before)
        got = mt.int64_words(n)
        assert got is not None and torch.equal(got, expected), n
        assert torch.equal(torch.get_rng_state(), after), n
        torch.randn(3)  # other consumers of the stream in between
        torch.rand(5)


def test_torch_continues_the_stream_after_fast_words() -> None:
    torch.manual_seed(5)
    torch_words(700)
    reference = torch.rand(10)
    torch.manual_seed(5)
    assert mt.int64_words(700) is not None
    assert torch.equal(torch.rand(10), reference)


def test_full_range_words_maps_pairs_like_torch() -> None:
    """Word = (v mod (2^64 − 1)) − 2^63 for v = first·2^32 + second, including v = 2^64 − 1."""
    kernels = mt._kernels()
    pairs = [(0, 0), (1, 2), (0x80000000, 5), (0xFFFFFFFF, 0xFFFFFFFE), (0xFFFFFFFF, 0xFFFFFFFF)]
    halves = np.array([x for pair in pairs for x in pair], np.uint32)
    kernels.full_range_words(halves)
    got = halves.view(np.int64).tolist()
    expected = [(((hi << 32) | lo) % (2**64 - 1)) - 2**63 for hi, lo in pairs]
    assert got == expected


def test_dropout_words_same_with_and_without_the_fast_path() -> None:
    torch.manual_seed(11)
    fast = dropout_words((64, 4, 51, 51))
    torch.manual_seed(11)
    with mt.disabled():
        assert mt.int64_words(4) is None
        slow = dropout_words((64, 4, 51, 51))
    assert torch.equal(fast, slow)


def test_unexpected_state_layout_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.get_rng_state
    monkeypatch.setattr(torch, "get_rng_state", lambda: torch.cat([real(), real()[:8]]))
    assert mt.int64_words(10) is None
    assert dropout_words((3, 5)).shape == (3, 5)  # torch draws instead
