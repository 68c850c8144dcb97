"""The fused history-attention kernel (numba) against the PyTorch path it replaces."""

from __future__ import annotations

import math

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
    ("dim", "heads", "width", "masked"),
    [(32, 4, 50, True), (16, 2, 7, True), (8, 1, 5, False), (24, 4, 20, True)],
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
    assert (sim.attention is not None) == (kernel == "numba")
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
    assert sim.attention is None
    with pytest.raises(ConfigError, match="needs numba"):
        make_simulator(num_envs=2, cfg=EnvConfig(attention_kernel="numba"), synthetic=TINY_SYNTH)


@needs_numba
def test_kernel_exp_is_accurate_to_a_few_ulp() -> None:
    x = np.concatenate([np.linspace(-87.0, 0.0, 20001), -np.logspace(-8, 0, 200), [0.0, -200.0]])
    got = fused_attention.exp(x.astype(np.float32)).astype(np.float64)
    want = np.exp(np.maximum(x.astype(np.float32).astype(np.float64), -87.0))
    assert np.max(np.abs(got / want - 1.0)) < 4e-7  # float32 ulp is 6e-8 to 1.2e-7


@needs_numba
@pytest.mark.parametrize(("gain", "dim"), [(1.5, 32), (4.0, 32), (1.5, 24)])
def test_incremental_updates_track_the_full_attention(gain: float, dim: int) -> None:
    """Windows that gain 0..K items per step (positives appended, oldest dropped, some users
    restarted): the kept state is as accurate as a full float32 recomputation by PyTorch, both
    measured against float64. ``gain`` 4 makes the attention peaky (logits in the tens; the float32
    error of either path is then ~1e-4), so rows are re-based and recomputed along the way.
    ``dim`` 24 (heads of 6) takes the kernel's general path instead of its width-8 one."""
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    width, b, k = 50, 16, 10
    urm = URM(URMConfig(dim=dim, max_history=width), user_dim=3, item_dim=6).eval()
    errors: dict[str, list[float]] = {"kernel": [], "torch": []}
    with torch.no_grad():
        for p in urm.parameters():
            p.mul_(gain)
        items = torch.cat([torch.zeros(1, 6), torch.randn(300, 6, generator=gen)])
        _, table = urm.item_tables(items)
        lengths = torch.randint(0, width + 1, (b,), generator=gen)
        mask = torch.arange(width)[None, :] >= width - lengths[:, None]
        hist = torch.randint(1, 301, (b, width), generator=gen).masked_fill(~mask, 0)
        state = fused_attention.HistoryAttention(b, width, dim, 4)
        rows = torch.arange(b)
        shift = torch.full((b,), -1)
        for _ in range(25):
            query = urm.cross_query(urm.encode_user(torch.randn(b, 3, generator=gen)))
            got = state.refresh(table, rows, hist, mask, shift, query)
            plain = torch_pooled(urm, table, hist, mask, query)
            exact = torch_pooled(urm.double(), table.double(), hist, mask, query.double())
            urm.float()
            real = mask.any(1)
            errors["kernel"].append(float((got.double() - exact)[real].abs().max()))
            errors["torch"].append(float((plain.double() - exact)[real].abs().max()))
            slate = torch.randint(1, 301, (b, k), generator=gen)
            response = torch.rand(b, k, generator=gen) < torch.rand(b, 1, generator=gen)
            hist, mask = Fn.append_positives(hist, mask, slate, response)
            shift = response.sum(1)
            restart = torch.rand(b, generator=gen) < 0.1
            shift[restart] = -1
            hist[restart] = torch.randint(1, 301, (int(restart.sum()), width), generator=gen)
            mask[restart] = True
    assert max(errors["kernel"]) <= 2 * max(errors["torch"]) + 1e-6, errors


def spike_world(seed: int, logits: dict[int, float]) -> tuple[URM, torch.Tensor, torch.Tensor]:
    """A one-head URM of width 8 over a 40-slot window (wide enough that the kernel updates kept
    rows instead of recomputing them) and items 1..4 with small random rows, except that item 1
    (A) has the query ``10·e₀`` and item ``k`` in ``logits`` the key giving A's row the logit
    ``logits[k]``. Returns the URM, its ``[q|k|v]`` table and a cross query that looks (almost) only
    at row A."""
    f = 8
    urm = URM(URMConfig(dim=f, n_heads=1, max_history=40), user_dim=1, item_dim=1)
    gen = torch.Generator().manual_seed(seed)
    table = 0.1 * torch.randn(5, 3 * f, generator=gen)
    table[1, :f] = 0.0
    table[1, 0] = 10.0  # q_A
    for item, logit in logits.items():
        table[item, f : 2 * f] = 0.0
        table[item, f] = logit * math.sqrt(f) / 10.0  # q_A·k / √f = logit
    query = torch.zeros(1, 1, f)
    query[0, 0, 0] = 50.0
    return urm, table, query


def shift_window(
    urm: URM,
    table: torch.Tensor,
    query: torch.Tensor,
    hist: torch.Tensor,
    mask: torch.Tensor,
    new: torch.Tensor,
    new_ok: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's pooled rows after a window ``hist`` ``(1, H)`` gains the items ``new`` ``(1, m)``
    (``new_ok`` their mask), updated from its kept state, and PyTorch's on the new window."""
    state = fused_attention.HistoryAttention(1, hist.shape[1], table.shape[1] // 3, 1)
    state.refresh(table, torch.tensor([0]), hist, mask, torch.tensor([-1]), query)
    m = new.shape[1]
    hist, mask = torch.cat([hist[:, m:], new], 1), torch.cat([mask[:, m:], new_ok], 1)
    got = state.refresh(table, torch.tensor([0]), hist, mask, torch.tensor([m]), query)
    return got, torch_pooled(urm, table, hist, mask, query)


@needs_numba
@pytest.mark.parametrize("full_window", [False, True])
def test_a_key_far_above_a_rows_reference_recomputes_the_row(full_window: bool) -> None:
    """Row A's keys have logits near 0; then keys C and D arrive with logits 100 and 95 for A.
    Their exponentials relative to A's old reference would overflow, so A's row is recomputed:
    C and D then share A's attention as e^5 : 1, as the full softmax has it. ``full_window``: C and
    D replace two real keys (a key removed and one added in the same pass) rather than padding."""
    urm, table, query = spike_world(0, {3: 100.0, 4: 95.0})  # 1 = A, 2 = B, 3 = C, 4 = D
    table[3, 16] = 1.0  # v_C, v_D differ in their first value
    table[4, 16] = -1.0
    hist = torch.full((1, 40), 2)
    hist[0, -3] = 1
    mask = torch.ones(1, 40, dtype=torch.bool)
    if not full_window:
        mask[0, :3] = False
        hist[0, :3] = 0
    ok = torch.ones(1, 2, dtype=torch.bool)
    got, want = shift_window(urm, table, query, hist, mask, torch.tensor([[3, 4]]), ok)
    assert abs(float(want[0, 0, 0]) - math.tanh(2.5)) < 0.05  # e^5 : 1 on v_C, v_D
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_numba
def test_keys_dropped_with_padding_in_their_place() -> None:
    """A caller's mask may mark some of the newest positions as padding: the real keys the window
    drops are then subtracted with no key added in their place, and the result is still the
    attention over the new window."""
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    width, b = 40, 2
    urm = URM(URMConfig(max_history=width), user_dim=3, item_dim=6).eval()
    items = torch.cat([torch.zeros(1, 6), torch.randn(100, 6, generator=gen)])
    with torch.no_grad():
        _, table = urm.item_tables(items)
        query = urm.cross_query(urm.encode_user(torch.randn(b, 3, generator=gen)))
    hist = torch.randint(1, 101, (b, width), generator=gen)
    mask = torch.ones(b, width, dtype=torch.bool)
    state = fused_attention.HistoryAttention(b, width, 32, 4)
    rows = torch.arange(b)
    state.refresh(table, rows, hist, mask, torch.full((b,), -1), query)
    hist = torch.cat([hist[:, 3:], torch.randint(1, 101, (b, 3), generator=gen)], 1)
    newest = torch.tensor([[True, False, False], [False, False, True]])
    mask = torch.cat([mask[:, 3:], newest], 1)
    got = state.refresh(table, rows, hist, mask, torch.full((b,), 3), query)
    with torch.no_grad():
        want = torch_pooled(urm, table, hist, mask, query)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_numba
def test_wide_vectors_marks_the_calling_function() -> None:
    """The kernels' 512-bit vector preference reaches LLVM as the function's attribute."""
    import numba as nb

    from rlrec._fastmath import wide_vectors

    @nb.njit
    def add_one(x: int) -> int:
        wide_vectors()
        return x + 1

    assert add_one(1) == 2
    assert '"prefer-vector-width"="512"' in "".join(add_one.inspect_llvm().values())


@needs_numba
@pytest.mark.parametrize("replaced", [True, False])
def test_a_row_that_loses_most_of_its_mass_is_recomputed(replaced: bool) -> None:
    """Row A puts almost all its attention on key X (logit 30 against ~0 for the rest). When X
    leaves the window, subtracting e^30 from A's running sums would leave float32 rounding noise
    (an ulp of e^30 is ~1e6 against a remaining mass of ~40), so the row is recomputed and the
    result equals the full attention. ``replaced``: X's slot takes a new real key (one pass for
    both) or padding."""
    urm, table, query = spike_world(1, {3: 30.0})  # 1 = A, 2 = B, 3 = X, 4 = C
    hist = torch.full((1, 40), 2)
    hist[0, 0], hist[0, -3] = 3, 1  # X the oldest, A near the end
    mask = torch.ones(1, 40, dtype=torch.bool)
    new_ok = torch.tensor([[replaced]])
    got, want = shift_window(urm, table, query, hist, mask, torch.tensor([[4]]), new_ok)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_numba
def test_each_rows_removed_mass_follows_the_row() -> None:
    """The state of row ``t`` (window order) moves with the row as the window shifts: after three
    shifts its ``gone`` is the softmax mass of exactly the keys that left since the row entered
    (or since the fresh window), relative to its reference, as float64 recomputes it."""
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    width, d = 40, 8
    urm = URM(URMConfig(dim=d, n_heads=1, max_history=width), user_dim=3, item_dim=6).eval()
    items = torch.cat([torch.zeros(1, 6), torch.randn(200, 6, generator=gen)])
    with torch.no_grad():
        _, table = urm.item_tables(items)
        query = urm.cross_query(urm.encode_user(torch.randn(1, 3, generator=gen)))
    hist = torch.randint(1, 201, (1, width), generator=gen)
    mask = torch.ones(1, width, dtype=torch.bool)
    state = fused_attention.HistoryAttention(1, width, d, 1)
    state.refresh(table, torch.tensor([0]), hist, mask, torch.tensor([-1]), query)
    q, k = table[:, :d].double() / math.sqrt(d), table[:, d : 2 * d].double()
    left: list[list[int]] = [[] for _ in range(width)]  # per row: the keys gone since it entered
    for step in range(3):
        m = 2 + step
        gone_now = hist[0, :m].tolist()
        hist = torch.cat([hist[:, m:], torch.randint(1, 201, (1, m), generator=gen)], 1)
        left = [row + gone_now for row in left[m:]] + [[] for _ in range(m)]
        state.refresh(table, torch.tensor([0]), hist, mask, torch.tensor([m]), query)
    ref = torch.from_numpy(state.ref[0, 0, :width]).double()
    got = torch.from_numpy(state.gone[0, 0, :width]).double()
    want = torch.stack(
        [torch.exp(q[int(hist[0, t])] @ k[row].T - ref[t]).sum() for t, row in enumerate(left)]
    )
    assert (want[: width - 4] > 0).all() and bool((want[-4:] == 0).all())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
