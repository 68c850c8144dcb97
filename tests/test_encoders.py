"""State encoders (spec-offline §B): shapes, masking/causality, empty history, dropout, gradients,
and SASRec's last-block shortcut against a plain reference implementation written here."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from rlrec.models.encoders import (
    CaserEncoder,
    Encoder,
    EncoderConfig,
    GRUEncoder,
    NextItNetEncoder,
    SASRecEncoder,
    build_encoder,
)
from rlrec.models.encoders.nextitnet import causal_conv

N_ITEMS, L, D, B = 50, 10, 16, 8
PAD = N_ITEMS

CASES: list[Any] = [
    pytest.param({"kind": "gru"}, id="gru"),
    pytest.param({"kind": "caser"}, id="caser"),
    pytest.param({"kind": "nextitnet"}, id="nextitnet"),
    pytest.param({"kind": "sasrec", "sasrec_variant": "xin_tf"}, id="sasrec-xin_tf"),
    pytest.param({"kind": "sasrec", "sasrec_variant": "ccql_torch"}, id="sasrec-ccql_torch"),
    pytest.param(
        {"kind": "sasrec", "sasrec_variant": "xin_tf", "sasrec_blocks": 2, "sasrec_heads": 2},
        id="sasrec-xin_tf-2blocks-2heads",
    ),
    pytest.param(
        {"kind": "sasrec", "sasrec_variant": "ccql_torch", "sasrec_blocks": 2, "sasrec_heads": 2},
        id="sasrec-ccql_torch-2blocks",
    ),
]
HAS_DROPOUT = {"caser", "sasrec"}


def make_encoder(params: dict[str, Any], seed: int = 0, **extra: Any) -> Encoder:
    torch.manual_seed(seed)
    cfg = EncoderConfig(hidden=D, **{**params, **extra})
    return build_encoder(cfg, N_ITEMS, L)


def perturb(enc: Encoder, seed: int = 1) -> None:
    """Move every parameter away from its init (zero biases, unit gains would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def make_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded histories; row 0 is the empty history (all pad, len 1), row 1 is full."""
    gen = torch.Generator().manual_seed(seed)
    n_real = torch.randint(1, L + 1, (B,), generator=gen)
    n_real[0], n_real[1] = 0, L
    state = torch.randint(0, N_ITEMS, (B, L), generator=gen)
    state[torch.arange(L)[None, :] >= n_real[:, None]] = PAD
    return state, n_real.clamp(min=1)


def scramble_tail(state: torch.Tensor, len_state: torch.Tensor, seed: int = 7) -> torch.Tensor:
    """Replace every position >= len_state by another *real* item id."""
    gen = torch.Generator().manual_seed(seed)
    out = state.clone()
    tail = torch.arange(L)[None, :] >= len_state[:, None]
    out[tail] = torch.randint(0, N_ITEMS, (int(tail.sum()),), generator=gen)
    return out


# --------------------------------------------------------------------------------------------
# Every encoder


def test_build_encoder_dispatches_on_kind() -> None:
    expected = {
        "gru": GRUEncoder,
        "caser": CaserEncoder,
        "nextitnet": NextItNetEncoder,
        "sasrec": SASRecEncoder,
    }
    for kind, cls in expected.items():
        enc = build_encoder(EncoderConfig(kind=kind, hidden=D), N_ITEMS, L)
        assert type(enc) is cls
        assert enc.item_emb.weight.shape == (N_ITEMS + 1, D)


@pytest.mark.parametrize("params", CASES)
def test_output_shape(params: dict[str, Any]) -> None:
    enc = make_encoder(params)
    state, len_state = make_batch()
    out = enc(state, len_state)
    assert out.shape == (B, enc.out_dim)
    expected = 3 * 16 + D if params["kind"] == "caser" else D
    assert enc.out_dim == expected


def test_caser_default_out_dim_is_112() -> None:
    enc = build_encoder(EncoderConfig(kind="caser"), N_ITEMS, L)
    assert enc.out_dim == 112
    state, len_state = make_batch()
    assert enc(state, len_state).shape == (B, 112)


@pytest.mark.parametrize("params", CASES)
def test_output_ignores_positions_at_or_after_len_state(params: dict[str, Any]) -> None:
    enc = make_encoder(params).eval()
    perturb(enc)
    state, len_state = make_batch()
    scrambled = scramble_tail(state, len_state)
    assert not torch.equal(scrambled, state)
    with torch.no_grad():
        torch.testing.assert_close(
            enc(scrambled, len_state), enc(state, len_state), rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("params", CASES)
def test_empty_history_is_finite(params: dict[str, Any]) -> None:
    enc = make_encoder(params)
    perturb(enc)
    state = torch.full((B, L), PAD)
    len_state = torch.ones(B, dtype=torch.long)
    for mode in (True, False):
        enc.train(mode)
        out = enc(state, len_state)
        assert torch.isfinite(out).all()
    enc.train()
    enc.zero_grad()
    (enc(state, len_state) * torch.randn(B, enc.out_dim)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_empty_history_states_are_the_documented_constants() -> None:
    state = torch.full((B, L), PAD)
    len_state = torch.ones(B, dtype=torch.long)
    for variant in ("xin_tf", "ccql_torch"):
        enc = make_encoder({"kind": "sasrec", "sasrec_variant": variant}).eval()
        perturb(enc)
        with torch.no_grad():
            expected = enc.ln_final.bias.expand(B, D)
            torch.testing.assert_close(enc(state, len_state), expected)
    enc = make_encoder({"kind": "nextitnet"}).eval()
    perturb(enc)
    with torch.no_grad():
        assert torch.equal(enc(state, len_state), torch.zeros(B, D))


@pytest.mark.parametrize("params", CASES)
def test_eval_is_deterministic_and_dropout_only_in_training(params: dict[str, Any]) -> None:
    enc = make_encoder(params)
    state, len_state = make_batch()
    enc.eval()
    with torch.no_grad():
        first = enc(state, len_state)
        assert torch.equal(enc(state, len_state), first)
        enc.train()
        train_a = enc(state, len_state)
        train_b = enc(state, len_state)
    if params["kind"] in HAS_DROPOUT:
        assert not torch.equal(train_a, train_b)
        assert not torch.equal(train_a, first)
    else:
        assert torch.equal(train_a, first)
        assert torch.equal(train_b, first)


@pytest.mark.parametrize("params", CASES)
def test_gradients_reach_embeddings_and_parameters(params: dict[str, Any]) -> None:
    enc = make_encoder(params).train()
    state, len_state = make_batch()
    # A random projection, not a plain sum: the sum of a LayerNorm output with unit gain has zero
    # gradient with respect to the LayerNorm input.
    weights = torch.randn(B, enc.out_dim, generator=torch.Generator().manual_seed(3))
    (enc(state, len_state) * weights).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    emb_grad = enc.item_emb.weight.grad
    assert emb_grad is not None
    used = state[state != PAD].unique()
    assert (emb_grad[used].abs().sum(dim=1) > 0).all()
    unused = torch.ones(N_ITEMS, dtype=torch.bool)
    unused[used] = False
    assert (emb_grad[:N_ITEMS][unused] == 0).all()


# --------------------------------------------------------------------------------------------
# GRU


def test_gru_equals_running_exactly_len_state_steps() -> None:
    enc = make_encoder({"kind": "gru"}).eval()
    perturb(enc)
    assert isinstance(enc, GRUEncoder)
    state, len_state = make_batch()
    with torch.no_grad():
        out = enc(state, len_state)
        for row in range(4):  # the empty history, the full one and two others
            n = int(len_state[row])
            steps, _ = enc.gru(enc.item_emb(state[row : row + 1, :n]))
            torch.testing.assert_close(out[row], steps[0, -1], rtol=0, atol=1e-6)
    # the empty history really consumes the (trainable) pad embedding
    with torch.no_grad():
        enc.item_emb.weight[PAD] += 1.0
        assert not torch.allclose(enc(state, len_state)[0], out[0])


# --------------------------------------------------------------------------------------------
# Caser


def test_caser_equals_tf_style_conv2d_on_the_embedding_image() -> None:
    enc = make_encoder({"kind": "caser"}).eval()
    assert isinstance(enc, CaserEncoder)
    perturb(enc)
    state, len_state = make_batch()
    with torch.no_grad():
        real = (torch.arange(L)[None, :] < len_state[:, None]) & (state != PAD)
        image = (enc.item_emb.weight[state] * real[..., None]).unsqueeze(1)  # [B, 1, L, d]
        parts = []
        for conv in enc.horizontal:
            kernel = conv.weight.transpose(1, 2).unsqueeze(1)  # [F, 1, h, d]
            out = F.relu(F.conv2d(image, kernel, conv.bias))  # [B, F, L − h + 1, 1]
            parts.append(out.amax(dim=(2, 3)))
        vertical = F.conv2d(image, enc.v_weight.view(1, 1, L, 1), enc.v_bias.view(1))
        parts.append(F.relu(vertical).view(B, D))
        torch.testing.assert_close(enc(state, len_state), torch.cat(parts, dim=1))


# --------------------------------------------------------------------------------------------
# NextItNet


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_causal_conv_equals_left_padded_conv1d(dilation: int) -> None:
    gen = torch.Generator().manual_seed(dilation)
    x = torch.randn(3, L, 5, generator=gen)
    weight = torch.randn(6, 5, 3, generator=gen)
    bias = torch.randn(6, generator=gen)
    expected = F.conv1d(
        F.pad(x.transpose(1, 2), (2 * dilation, 0)), weight, bias, dilation=dilation
    ).transpose(1, 2)
    torch.testing.assert_close(causal_conv(x, weight, bias, dilation), expected)


def test_nextitnet_blocks_are_causal() -> None:
    """Unmasked block stack: position t's output does not change when positions > t change."""
    enc = make_encoder({"kind": "nextitnet"}).eval()
    assert isinstance(enc, NextItNetEncoder)
    perturb(enc)
    state = torch.randint(0, N_ITEMS, (B, L), generator=torch.Generator().manual_seed(4))

    def stack(s: torch.Tensor) -> torch.Tensor:
        x = enc.item_emb(s)
        for block in enc.blocks:
            x = block(x)
        return x

    with torch.no_grad():
        base = stack(state)
        for t in range(L - 1):
            changed = scramble_tail(state, torch.full((B,), t + 1), seed=t)
            out = stack(changed)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


# --------------------------------------------------------------------------------------------
# SASRec


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-8) * norm.weight + norm.bias


def reference_sasrec(
    enc: SASRecEncoder, state: torch.Tensor, len_state: torch.Tensor
) -> torch.Tensor:
    """Spec §B.4/§B.5 literally, every block on every position (eval mode), then the gather."""
    ccql = enc.variant == "ccql_torch"
    d = enc.out_dim
    heads = 1 if ccql else enc.cfg.sasrec_heads
    dh = d // heads
    length = state.shape[1]
    real = (torch.arange(length)[None, :] < len_state[:, None]) & (state != PAD)
    x = enc.item_emb.weight[state] * (math.sqrt(d) if ccql else 1.0) + enc.pos_emb
    x = x * real[..., None]
    allowed = torch.ones(length, length).tril().bool()[None] & real[:, None, :]
    for block in enc.blocks:
        q = _ln(x, block.ln_attn)
        w_k, w_v = block.w_kv.weight[:d], block.w_kv.weight[d:]
        b_k, b_v = block.w_kv.bias[:d], block.w_kv.bias[d:]
        big_q = q @ block.w_q.weight.T + block.w_q.bias
        big_k = x @ w_k.T + b_k
        big_v = x @ w_v.T + b_v
        outs = []
        for h in range(heads):
            part = slice(h * dh, (h + 1) * dh)
            scores = big_q[..., part] @ big_k[..., part].transpose(1, 2) / math.sqrt(dh)
            scores = torch.where(allowed, scores, torch.tensor(-(2.0**32) + 1))
            attn = torch.softmax(scores, dim=-1) * real[:, :, None]  # query masking
            outs.append(attn @ big_v[..., part])
        out = torch.cat(outs, dim=-1) + (2.0 if ccql else 1.0) * q
        f = _ln(out, block.ln_ffn)
        y = f + block.ffn2(torch.relu(block.ffn1(f)))
        x = y * real[..., None]
    x = _ln(x, enc.ln_final)
    return x[torch.arange(x.shape[0]), len_state - 1]


@pytest.mark.parametrize("variant", ["xin_tf", "ccql_torch"])
@pytest.mark.parametrize(("blocks", "heads"), [(1, 1), (2, 2), (3, 4)])
def test_sasrec_last_block_shortcut_equals_full_computation(
    variant: str, blocks: int, heads: int
) -> None:
    params = {"kind": "sasrec", "sasrec_variant": variant}
    enc = make_encoder(params, sasrec_blocks=blocks, sasrec_heads=heads).eval()
    assert isinstance(enc, SASRecEncoder)
    perturb(enc)
    state, len_state = make_batch()
    with torch.no_grad():
        fast = enc(state, len_state)
        ref = reference_sasrec(enc, state, len_state)
        full = enc.encode_sequence(state, len_state)[torch.arange(B), len_state - 1]
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(full, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["xin_tf", "ccql_torch"])
def test_sasrec_sequence_outputs_are_causal(variant: str) -> None:
    """All positions real: position t's output does not change when positions > t change."""
    enc = make_encoder({"kind": "sasrec", "sasrec_variant": variant}, sasrec_blocks=2).eval()
    assert isinstance(enc, SASRecEncoder)
    perturb(enc)
    state = torch.randint(0, N_ITEMS, (B, L), generator=torch.Generator().manual_seed(4))
    full = torch.full((B,), L)
    with torch.no_grad():
        base = enc.encode_sequence(state, full)
        for t in range(L - 1):
            out = enc.encode_sequence(scramble_tail(state, torch.full((B,), t + 1), seed=t), full)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_sasrec_variants_differ_and_ccql_ignores_heads() -> None:
    state, len_state = make_batch()
    outs = {}
    for variant in ("xin_tf", "ccql_torch"):
        for heads in (1, 2):
            enc = make_encoder({"kind": "sasrec", "sasrec_variant": variant}, sasrec_heads=heads)
            perturb(enc)
            with torch.no_grad():
                outs[variant, heads] = enc.eval()(state, len_state)
    assert not torch.allclose(outs["xin_tf", 1], outs["ccql_torch", 1])
    assert not torch.allclose(outs["xin_tf", 1], outs["xin_tf", 2])
    torch.testing.assert_close(outs["ccql_torch", 1], outs["ccql_torch", 2])


def test_sasrec_rejects_heads_not_dividing_hidden() -> None:
    with pytest.raises(ValueError, match="divisible"):
        make_encoder({"kind": "sasrec", "sasrec_heads": 3})


def test_caser_rejects_heights_longer_than_window() -> None:
    with pytest.raises(ValueError, match="caser_heights"):
        build_encoder(EncoderConfig(kind="caser", caser_heights=(2, 11)), N_ITEMS, L)


def test_dropout_only_where_the_encoder_has_it() -> None:
    """GRU and NextItNet have no dropout: a non-zero rate is refused, not silently ignored."""
    from rlrec.config import build_config
    from rlrec.errors import ConfigError
    from rlrec.train.config import TrainConfig

    base = {"data": "d", "out": "o"}
    for kind in ("gru", "nextitnet"):
        with pytest.raises(ConfigError, match=f"the {kind} encoder has no dropout"):
            build_config(TrainConfig, cli={**base, "encoder": {"kind": kind, "dropout": 0.2}})
        cfg = build_config(TrainConfig, cli={**base, "encoder": {"kind": kind}})
        assert cfg.encoder.dropout == 0.0
    for kind in ("caser", "sasrec"):
        assert (
            build_config(TrainConfig, cli={**base, "encoder": {"kind": kind}}).encoder.dropout
            == 0.1
        )
