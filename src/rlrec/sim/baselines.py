"""Simple response models fitted beside every URM: what a learned world model has to beat.

A simulator samples its users' responses from the URM (P-HAC §3.1.2), so agents can only be told
apart if the URM knows more about a user's response than item popularity does. These baselines are
fitted on the same records as the URM and scored on the same validation split, with the same
report (:func:`rlrec.sim.metrics.response_report`); each scores an exposed item ``j`` of a list of
user ``u`` with a logit ``s_uj``:

* ``global_rate`` — the training positive rate ``p̄``: ``s = logit(p̄)`` (AUC 0.5 by construction);
* ``item_rate`` — the item's positive rate smoothed towards ``p̄`` with a prior worth
  :data:`ITEM_PRIOR` exposures: ``p_j = (pos_j + α p̄) / (n_j + α)``, ``s = logit(p_j)``;
* ``user_item_bias`` — logistic regression ``s = b + b_u + b_j``;
* ``logistic_mf`` — logistic matrix factorisation ``s = b + b_u + b_j + ⟨p_u, q_j⟩``
  (:data:`MF_DIM` factors).

The two logistic models minimise the mean BCE plus ``λ/2 · Σ θ² / m`` over ``m`` training pairs
(a Gaussian prior of variance ``1/λ`` on every user and item parameter; the global bias is free) by
full-batch L-BFGS; ``λ`` is chosen from :data:`L2_GRID` by validation log-loss, as the URM's
settings are. Users and items without training exposures keep zero parameters (the prior's mode),
so they are scored at the global bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F

from rlrec.seeding import generator
from rlrec.sim.dataset import ListTensors
from rlrec.sim.metrics import log_loss, response_report

ITEM_PRIOR = 10.0
MF_DIM = 16
L2_GRID = (1.0, 10.0, 100.0)
BASELINES = ("global_rate", "item_rate", "user_item_bias", "logistic_mf")

Scorer = Callable[[ListTensors], torch.Tensor]


def _pairs(data: ListTensors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened ``(users (m,), items (m,), labels (m,) float64)`` of every exposed item."""
    k = data.exposure.shape[1]
    users = data.user.repeat_interleave(k)
    return users, data.exposure.reshape(-1), data.labels.reshape(-1).double()


def global_rate(train: ListTensors) -> Scorer:
    """Constant logit of the training positive rate."""
    logit = torch.logit(train.labels.double().mean(), eps=1e-7)
    return lambda data: torch.full(data.labels.shape, float(logit), dtype=torch.float64)


def item_rate(train: ListTensors, n_items: int, prior: float = ITEM_PRIOR) -> Scorer:
    """Each item's positive rate with ``prior`` pseudo-exposures at the global rate."""
    _, items, labels = _pairs(train)
    rate = labels.mean()
    pos = torch.bincount(items, weights=labels, minlength=n_items + 1)
    seen = torch.bincount(items, minlength=n_items + 1).double()
    table = torch.logit((pos + prior * rate) / (seen + prior), eps=1e-7)
    return lambda data: table[data.exposure]


class _Logistic(torch.nn.Module):
    """``s = b + b_u + b_j (+ ⟨p_u, q_j⟩)``; the factors start small and random (seeded)."""

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int, base: float) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(base, dtype=torch.float64))
        self.user_bias = torch.nn.Parameter(torch.zeros(n_users, dtype=torch.float64))
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items + 1, dtype=torch.float64))
        self.dim = dim
        if dim:
            gen = generator(seed, "baseline_mf")
            self.user_f = torch.nn.Parameter(
                0.01 * torch.randn(n_users, dim, generator=gen, dtype=torch.float64)
            )
            self.item_f = torch.nn.Parameter(
                0.01 * torch.randn(n_items + 1, dim, generator=gen, dtype=torch.float64)
            )

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        s = self.bias + self.user_bias[users] + self.item_bias[items]
        if self.dim:
            s = s + (self.user_f[users] * self.item_f[items]).sum(-1)
        return s

    def penalty(self) -> torch.Tensor:
        """``Σ θ²`` over the user and item parameters."""
        return cast(
            torch.Tensor,
            sum(p.square().sum() for name, p in self.named_parameters() if name != "bias"),
        )


def fit_logistic(
    train: ListTensors,
    n_users: int,
    n_items: int,
    l2: float,
    dim: int = 0,
    seed: int = 0,
    max_iter: int = 200,
) -> Scorer:
    """Full-batch L-BFGS on ``mean BCE + l2/2 · Σ θ² / m`` (see the module docstring)."""
    users, items, labels = _pairs(train)
    model = _Logistic(n_users, n_items, dim, seed, float(torch.logit(labels.mean(), eps=1e-7)))
    opt = torch.optim.LBFGS(
        model.parameters(),
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )
    m = labels.numel()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(users, items), labels)
        loss = loss + 0.5 * l2 * model.penalty() / m
        loss.backward()
        return loss

    opt.step(closure)
    model.requires_grad_(False)
    k = train.exposure.shape[1]
    return lambda data: model(data.user.repeat_interleave(k), data.exposure.reshape(-1)).reshape(
        data.exposure.shape
    )


def fit_baselines(
    train: ListTensors, val: ListTensors, n_users: int, n_items: int, seed: int = 0
) -> dict[str, tuple[Scorer, dict[str, float]]]:
    """Every baseline of :data:`BASELINES` fitted on ``train``: ``{name: (scorer, settings)}``.

    The logistic models' ``l2`` is the :data:`L2_GRID` value of lowest log-loss on ``val`` (the
    first grid value when ``val`` is empty).
    """
    out: dict[str, tuple[Scorer, dict[str, float]]] = {
        "global_rate": (global_rate(train), {}),
        "item_rate": (item_rate(train, n_items), {"prior": ITEM_PRIOR}),
    }
    for name, dim in (("user_item_bias", 0), ("logistic_mf", MF_DIM)):
        best: tuple[float, Scorer, float] | None = None
        for l2 in L2_GRID:
            scorer = fit_logistic(train, n_users, n_items, l2, dim, seed)
            loss = log_loss(torch.sigmoid(scorer(val)), val.labels) if len(val) else math.inf
            if best is None or loss < best[0]:
                best = (loss, scorer, l2)
        assert best is not None
        settings = {"l2": best[2]} | ({"dim": float(dim)} if dim else {})
        out[name] = (best[1], settings)
    return out


def baseline_reports(
    train: ListTensors, val: ListTensors, n_users: int, n_items: int, seed: int = 0
) -> dict[str, dict[str, float]]:
    """``{name: response_report on val, plus the chosen settings}`` for every baseline."""
    reports = {}
    for name, (scorer, settings) in fit_baselines(train, val, n_users, n_items, seed).items():
        report = response_report(scorer(val), val.labels) if len(val) else {}
        reports[name] = report | settings
    return reports
