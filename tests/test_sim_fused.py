"""The fused history-attention kernel (numba) against the PyTorch path it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sim_helpers import TINY_SYNTH

from rlrec.errors import ConfigError
from rlrec.sim import functional as Fn
from rlrec.sim import fused_attention
from rlrec.sim.build import make_simulator
from rlrec.sim.env import EnvConfig
from rlrec.sim.urm import URM, URMConfig

needs_numba = pytest.mark.skipif(not fused_attention.available(), reason="numba not installed")


def torch_pooled(
    urm: URM, table: torch.Tensor, hist: torch.Tensor, mask: torch.Tensor, query: torch.Tensor
) -> torch.Tensor:
    """What :meth:`URM.interest` pools, through PyTorch's operators."""
    qkv = table[hist]
    bias = Fn.key_bias(mask) if urm.cfg.key_padding_mask else None
    return Fn.cross_pool(query, Fn.self_attention(qkv, bias, urm.cfg.n_heads), bias)


@needs_numba
@pytest.mark.parametrize(
    ("dim", "heads", "width", "masked"), [(32, 4, 50, True), (16, 2, 7, True), (8, 1, 5, False)]
)
def test_kernel_equals_the_pytorch_attention(
    dim: int, heads: int, width: int, masked: bool
) -> None:
    gen = torch.Generator().manual_seed(dim + width)
    torch.manual_seed(dim)
    cfg = URMConfig(dim=dim, n_heads=heads, max_history=width, key_padding_mask=masked)
    urm = URM(cfg, user_dim=3, item_dim=6).eval()
    with torch.no_grad():
        for p in urm.parameters():  # logits of a few units, as a trained URM has
            p.mul_(1.5)
        items = torch.cat([torch.zeros(1, 6), torch.randn(40, 6, generator=gen)])
        _, table = urm.item_tables(items)
        b = 12
        hist = torch.randint(1, 41, (b, width), generator=gen)
        lengths = torch.tensor([width, width, 1, 0, 2, width - 1] * 2)  # full, short, empty
        mask = torch.arange(width)[None, :] >= width - lengths[:, None]
        hist = hist.masked_fill(~mask, 0)
        hist[1, : width // 2] = hist[1, -1]  # repeated items
        query = urm.cross_query(urm.encode_user(torch.randn(b, 3, generator=gen)))
        keys = mask if masked else torch.ones_like(mask)
        got = fused_attention.pooled_history(table, hist, keys, query, heads)
        want = torch_pooled(urm, table, hist, mask, query)
    real = keys.any(1)
    assert want.abs().max() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-5)
    assert torch.equal(got[~real], torch.zeros_like(got[~real]))


def rollout(kernel: str, seed: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    synthetic = {**TINY_SYNTH, "n_items": 200, "n_users": 80}
    sim = make_simulator(
        num_envs=24, cfg=EnvConfig(attention_kernel=kernel), synthetic=synthetic, seed=0
    )
    assert sim.fused == (kernel == "numba")
    obs = sim.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    record = []
    for _ in range(30):
        slate = torch.rand(24, sim.n_items, generator=gen).argsort(1)[:, :5] + 1
        out = sim.step(slate)
        record += [out.response, out.reward, out.done, out.obs["history"]]
        obs = out.obs
    assert obs["history_mask"].any()
    return record, sim.z


@needs_numba
def test_simulator_trajectories_do_not_change_with_the_kernel() -> None:
    fused, z_fused = rollout("numba")
    plain, z_plain = rollout("torch")
    assert sum(int(t.sum()) for t in fused[2::4]) > 0  # episodes ended and were refilled
    for a, b in zip(fused, plain, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(z_fused, z_plain, rtol=1e-5, atol=1e-5)


def test_auto_falls_back_to_torch_and_numba_is_an_error_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fused_attention, "available", lambda: False)
    sim = make_simulator(num_envs=2, synthetic=TINY_SYNTH)
    assert not sim.fused
    with pytest.raises(ConfigError, match="needs numba"):
        make_simulator(num_envs=2, cfg=EnvConfig(attention_kernel="numba"), synthetic=TINY_SYNTH)


@needs_numba
def test_kernel_exp_is_accurate_to_a_few_ulp() -> None:
    x = np.concatenate([np.linspace(-87.0, 0.0, 20001), -np.logspace(-8, 0, 200), [0.0, -200.0]])
    got = fused_attention.exp(x.astype(np.float32)).astype(np.float64)
    want = np.exp(np.maximum(x.astype(np.float32).astype(np.float64), -87.0))
    assert np.max(np.abs(got / want - 1.0)) < 4e-7  # float32 ulp is 6e-8 to 1.2e-7
