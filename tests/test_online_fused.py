"""The fused attention kernel of the hyper-actor (rlrec.online.fused_attention) against PyTorch's
operators: outputs and gradients, with and without dropout, for every bias shape the layers build,
the layers and a whole update; results independent of the thread count."""

from __future__ import annotations

import math

import pytest
import torch

from rlrec.errors import ConfigError
from rlrec.models.dropout import dropout_mask, dropout_words
from rlrec.online.fused_attention import fused_attention
from rlrec.online.layers import DroppedAttention, TransformerLayer, attention_bias
from rlrec.online.policy import HyperActor, PolicyConfig

numba = pytest.importorskip("numba")
CPU = torch.device("cpu")


def reference(
    qkv: torch.Tensor, bias: torch.Tensor, m: torch.Tensor | None, last: bool
) -> torch.Tensor:
    """PyTorch's attention ``(B, Lq, h, d)`` of packed ``[q|k|v]`` ``(B, L, 3, h, d)``: every query
    row, or the last one only (as ``forward_last``), with dropout multiplier ``m`` or none."""
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    if last:
        q, bias = q[:, :, -1:], bias[..., -1:, :]
    if m is None:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    else:
        out = DroppedAttention.apply(q / math.sqrt(q.shape[-1]), k, v, bias, m)
    return out.transpose(1, 2)


def fused(qkv: torch.Tensor, bias: torch.Tensor, words: torch.Tensor | None, last: bool):
    if not last:
        return fused_attention(qkv, None, bias, words, 0.1)
    # the layers' layout: a contiguous query block, [k | v] a view of a packed tensor
    q, kv = qkv[:, -1:, :1].contiguous(), qkv[:, :, 1:]
    return fused_attention(q, kv, bias[..., -1:, :], words, 0.1)


@pytest.mark.parametrize("dim", [8, 4])  # the written-out d = 8 path and the generic one
@pytest.mark.parametrize("padding", [True, False])  # (B, 1, L, L) and (L, L) biases
@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("dropping", [True, False])
def test_fused_attention_matches_pytorch(
    dim: int, padding: bool, last: bool, dropping: bool
) -> None:
    torch.manual_seed(0)
    b, n, h = 6, 37, 3  # 37 keys: three blocks of 16, the last one partly padding
    qkv = (2 * torch.randn(b, n, 3, h, dim)).requires_grad_()
    mask = torch.rand(b, n) > 0.4
    mask[0] = False  # a history with nothing but padding: the diagonal alone stays open
    bias = attention_bias(mask if padding else None, n, CPU)
    lq = 1 if last else n
    shape = (b, h, lq, n)
    torch.manual_seed(5)
    m = dropout_mask(shape, 0.1, torch.float32, CPU) if dropping else None
    want = reference(qkv, bias, m, last)
    torch.manual_seed(5)
    got = fused(qkv, bias, dropout_words(shape) if dropping else None, last)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    g = torch.randn(want.shape)
    (want_grad,) = torch.autograd.grad(want, qkv, g)
    (got_grad,) = torch.autograd.grad(got, qkv, g)
    assert torch.allclose(got_grad, want_grad, atol=1e-5, rtol=1e-5)


def test_dropout_is_applied_to_the_same_elements() -> None:
    """With the same draws both paths drop the same weights: with p = 0.5 any other choice of
    elements would move the output far beyond rounding."""
    torch.manual_seed(1)
    qkv = torch.randn(4, 20, 3, 2, 8)
    bias = attention_bias(None, 20, CPU)
    shape = (4, 2, 20, 20)
    torch.manual_seed(9)
    want = DroppedAttention.apply(
        qkv[:, :, 0].transpose(1, 2) / math.sqrt(8),
        qkv[:, :, 1].transpose(1, 2),
        qkv[:, :, 2].transpose(1, 2),
        bias,
        dropout_mask(shape, 0.5, torch.float32, CPU),
    ).transpose(1, 2)
    torch.manual_seed(9)
    got = fused_attention(qkv, None, bias, dropout_words(shape), 0.5)
    assert torch.allclose(got, want, atol=1e-5)
    torch.manual_seed(10)  # other draws: a visibly different output
    other = fused_attention(qkv, None, bias, dropout_words(shape), 0.5)
    assert (other - want).abs().max() > 0.1


def test_layer_outputs_and_parameter_gradients_match() -> None:
    """A training TransformerLayer (forward and forward_last) gives the same output and parameter
    gradients with the kernel as with PyTorch's operators, from the same seed."""
    torch.manual_seed(0)
    plain = TransformerLayer(32, 4, 64, 0.1).train()
    kernel = TransformerLayer(32, 4, 64, 0.1, fused=True).train()
    kernel.load_state_dict(plain.state_dict())
    x = torch.randn(8, 21, 32)
    mask = torch.rand(8, 21) > 0.3
    bias = attention_bias(mask, 21, CPU)
    for run in ("forward", "forward_last"):
        outs, grads = [], []
        for layer in (plain, kernel):
            torch.manual_seed(3)
            out = getattr(layer, run)(x, bias)
            layer.zero_grad()
            out.square().sum().backward()
            outs.append(out)
            grads.append([p.grad.clone() for p in layer.parameters()])
        assert torch.allclose(outs[0], outs[1], atol=1e-5)
        for a, b in zip(*grads, strict=True):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_the_kernel_serves_only_passes_with_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel layer calls the kernel when it drops attention weights (training, p > 0) and
    PyTorch's scaled_dot_product_attention otherwise (faster there, measured): in eval mode its
    output is the plain layer's bit for bit."""
    import rlrec.online.layers as layers

    calls: list[bool] = []
    real = layers.fused_attention

    def spy(*args: object) -> torch.Tensor:
        calls.append(True)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(layers, "fused_attention", spy)
    torch.manual_seed(0)
    plain = TransformerLayer(32, 4, 64, 0.1)
    kernel = TransformerLayer(32, 4, 64, 0.1, fused=True)
    kernel.load_state_dict(plain.state_dict())
    x = torch.randn(4, 9, 32)
    bias = attention_bias(torch.rand(4, 9) > 0.3, 9, CPU)
    for run in ("forward", "forward_last"):
        plain.eval(), kernel.eval()
        assert torch.equal(getattr(kernel, run)(x, bias), getattr(plain, run)(x, bias))
        assert calls == []
        kernel.train()
        getattr(kernel, run)(x, bias)
        assert calls == [True]
        calls.clear()


def test_result_does_not_depend_on_the_thread_count() -> None:
    torch.manual_seed(0)
    qkv = torch.randn(16, 30, 3, 4, 8, requires_grad=True)
    bias = attention_bias(torch.rand(16, 30) > 0.3, 30, CPU)
    words = dropout_words((16, 4, 30, 30))
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = fused_attention(qkv, None, bias, words, 0.1)
            (grad,) = torch.autograd.grad(out.sum(), qkv)
            results.append((out, grad))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_actor_uses_the_kernel_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    items = torch.randn(11, 5)

    def actor(kernel: str) -> HyperActor:
        cfg = PolicyConfig(dim=8, n_heads=2, ff_dim=16, user_hidden=[8], attention_kernel=kernel)
        return HyperActor(cfg, items, 3)

    assert all(layer.fused for layer in actor("auto").layers)
    assert not any(layer.fused for layer in actor("torch").layers)
    monkeypatch.setattr("rlrec.numba_support.available", lambda: False)
    assert not any(layer.fused for layer in actor("auto").layers)
    with pytest.raises(ConfigError, match="needs numba"):
        actor("numba")


def test_hac_updates_match_with_either_attention() -> None:
    """Five HAC updates (dropout on, default widths d = 8 per head) from the same seed: the losses
    and the actor's weights agree between the kernel and PyTorch's operators up to rounding."""
    from test_online_agents import CONFIG_OF, batch

    items = torch.cat(
        [torch.zeros(1, 4), torch.randn(12, 4, generator=torch.Generator().manual_seed(0))]
    )
    users = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    runs = []
    for kernel in ("torch", "numba"):
        torch.manual_seed(0)
        spec = {"policy": {"dim": 16, "n_heads": 2, "max_history": 6, "attention_kernel": kernel}}
        agent = CONFIG_OF["hac"].model_validate(spec).create(items, users, 3)
        gen = torch.Generator().manual_seed(0)
        logs = [agent.update(batch(8, seed=s), s, gen) for s in range(5)]
        runs.append((logs, agent.actor.state_dict()))
    (logs_t, actor_t), (logs_n, actor_n) = runs
    for a, b in zip(logs_t, logs_n, strict=True):
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-4), key
    for name, value in actor_t.items():
        assert torch.allclose(value, actor_n[name], atol=1e-5), name


def test_draws_at_the_threshold_are_kept() -> None:
    """The kernel keeps exactly the draws ``dropout_mask`` keeps, boundary included (draws at and
    just below the threshold of ``word_threshold``)."""
    from rlrec.models.dropout import word_threshold

    torch.manual_seed(2)
    qkv = torch.randn(3, 12, 3, 2, 8)
    bias = attention_bias(None, 12, CPU)
    threshold, scale = word_threshold(0.3)
    words = (threshold - torch.randint(0, 2, (3, 2, 12, 12))).to(torch.int16)
    m = words.to(torch.float32).ge(threshold).float() * scale
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    want = DroppedAttention.apply(q / math.sqrt(8), k, v, bias, m).transpose(1, 2)
    got = fused_attention(qkv, None, bias, words, 0.3)
    assert torch.allclose(got, want, atol=1e-5)
