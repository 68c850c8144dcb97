"""The tensor math of the online agents (spec-online §D) on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from sim_helpers import single_thread
from torch import nn

from rlrec.online import functional as Fn


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


R = torch.tensor([1.0, 0.5, -0.2])
DONE = torch.tensor([False, True, True])
V_NEXT = torch.tensor([2.0, 3.0, 10.0])


def test_td_target_corrected_mask() -> None:
    # y = r + γ (1 − d) V': bootstrap only where the user stayed
    y = Fn.td_target(R, DONE, V_NEXT, 0.9)
    assert y.tolist() == pytest.approx([1.0 + 1.8, 0.5, -0.2])


def test_td_target_legacy_inverted_mask() -> None:
    # reference: y = r + γ d V' — myopic on ordinary steps, bootstraps into the next user at the end
    y = Fn.td_target(R, DONE, V_NEXT, 0.9, legacy_done_mask=True)
    assert y.tolist() == pytest.approx([1.0, 0.5 + 2.7, -0.2 + 9.0])


def test_n_step_targets_by_hand() -> None:
    """Rollout of 3 steps, γ = 0.5. Slot 0 never ends; slot 1 leaves at t = 0 (a new user from
    t = 1) and is truncated at t = 1 (another new user at t = 2)."""
    reward = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    terminated = torch.tensor([[False, True], [False, False], [False, False]])
    truncated = torch.tensor([[False, False], [False, True], [False, False]])
    v_next = torch.tensor([[10.0, 7.0], [20.0, 8.0], [30.0, 9.0]])
    y = Fn.n_step_targets(reward, terminated, truncated, v_next, 0.5)
    # slot 0: y2 = 3 + 0.5·30 = 18, y1 = 2 + 0.5·18 = 11, y0 = 1 + 0.5·11 = 6.5
    # slot 1: y2 = 1 + 0.5·9, y1 = 1 + 0.5·8 (its own next state), y0 = 1 (left)
    assert y.flatten().tolist() == pytest.approx([6.5, 1.0, 11.0, 5.0, 18.0, 5.5])
    one = Fn.n_step_targets(
        R[None], DONE[None], torch.zeros(1, 3, dtype=torch.bool), V_NEXT[None], 0.9
    )
    assert torch.equal(one[0], Fn.td_target(R, DONE, V_NEXT, 0.9))


def test_polyak_on_one_parameter() -> None:
    target, source = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        target.weight.fill_(0.0)
        source.weight.fill_(1.0)
    Fn.polyak_(target, source, 0.01)
    assert float(target.weight.detach()) == pytest.approx(0.01)
    Fn.polyak_(target, source, 0.01)
    assert float(target.weight.detach()) == pytest.approx(0.01 + 0.99 * 0.01)
    assert float(source.weight.detach()) == 1.0


def test_mean_pool_and_slate_logits() -> None:
    phi = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])  # items 1..3, row 0 pad
    slate = torch.tensor([[1, 2], [3, 1]])
    assert Fn.mean_pool(phi, slate).tolist() == [[0.5, 1.0], [2.0, 1.5]]
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert Fn.slate_logits(phi, slate, z).tolist() == [[1.0, 2.0], [-3.0, 0.0]]


def test_hyper_alignment_reductions() -> None:
    z_hat = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    # squared errors: [[1, 4], [9, 0]]
    assert float(Fn.hyper_alignment(z_hat, z, "mean")) == pytest.approx(14 / 4)
    assert float(Fn.hyper_alignment(z_hat, z, "sum_dims")) == pytest.approx(14 / 2)


def test_slate_bce_is_the_negative_log_likelihood() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # σ = 0.5, 0.75
    labels = torch.tensor([[1.0, 0.0]])
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert float(Fn.slate_bce(logits, labels)) == pytest.approx(expected)


def test_advantage_clipping() -> None:
    y = torch.tensor([5.0, -5.0, 0.3], requires_grad=True)
    a = Fn.clipped_advantage(y, torch.zeros(3))
    assert a.tolist() == pytest.approx([1.0, -1.0, 0.3]) and not a.requires_grad


SCORES = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))


def test_slate_log_prob_independent() -> None:
    lp = Fn.slate_log_prob(SCORES, torch.tensor([[4, 2]]), "independent")
    assert float(lp) == pytest.approx(math.log(0.4) + math.log(0.2))


def test_slate_log_prob_plackett_luce() -> None:
    # draw item 4 (0.4), then item 2 among the rest (0.2 / 0.6), then item 1 (0.1 / 0.4)
    lp = Fn.slate_log_prob(SCORES, torch.tensor([[4, 2, 1]]), "plackett_luce")
    assert float(lp) == pytest.approx(math.log(0.4) + math.log(0.2 / 0.6) + math.log(0.1 / 0.4))
    # the probabilities of all ordered pairs sum to one
    pairs = torch.tensor([[a, b] for a in range(1, 5) for b in range(1, 5) if a != b])
    total = Fn.slate_log_prob(SCORES.expand(len(pairs), 4), pairs, "plackett_luce").exp().sum()
    assert float(total) == pytest.approx(1.0)


def test_entropy_and_inverse_nll() -> None:
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert float(Fn.neg_entropy(SCORES)) == pytest.approx(float((p * p.log()).sum()))
    nll = Fn.slate_nll(SCORES, torch.tensor([[4, 2]]))
    assert float(nll) == pytest.approx(-(math.log(0.4) + math.log(0.2)) / 2)


def test_target_smoothing_is_clipped() -> None:
    z = torch.zeros(500, 4)
    out = Fn.smoothed_action(z, 100.0, 0.5, torch.Generator().manual_seed(0))
    assert float(out.abs().max()) == pytest.approx(0.5)
    assert float((out.abs() == 0.5).float().mean()) > 0.99  # std 100: almost all clipped
    small = Fn.smoothed_action(z, 0.01, 0.5, torch.Generator().manual_seed(0))
    assert float(small.std()) == pytest.approx(0.01, rel=0.1)
