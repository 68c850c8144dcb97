"""SASRec-CO / SASRec-CCQL pieces against hand-computed values (spec-offline §C.8–§C.10, §I).

Augmentations are checked as properties over random batches (hypothesis); the losses on tiny
hand-made cases; the CCQL objective on the lookup-table networks of ``test_objectives``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_objectives import LOG3, MAIN_Q, PAD, TableNet, batch

from rlrec.data.transitions import TransitionBatch
from rlrec.models.encoders import EncoderConfig, build_encoder
from rlrec.models.network import QNetwork
from rlrec.objectives import LossInputs
from rlrec.objectives.augment import augment, real_count
from rlrec.objectives.ccql import CCQLConfig
from rlrec.objectives.co import COConfig, ContrastiveConfig, contrastive_loss
from rlrec.objectives.functional import (
    cql_full,
    cql_legacy,
    cql_sampled,
    nt_xent,
    ts2vec_legacy,
)
from rlrec.objectives.sac import SACConfig

L, N_ITEMS = 6, 9  # window and catalogue of the augmentation properties; pad = 9, mask = 10
MASK = N_ITEMS + 1


@st.composite
def histories(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[B, L]`` histories with the reference's ``len_state`` rule (1 when empty)."""
    rows = draw(st.lists(st.lists(st.integers(0, N_ITEMS - 1), max_size=L), min_size=1, max_size=8))
    state = torch.full((len(rows), L), N_ITEMS)
    for i, row in enumerate(rows):
        state[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    lengths = torch.tensor([max(1, len(r)) for r in rows])
    return state, lengths


def real_rows(state: torch.Tensor, len_state: torch.Tensor) -> list[list[int]]:
    n = real_count(state, len_state, N_ITEMS)
    return [state[i, : int(n[i])].tolist() for i in range(len(state))]


def run(kind: str, state, lengths, ratio: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return augment(kind, state, lengths, pad_id=N_ITEMS, ratio=ratio, gen=gen, mask_id=MASK)


@settings(max_examples=60, deadline=None)
@given(histories(), st.floats(0.1, 1.0), st.integers(0, 2**31))
def test_augmentations_keep_pads_and_their_invariants(h, ratio, seed) -> None:
    state, lengths = h
    pads = state == N_ITEMS
    before = real_rows(state, lengths)
    for kind in ("reorder", "mask", "crop"):
        out, out_len = run(kind, state, lengths, ratio, seed)
        again, again_len = run(kind, state, lengths, ratio, seed)
        assert torch.equal(out, again) and torch.equal(out_len, again_len)  # seeded
        after = real_rows(out, out_len)
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            if not b:  # an empty history is left alone
                assert out[i].tolist() == state[i].tolist() and out_len[i] == lengths[i]
                continue
            if kind == "reorder":  # same multiset, same pads, same length
                assert sorted(a) == sorted(b) and torch.equal(out[i] == N_ITEMS, pads[i])
                moved = [j for j in range(len(b)) if a[j] != b[j]]  # inside one span
                assert not moved or moved[-1] - moved[0] < math.floor(len(b) * ratio)
            elif kind == "mask":  # a real item either stays or becomes [mask]
                assert torch.equal(out[i] == N_ITEMS, pads[i])
                assert all(x in (y, MASK) for x, y in zip(a, b, strict=True))
            else:  # crop: a contiguous run of ⌊ratio·n⌋ (≥ 1) items, re-packed at the front
                size = max(1, math.floor(len(b) * ratio))
                assert len(a) == size == int(out_len[i])
                assert any(b[j : j + size] == a for j in range(len(b) - size + 1))
                assert (out[i, size:] == N_ITEMS).all()


def test_reorder_ratio_one_permutes_every_real_item_and_mask_rate() -> None:
    state = torch.arange(L).repeat(4000, 1)
    lengths = torch.full((4000,), L)
    out, _ = run("reorder", state, lengths, 1.0)
    assert torch.equal(out.sort(dim=1).values, state)
    # every item reaches every position with probability 1/L
    share = (out[:, 0:1] == torch.arange(L)).float().mean(0)
    assert torch.allclose(share, torch.full((L,), 1 / L), atol=0.03)
    masked, _ = run("mask", state, lengths, 0.3)
    assert (masked == MASK).float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_permutation_legacy_shuffles_pads_into_the_history() -> None:
    state = torch.tensor([[1, 2, N_ITEMS, N_ITEMS, N_ITEMS, N_ITEMS]]).repeat(500, 1)
    lengths = torch.full((500,), 2)
    out, out_len = run("permutation_legacy", state, lengths, 1.0)
    assert torch.equal(out.sort(dim=1).values, state.sort(dim=1).values)
    assert torch.equal(out_len, lengths)
    assert (out[:, 1] == N_ITEMS).any()  # a pad lands at the gathered position (§F.18)


def test_nt_xent_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each row: cosine 1 with its partner, 0 with the other two views
    assert nt_xent(z, z, 1.0).item() == pytest.approx(-1.0 + math.log(2.0 + math.e))
    assert nt_xent(z, z, 0.5).item() == pytest.approx(-2.0 + math.log(2.0 + math.e**2))
    same = torch.ones(3, 4)
    assert nt_xent(same, same, 0.07).item() == pytest.approx(math.log(5.0))  # log(2B − 1)
    z1 = torch.randn(4, 3, requires_grad=True)
    z2 = torch.randn(4, 3, requires_grad=True)
    nt_xent(z1, z2, 0.1).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0  # both views learn


def test_ts2vec_legacy_by_hand() -> None:
    """B = 2, d = 1: views u = [1, 2 | 3, 4], similarity u_i·u_j, positive = the paired view."""

    def row(positive: float, others: list[float]) -> float:
        return -positive + math.log(sum(math.exp(x) for x in others))

    expected = (row(3, [2, 3, 4]) + row(8, [2, 6, 8]) + row(3, [3, 6, 12]) + row(8, [4, 8, 12])) / 4
    loss = ts2vec_legacy(torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]]))
    assert loss.item() == pytest.approx(expected)
    assert ts2vec_legacy(torch.ones(1, 3), torch.ones(1, 3)).item() == 0.0


def test_cql_variants_by_hand() -> None:
    q_pos = torch.tensor([2.0, -1.0])
    equal = cql_sampled(q_pos, q_pos.unsqueeze(1).expand(2, 10), 0.5)
    assert equal.tolist() == pytest.approx([0.5 * math.log(11.0)] * 2)  # τ·log(1 + K)
    q_neg = torch.tensor([[5.0, -3.0], [0.0, 0.0]])
    got = cql_sampled(q_pos, q_neg, 1.0)
    assert got[0].item() == pytest.approx(math.log(math.exp(2) + math.exp(5) + math.exp(-3)) - 2)
    assert (cql_sampled(q_pos, torch.randn(2, 7) * 5, 0.3) >= 0).all()
    q = torch.tensor([[1.0, 2.0, 3.0]])
    assert cql_full(q, torch.tensor([0]), 1.0).item() == pytest.approx(
        math.log(math.e + math.e**2 + math.e**3) - 1.0
    )
    # legacy: constant Q and an index much larger than Q → ≈ a* − Q(s, a⁺), gradient only raises Q⁺
    q_best = torch.full((3,), 0.3)
    q_pos = torch.full((3,), 0.3, requires_grad=True)
    index = torch.tensor([1200, 40, 7051])
    legacy = cql_legacy(q_best, q_pos, index, 0.5)
    assert legacy.tolist() == pytest.approx((index - 0.3).tolist(), abs=1e-4)
    legacy.mean().backward()
    assert q_pos.grad.tolist() == pytest.approx([-1 / 3] * 3, abs=1e-6)


def ccql_inputs(step: int = 0, negatives=((0, 0),)) -> LossInputs:
    main = TableNet(MAIN_Q)
    target = TableNet([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    return LossInputs(main, target, batch(), torch.tensor(negatives), step)


NO_CO = {"contrastive": {"weight": 0.0}, "warmup_steps": 5}


@pytest.mark.parametrize(
    ("variant", "cql"),
    [
        # Qm(s) = [1, 4, 0], a⁺ = 1, negatives (0, 0): τ·lse([4, 1, 1]/τ) − 4 with τ = 0.5
        ("sampled", 0.5 * math.log(math.exp(8) + 2 * math.exp(2)) - 4),
        ("full", 0.5 * math.log(math.exp(2) + math.exp(8) + math.exp(0)) - 4),
        # a* = argmax Qm(s') = argmax [0.5, 3, 4] = 2: c = [Qm(s, 2), Qm(s, a⁺), 2] = [0, 4, 2]
        ("legacy", 0.5 * math.log(math.exp(0) + math.exp(8) + math.exp(4)) - 4),
    ],
)
def test_ccql_loss_by_hand(variant: str, cql: float) -> None:
    cfg = CCQLConfig(cql_variant=variant, cql_alpha=0.1, **NO_CO)
    out = cfg.compute_loss(ccql_inputs())
    # CE head all zeros → CE = log 3; TD⁺ = 1.125 (see test_objectives)
    assert out.logs["cql"].item() == pytest.approx(cql, abs=1e-6)  # float32 cancellation
    assert out.loss.item() == pytest.approx(LOG3 + 1.125 + 0.1 * cql)
    # after the switch the actor weights CE by Q(s, a⁺) = 4 (per sample)
    late = cfg.compute_loss(ccql_inputs(step=5))
    assert late.loss.item() == pytest.approx(4 * LOG3 + 1.125 + 0.1 * cql)
    assert cfg.phases()[1].start == 5 and cfg.phases()[1].lr == 0.001


def test_ccql_negative_td_adds_snqn_terms_and_only_sampled_needs_negatives() -> None:
    cfg = CCQLConfig(cql_variant="sampled", negative_td=True, cql_alpha=0.0, **NO_CO)
    out = cfg.compute_loss(ccql_inputs(negatives=((0, 2),)))
    assert out.loss.item() == pytest.approx(LOG3 + 1.125 + 90.5)  # = SNQN's loss when α = 0
    assert CCQLConfig(cql_variant="legacy").n_negatives == 0
    assert CCQLConfig(cql_variant="full").n_negatives == 0
    assert CCQLConfig(cql_variant="full", negative_td=True).n_negatives == 10
    assert CCQLConfig().n_negatives == 10


def test_ccql_batch_mean_weighting_is_the_legacy_bug() -> None:
    # Two transitions whose Q-weights differ, so the two weightings give different losses:
    #   row 0: s = [0, P] → a⁺ = 1 (purchase, r = 1) → s' = [0, 1];        Qm(s, a⁺) = 4
    #   row 1: s = [1, P] → a⁺ = 2 (click, r = 0.2) → s' = [1, 2], done;   Qm(s, a⁺) = −2
    two = TransitionBatch(
        state=torch.tensor([[0, PAD], [1, PAD]]),
        len_state=torch.tensor([1, 1]),
        action=torch.tensor([1, 2]),
        is_buy=torch.tensor([1, 0], dtype=torch.int8),
        next_state=torch.tensor([[0, 1], [1, 2]]),
        len_next_state=torch.tensor([2, 2]),
        done=torch.tensor([False, True]),
    )
    q = [[1.0, 4.0, 0.0], [0.5, 3.0, -2.0], [0.0, 0.0, 0.0]]
    ce = [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    target = [[10.0, 20.0, 30.0], [7.0, 8.0, 9.0], [0.0, 0.0, 0.0]]
    # CE_0 = −log softmax([0, 1, 0])[1], CE_1 = −log softmax([2, 0, 0])[2]
    ce0, ce1 = math.log(2 + math.e) - 1, math.log(math.e**2 + 2)
    # TD⁺: row 0 argmax Qm(s') = argmax [0.5, 3, −2] = 1 → Qt(s')[1] = 8 → y = 1 + 0.5·8 = 5,
    # ½(5 − 4)² = 0.5; row 1 done → y = 0.2, ½(0.2 + 2)² = 2.42
    td = (0.5 + 2.42) / 2
    expected = {
        "per_sample": (4 * ce0 + (-2) * ce1) / 2 + td,  # mean_b Q_b·CE_b
        "legacy_batch_mean": ((4 - 2) / 2) * ((ce0 + ce1) / 2) + td,  # mean Q · mean CE
    }
    for mode, value in expected.items():
        cfg = CCQLConfig(cql_alpha=0.0, sac_weighting=mode, **NO_CO)  # type: ignore[arg-type]
        x = LossInputs(TableNet(q, ce), TableNet(target), two, torch.tensor([[0, 0], [0, 0]]), 5)
        out = cfg.compute_loss(x)
        assert out.loss.item() == pytest.approx(value, rel=1e-6), mode
        assert out.logs["actor_weight"].item() == pytest.approx(1.0)
    assert abs(expected["per_sample"] - expected["legacy_batch_mean"]) > 1.0
    assert CCQLConfig.actor_loss is SACConfig.actor_loss


def tiny_net(augmentation: str = "reorder", projection: int | None = None) -> QNetwork:
    cfg = EncoderConfig(kind="sasrec", hidden=8, dropout=0.0)
    encoder = build_encoder(cfg, N_ITEMS, L, mask_token=augmentation == "mask")
    return QNetwork(encoder, N_ITEMS, projection=projection)


def contrastive_inputs(net: QNetwork, seed: int = 0) -> LossInputs:
    state = torch.tensor([[1, 2, 3, 9, 9, 9], [4, 5, 9, 9, 9, 9], [6, 7, 8, 1, 2, 9], [9] * 6])
    lengths = torch.tensor([3, 2, 5, 1])
    b = batch()
    b = type(b)(
        state=state,
        len_state=lengths,
        action=torch.tensor([0, 1, 2, 3]),
        is_buy=torch.zeros(4, dtype=torch.int8),
        next_state=state,
        len_next_state=lengths,
        done=torch.zeros(4, dtype=torch.bool),
    )
    return LossInputs(net, net, b, None, 0, rng=torch.Generator().manual_seed(seed))


def test_co_loss_is_sac_plus_the_contrastive_term() -> None:
    torch.manual_seed(0)
    net = tiny_net()
    x = contrastive_inputs(net)
    co = COConfig(warmup_steps=10, contrastive={"weight": 0.7})
    total = co.compute_loss(x)
    sac = SACConfig(warmup_steps=10).compute_loss(contrastive_inputs(net))
    term = contrastive_loss(
        co.contrastive, contrastive_inputs(net), net(x.batch.state, x.batch.len_state)
    )
    assert total.loss.item() == pytest.approx(sac.loss.item() + 0.7 * term.item(), rel=1e-5)
    assert total.logs["contrastive"].item() == pytest.approx(term.item(), rel=1e-5)
    # the empty history (row 3) is left out: three states, NT-Xent over 6 views ≥ 0
    assert 0 < term.item() < 10


def test_mask_augmentation_uses_a_learned_mask_token_and_projection_head() -> None:
    net = tiny_net("mask", projection=5)
    assert net.encoder.item_emb.num_embeddings == N_ITEMS + 2 and net.encoder.mask_id == MASK
    assert COConfig(contrastive={"augmentation": "mask"}).mask_token
    assert COConfig(contrastive={"projection": 5}).projection_dim == 5
    cfg = ContrastiveConfig(augmentation="mask", ratio=0.5, projection=5)
    x = contrastive_inputs(net)
    contrastive_loss(cfg, x, net(x.batch.state, x.batch.len_state)).backward()
    assert net.proj_head is not None and net.proj_head[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mask token"):
        contrastive_loss(cfg, contrastive_inputs(tiny_net()), torch.zeros(4, 8))


def test_ts2vec_legacy_chunked_gradient_equals_the_plain_computation() -> None:
    """The memory-light backward is exact: value and gradient equal autograd on ``[d, 2B, 2B]``."""
    from rlrec.objectives.functional import _paired_view_cross_entropy

    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    z2 = torch.randn(6, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    fast = ts2vec_legacy(z1, z2)
    u = torch.cat([z1, z2]).T.unsqueeze(2)
    plain = _paired_view_cross_entropy(u @ u.transpose(1, 2))
    assert fast.item() == pytest.approx(plain.item(), rel=1e-12)
    for a, b in zip(
        torch.autograd.grad(fast, (z1, z2)), torch.autograd.grad(plain, (z1, z2)), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-12)
