"""Each loss against values computed by hand (spec-offline §C, §I).

The networks here are lookup tables: the state is the one-hot of the last real item, so
``Q(s, ·)`` and the logits are rows of known matrices and every target can be computed on paper.
Tiny case: n = 3 items, pad 3, L = 2; one transition ``s = [0, P]`` (len 1) → ``a⁺ = 1`` (a purchase,
r = 1) → ``s' = [0, 1]`` (len 2).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from rlrec.data.transitions import TransitionBatch
from rlrec.objectives import LossInputs
from rlrec.objectives.dqn import DQNConfig
from rlrec.objectives.functional import (
    bootstrap_target,
    ips_weight,
    sa2c_advantage,
    sample_negatives,
    td_loss,
)
from rlrec.objectives.sa2c import SA2CConfig
from rlrec.objectives.sac import SACConfig
from rlrec.objectives.snqn import SNQNConfig
from rlrec.objectives.sqn import SQNConfig
from rlrec.objectives.supervised import SupervisedConfig

N, PAD = 3, 3
LOG3 = math.log(3.0)


class TableNet(nn.Module):
    """``forward`` = one-hot of the last real item; heads are the given tables (rows = items)."""

    def __init__(self, q_rows: list[list[float]], ce_rows: list[list[float]] | None = None) -> None:
        super().__init__()
        fill = lambda rows: rows + [[0.0] * N] * (N + 1 - len(rows))  # noqa: E731
        self.q_table = nn.Parameter(torch.tensor(fill(q_rows)))
        self.ce_table = nn.Parameter(torch.tensor(fill(ce_rows or [])))

    def forward(self, state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        last = state.gather(1, (len_state - 1).unsqueeze(1)).squeeze(1)
        return nn.functional.one_hot(last, N + 1).float()

    def q(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.q_table

    def q_at(self, s: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.q(s).gather(1, items)

    def logits(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.ce_table


def batch(done: bool = False, is_buy: int = 1) -> TransitionBatch:
    return TransitionBatch(
        state=torch.tensor([[0, PAD]]),
        len_state=torch.tensor([1]),
        action=torch.tensor([1]),
        is_buy=torch.tensor([is_buy], dtype=torch.int8),
        next_state=torch.tensor([[0, 1]]),
        len_next_state=torch.tensor([2]),
        done=torch.tensor([done]),
    )


def inputs(main_q, step=0, negatives=((0, 2),), done=False, ce_rows=None) -> LossInputs:
    main = TableNet(main_q, ce_rows)
    target = TableNet([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    neg = torch.tensor(negatives) if negatives is not None else None
    return LossInputs(main, target, batch(done), neg, step)


MAIN_Q = [[1.0, 4.0, 0.0], [0.5, 3.0, 4.0]]
# positive: argmax Qm(s') = argmax [0.5, 3, 4] = 2 → Qt(s')[2] = 9 → y⁺ = 1 + 0.5·9 = 5.5;
#           Qm(s, a⁺) = 4 → ℓ⁺ = ½(5.5 − 4)² = 1.125
# negative: argmax Qm(s) = argmax [1, 4, 0] = 1 → Qt(s)[1] = 20 → y⁻ = 0 + 0.5·20 = 10;
#           negatives (0, 2): Qm = 1, 0 → ℓ⁻ = ½·81 + ½·100 = 90.5
# CE head all zeros → CE = log 3


def test_bootstrap_target_with_and_without_done() -> None:
    q_next = torch.tensor([20.0, 20.0])  # the value net at the selector's argmax
    y = bootstrap_target(q_next, torch.tensor([1.0, 1.0]), 0.5, torch.tensor([False, True]))
    assert y.tolist() == [11.0, 1.0]  # r + γ·20; done drops the bootstrap
    assert bootstrap_target(q_next, torch.tensor([0.0, 1.0]), 0.5).tolist() == [10.0, 11.0]


def test_td_loss_scale_and_gradient_only_into_q() -> None:
    q = torch.tensor([2.0], requires_grad=True)
    y = torch.tensor([5.0], requires_grad=True)
    loss = td_loss(q, y, 0.5)
    assert loss.item() == 4.5 and td_loss(q, y, 1.0).item() == 9.0
    loss.sum().backward()
    assert q.grad.item() == -3.0 and y.grad is None


def test_sqn_by_hand_and_done_masking() -> None:
    out = SQNConfig().compute_loss(inputs(MAIN_Q, negatives=None))
    assert out.loss.item() == pytest.approx(LOG3 + 1.125)
    done = SQNConfig().compute_loss(inputs(MAIN_Q, negatives=None, done=True))
    assert done.loss.item() == pytest.approx(LOG3 + 0.5 * (1.0 - 4.0) ** 2)


def test_snqn_negative_td_bootstraps_on_current_state() -> None:
    out = SNQNConfig().compute_loss(inputs(MAIN_Q))
    assert out.loss.item() == pytest.approx(LOG3 + 1.125 + 90.5)
    assert out.logs["td_neg"].item() == pytest.approx(90.5)
    mean = SNQNConfig(neg_reduction="mean").compute_loss(inputs(MAIN_Q))
    assert mean.loss.item() == pytest.approx(LOG3 + 1.125 + 45.25)
    # a done transition masks the positive bootstrap only, never the negative target
    done = SNQNConfig().compute_loss(inputs(MAIN_Q, done=True))
    assert done.loss.item() == pytest.approx(LOG3 + 0.5 * (1 - 4) ** 2 + 90.5)


def test_negative_td_bootstraps_on_s_when_s_and_next_state_differ_everywhere() -> None:
    # A full window slides: s = [0, 2] → a⁺ = 1 → s' = [2, 1]; s and s' differ at every position,
    # so bootstrapping the negatives on s' (or on s' read with s's length) cannot go unnoticed.
    slid = TransitionBatch(
        state=torch.tensor([[0, 2]]),
        len_state=torch.tensor([2]),
        action=torch.tensor([1]),
        is_buy=torch.tensor([1], dtype=torch.int8),
        next_state=torch.tensor([[2, 1]]),
        len_next_state=torch.tensor([2]),
        done=torch.tensor([False]),
    )
    main_q = [[1.0, 4.0, 0.0], [0.5, 3.0, 4.0], [2.0, 1.0, 5.0]]  # rows: last item 0, 1, 2
    target_q = [[10.0, 20.0, 30.0], [7.0, 8.0, 9.0], [11.0, 13.0, 17.0]]
    # positive: Qm(s, a⁺) = Qm[2][1] = 1; argmax Qm(s') = argmax [0.5, 3, 4] = 2 → Qt(s')[2] = 9
    #           → y⁺ = 1 + 0.5·9 = 5.5, ℓ⁺ = ½(5.5 − 1)² = 10.125
    # negative: argmax Qm(s) = argmax [2, 1, 5] = 2 → Qt(s)[2] = 17 → y⁻ = 0 + 0.5·17 = 8.5;
    #           negatives (0, 2): Qm(s) = 2, 5 → ℓ⁻ = ½(8.5 − 2)² + ½(8.5 − 5)² = 27.25
    #           (on s' it would be y⁻ = 4.5 and ℓ⁻ = 3.25)
    for done in (False, True):
        b = dataclasses.replace(slid, done=torch.tensor([done]))
        x = LossInputs(TableNet(main_q), TableNet(target_q), b, torch.tensor([[0, 2]]), 0)
        out = SNQNConfig().compute_loss(x)
        assert out.logs["target_neg"].item() == pytest.approx(8.5)
        assert out.logs["td_neg"].item() == pytest.approx(27.25)
        td_pos = 0.5 * (1.0 - 1.0) ** 2 if done else 10.125  # done masks the positive only
        assert out.logs["target_pos"].item() == pytest.approx(1.0 if done else 5.5)
        assert out.loss.item() == pytest.approx(LOG3 + td_pos + 27.25)


def test_dqn_has_no_ce_term_and_r_negative_enters_the_target() -> None:
    assert DQNConfig().compute_loss(inputs(MAIN_Q)).loss.item() == pytest.approx(1.125 + 90.5)
    # r_neg = −1 → y⁻ = −1 + 10 = 9 → ℓ⁻ = ½·64 + ½·81 = 72.5
    assert DQNConfig(r_negative=-1.0).compute_loss(inputs(MAIN_Q)).loss.item() == pytest.approx(
        1.125 + 72.5
    )


def test_sa2c_phase_switch_at_T_exactly_and_advantage() -> None:
    cfg = SA2CConfig(pretrain_steps=100)
    assert cfg.phase_index(99) == 0 and cfg.phase_index(100) == 1
    assert [p.lr for p in cfg.phases()] == [0.01, 0.001]
    before = cfg.compute_loss(inputs(MAIN_Q, step=99)).loss.item()
    assert before == pytest.approx(LOG3 + 1.125 + 90.5)  # = SNQN
    after = cfg.compute_loss(inputs(MAIN_Q, step=100))
    advantage = 4.0 - (4.0 + 1.0 + 0.0) / 3  # Q(s,a⁺) − mean over {a⁺} ∪ N
    assert after.logs["advantage"].item() == pytest.approx(advantage)
    assert after.loss.item() == pytest.approx(1.125 + 90.5 + advantage * LOG3)


def test_sa2c_clip_zeroes_below_average_positives() -> None:
    # negatives (0, 0) with Qm(s, 0) = 5 > Qm(s, a⁺) = 4 → A = 4 − 14/3 < 0
    q = [[5.0, 4.0, 0.0], [0.5, 3.0, 4.0]]
    clipped = SA2CConfig(pretrain_steps=0).compute_loss(
        inputs(q, negatives=((0, 0),), ce_rows=[[0.3, -0.2, 0.1]] * 2)
    )
    assert clipped.logs["advantage"].item() == 0.0
    net = TableNet(q, [[0.3, -0.2, 0.1]] * 2)
    x = LossInputs(
        net, TableNet([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]]), batch(), torch.tensor([[0, 0]]), 0
    )
    SA2CConfig(pretrain_steps=0).compute_loss(x).loss.backward()
    assert torch.count_nonzero(net.ce_table.grad) == 0  # zero actor gradient
    free = SA2CConfig(pretrain_steps=0, adv_clip=None).compute_loss(inputs(q, negatives=((0, 0),)))
    assert free.logs["advantage"].item() == pytest.approx(4.0 - 14.0 / 3)


def test_advantage_is_zero_when_all_q_equal_and_rho_is_one_without_smoothing() -> None:
    assert sa2c_advantage(torch.tensor([2.0]), torch.tensor([[2.0, 2.0]]), None).item() == 0.0
    logits = torch.tensor([[0.0, 0.0, 0.0], [5.0, -1.0, 2.0]])
    action = torch.tensor([1, 0])
    beta = torch.tensor([0.7, 0.1, 0.2])
    assert torch.equal(ips_weight(logits, action, beta, (0.1, 10.0), 0.0), torch.ones(2))
    rho = ips_weight(logits, action, beta, (0.1, 10.0), 1.0)
    pi0 = math.exp(5) / (math.exp(5) + math.exp(-1) + math.exp(2))
    assert rho.tolist() == pytest.approx([(1 / 3) / 0.1, pi0 / 0.7])
    half = ips_weight(
        logits, torch.tensor([1, 1]), torch.tensor([0.7, 1e-4, 0.2]), (0.1, 10.0), 0.5
    )
    assert half.tolist() == pytest.approx([math.sqrt(10.0), math.sqrt(10.0)])  # clipped at 10


def test_sac_weighting_per_sample_vs_legacy_batch_mean() -> None:
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
    grads = {}
    for mode in ("per_sample", "legacy_batch_mean"):
        net = TableNet(q, ce)
        x = LossInputs(net, TableNet(q, ce), two, None, step=10)
        SACConfig(warmup_steps=0, sac_weighting=mode).compute_loss(x).loss.backward()
        grads[mode] = net.ce_table.grad.clone()
    # per-sample: row 0 weighted by Q=4, row 1 by Q=−2; batch mean: both by (4 − 2)/2 = 1
    assert not torch.allclose(grads["per_sample"], grads["legacy_batch_mean"])
    p0 = torch.softmax(torch.tensor(ce[0]), 0)
    expected_row0 = 4.0 * (p0 - torch.tensor([0.0, 1.0, 0.0])) / 2
    assert torch.allclose(grads["per_sample"][0], expected_row0)
    assert torch.allclose(
        grads["legacy_batch_mean"][0], 1.0 * (p0 - torch.tensor([0.0, 1.0, 0.0])) / 2
    )


def test_supervised_is_mean_cross_entropy() -> None:
    net = TableNet(MAIN_Q, [[0.0, math.log(2.0), 0.0]] * 2)
    out = SupervisedConfig().compute_loss(LossInputs(net, None, batch(), None, 0))
    assert out.loss.item() == pytest.approx(-math.log(2.0 / 4.0))


def test_negative_sampling_is_uniform_over_other_items_and_seeded() -> None:
    action = torch.full((20000,), 3)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    neg = sample_negatives(action, 6, 5, gen())
    assert torch.equal(neg, sample_negatives(action, 6, 5, gen()))
    assert not bool((neg == 3).any()) and int(neg.min()) == 0 and int(neg.max()) == 5
    counts = torch.bincount(neg.flatten(), minlength=6).float() / neg.numel()
    assert counts[3] == 0
    assert torch.allclose(counts[[0, 1, 2, 4, 5]], torch.full((5,), 0.2), atol=0.01)
    hist = torch.tensor([[0, 1, 6]]).expand(20000, 3)  # 6 = pad, ignored in effect
    excl = sample_negatives(action, 6, 5, gen(), exclude=hist)
    assert set(excl.unique().tolist()) == {2, 4, 5}


def test_eval_head_must_exist() -> None:
    with pytest.raises(ValueError, match="dqn has no CE head"):
        DQNConfig(eval_head="ce")
    with pytest.raises(ValueError, match="supervised has no Q head"):
        SupervisedConfig(eval_head="q")
