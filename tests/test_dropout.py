"""Dropout masks (rlrec.models.dropout) and the online attention with dropout on its weights."""

from __future__ import annotations

import math

import pytest
import torch

from rlrec.models.dropout import dropout, dropout_mask
from rlrec.online.layers import DroppedAttention, TransformerLayer, attention_bias

CPU = torch.device("cpu")


def test_dropout_mask_rate_scale_and_seed() -> None:
    torch.manual_seed(0)
    mask = dropout_mask((1000, 1000), 0.1, torch.float32, CPU)
    torch.manual_seed(0)
    again = dropout_mask((1000, 1000), 0.1, torch.float32, CPU)
    assert torch.equal(mask, again)
    kept = mask[mask != 0]
    n_drop = round(0.1 * 65536)
    assert torch.all(kept == 65536 / (65536 - n_drop))
    assert abs((mask == 0).float().mean().item() - 0.1) < 2e-3
    assert abs(mask.mean().item() - 1.0) < 3e-3
    odd = dropout_mask((3, 5, 7), 0.5, torch.float32, CPU)  # numel not % 4
    assert odd.shape == (3, 5, 7)
    assert set(odd.unique().tolist()) == {0.0, 2.0}


def test_dropout_mask_is_the_int16_threshold_of_the_seeded_words() -> None:
    """Kept exactly where the 16-bit integer (four per 64-bit draw) is ≥ round(p·2¹⁶) − 2¹⁵."""
    torch.manual_seed(3)
    mask = dropout_mask((6, 7), 0.25, torch.float64, CPU)
    torch.manual_seed(3)
    words = torch.empty(11, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    keep = words.view(torch.int16)[:42].view(6, 7) >= 16384 - 32768
    assert torch.equal(mask, keep.double() * (4.0 / 3.0))
    assert mask.dtype == torch.float64


def test_dropout_statistics_and_identity() -> None:
    torch.manual_seed(0)
    out = dropout(torch.ones(200_000), 0.1, True)
    assert float((out == 0).float().mean()) == pytest.approx(0.1, abs=0.003)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.005)
    assert torch.equal(dropout(torch.ones(5), 0.5, False), torch.ones(5))
    assert torch.equal(dropout(torch.ones(5), 0.0, True), torch.ones(5))


def plain_attention(q, k, v, bias, m):  # type: ignore[no-untyped-def]
    """The same computation by autograd: softmax(q kᵀ + bias) ⊙ m, then times v."""
    return (torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1) * m) @ v


@pytest.mark.parametrize("lq", [5, 1])
def test_dropped_attention_matches_autograd_and_gradcheck(lq: int) -> None:
    torch.manual_seed(0)
    b, h, n, dh = 3, 2, 5, 4
    q = torch.randn(b, h, lq, dh, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, h, n, dh, dtype=torch.float64, requires_grad=True)
    v = torch.randn(b, h, n, dh, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(b, n) > 0.3
    bias = attention_bias(mask, n, CPU).double()[..., -lq:, :]
    m = dropout_mask((b, h, lq, n), 0.3, torch.float64, CPU)
    out = DroppedAttention.apply(q, k, v, bias, m)
    ref = plain_attention(q, k, v, bias, m)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    assert torch.allclose(out, ref, atol=1e-12)
    for mine, expected in zip(grads, ref_grads, strict=True):
        assert torch.allclose(mine, expected, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda q, k, v: DroppedAttention.apply(q, k, v, bias, m), (q, k, v)
    )


@pytest.mark.parametrize("fused", [False, True])
def test_training_layer_uses_the_seeded_mask_on_the_attention_weights(fused: bool) -> None:
    """A training layer's attention equals the plain formula with the mask drawn from the same seed
    (PyTorch's operators and the fused kernel alike)."""
    if fused:
        pytest.importorskip("numba")
    torch.manual_seed(0)
    layer = TransformerLayer(8, 2, 16, 0.2, fused=fused).train()
    qkv = torch.randn(2, 4, 3, 2, 4)  # (B, L, [q|k|v], heads, d)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    bias = attention_bias(None, 4, CPU)
    torch.manual_seed(7)
    out = layer._attend(qkv, None, bias).transpose(1, 2)
    torch.manual_seed(7)
    m = dropout_mask((2, 2, 4, 4), 0.2, torch.float32, CPU)
    expected = plain_attention(q / math.sqrt(4), k, v, bias, m)
    assert torch.allclose(out, expected, atol=1e-6)
