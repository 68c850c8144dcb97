"""The response-model baselines fitted beside every URM (global rate, item rate, biases, MF)."""

from __future__ import annotations

import math

import torch

from rlrec.sim.baselines import (
    ITEM_PRIOR,
    baseline_reports,
    fit_logistic,
    global_rate,
    item_rate,
)
from rlrec.sim.dataset import ListTensors


def lists(users: list[int], exposure: list[list[int]], labels: list[list[int]]) -> ListTensors:
    r = len(users)
    return ListTensors(
        user=torch.tensor(users),
        history=torch.zeros(r, 1, dtype=torch.long),
        history_mask=torch.zeros(r, 1, dtype=torch.bool),
        exposure=torch.tensor(exposure),
        labels=torch.tensor(labels, dtype=torch.float32),
        timestamp=torch.arange(r),
        seen=torch.zeros(r),
        positives=torch.zeros(r),
    )


# 3 users, items 1..3, lists of 2: item 1 is liked 2 of 3 times, items 2 and 3 never (rate 1/3).
TRAIN = lists([0, 1, 2], [[1, 2], [1, 3], [2, 1]], [[1, 0], [1, 0], [0, 0]])
VAL = lists([0, 1], [[1, 3], [2, 3]], [[1, 0], [0, 1]])


def test_global_rate_by_hand() -> None:
    p = 2 / 6
    logits = global_rate(TRAIN)(VAL)
    assert torch.allclose(torch.sigmoid(logits), torch.full((2, 2), p, dtype=torch.float64))
    report = baseline_reports(TRAIN, VAL, n_users=3, n_items=3)["global_rate"]
    assert report["auc"] == 0.5  # one score for everything: every pair a tie
    want = -(0.5 * math.log(p) + 0.5 * math.log(1 - p))  # two positives, two negatives
    assert math.isclose(report["log_loss"], want, rel_tol=1e-9)


def test_item_rate_by_hand() -> None:
    p, a = 2 / 6, ITEM_PRIOR
    want = {1: (2 + a * p) / (3 + a), 2: (0 + a * p) / (2 + a), 3: (0 + a * p) / (1 + a)}
    probs = torch.sigmoid(item_rate(TRAIN, n_items=3)(VAL))
    expected = torch.tensor([[want[1], want[3]], [want[2], want[3]]], dtype=torch.float64)
    assert torch.allclose(probs, expected)
    # validation: positives (item 1, p=.410), (item 3, p=.303); negatives (item 3 .303), (item 2
    # .278); pairs pos > neg: .410 beats both = 2, .303 ties .303 = ½, .303 > .278 = 1 → 3.5 / 4
    report = baseline_reports(TRAIN, VAL, n_users=3, n_items=3)["item_rate"]
    assert math.isclose(report["auc"], 3.5 / 4)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    q = expected.reshape(-1)
    log_loss = float(-(y * q.log() + (1 - y) * (1 - q).log()).mean())
    assert math.isclose(report["log_loss"], log_loss, rel_tol=1e-6)


def test_logistic_bias_model_is_at_its_optimum() -> None:
    """Stationarity of ``mean BCE + l2/2·Σθ²/m``: per item ``Σ(σ − y) + l2·b_j = 0``, and the free
    global bias makes the residuals sum to zero."""
    l2 = 2.0
    scorer = fit_logistic(TRAIN, n_users=3, n_items=3, l2=l2)
    p = torch.sigmoid(scorer(TRAIN)).reshape(-1)
    y = TRAIN.labels.reshape(-1).double()
    items = TRAIN.exposure.reshape(-1)
    residual = p - y
    assert abs(float(residual.sum())) < 1e-6
    # at the optimum b_j = −Σ_j(σ − y)/l2 and b_u = −Σ_u(σ − y)/l2; score differences show them
    per_item = torch.zeros(4, dtype=torch.float64).index_add_(0, items, residual)
    users = TRAIN.user.repeat_interleave(2)
    per_user = torch.zeros(3, dtype=torch.float64).index_add_(0, users, residual)
    s = scorer(TRAIN)
    item_gap = float(s[0, 0] - s[0, 1])  # user 0 saw items 1 and 2: b_1 − b_2
    user_gap = float(s[0, 0] - s[1, 0])  # users 0 and 1 saw item 1: b_u0 − b_u1
    assert math.isclose(item_gap, float(per_item[2] - per_item[1]) / l2, abs_tol=1e-6)
    assert math.isclose(user_gap, float(per_user[1] - per_user[0]) / l2, abs_tol=1e-6)
    assert abs(item_gap) > 0.01  # not a trivially flat fit


def test_mf_learns_an_interaction_the_bias_model_cannot() -> None:
    """Two user groups with opposite tastes over two items: no main effects, only ⟨p_u, q_j⟩."""
    users, exposure, labels = [], [], []
    for u in range(40):
        group = u % 2
        for _ in range(3):
            users.append(u)
            exposure.append([1, 2])
            labels.append([1 - group, group])
    data = lists(users, exposure, labels)
    reports = baseline_reports(data, data, n_users=40, n_items=2)
    assert abs(reports["user_item_bias"]["auc"] - 0.5) < 0.05
    assert reports["logistic_mf"]["auc"] > 0.95
    assert reports["logistic_mf"]["log_loss"] < reports["user_item_bias"]["log_loss"]
    assert reports["logistic_mf"]["l2"] in (1.0, 10.0, 100.0)


def test_unseen_users_and_items_score_at_the_global_bias() -> None:
    scorer = fit_logistic(TRAIN, n_users=5, n_items=5, l2=1.0, dim=4)
    unseen = lists([3, 4], [[4, 5], [5, 4]], [[0, 1], [1, 0]])
    s = scorer(unseen)
    assert torch.allclose(s, s[0, 0].expand_as(s), atol=1e-6)
