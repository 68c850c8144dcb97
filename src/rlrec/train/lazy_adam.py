"""Lazy Adam: Adam's update on the rows a row-sparse gradient touches, nothing elsewhere.

For a parameter ``W [n, H]`` whose gradient is a sparse COO tensor (``F.embedding(...,
sparse=True)``), each step updates, for the touched rows ``R`` only, with ``g`` the coalesced
gradient rows and ``t`` the parameter's step count:

``m_R ← β₁ m_R + (1 − β₁) g``, ``v_R ← β₂ v_R + (1 − β₂) g²``,
``W_R ← W_R − lr · (m_R / (1 − β₁ᵗ)) / (√v_R / √(1 − β₂ᵗ) + ε)``

— torch's ``Adam`` arithmetic, so a row touched at every step follows dense Adam exactly and the
first update of a row equals dense Adam's. The difference ("lazy", as TensorFlow's LazyAdam and
torch's ``SparseAdam``): a row a step does not touch keeps its moments and its value, where dense
Adam would decay the moments and keep moving the row with its momentum. The cost of a step is set
by the rows touched, not by ``n``. (torch's ``SparseAdam`` adds ε before the bias correction,
which changes updates whose gradients are near ε; hence this class.) A dense gradient is applied
to every row, as dense Adam would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class LazyAdam(torch.optim.Optimizer):
    """Adam for row-sparse gradients with lazy moments (see the module docstring)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                step_size = group["lr"] / (1 - beta1**t)
                bc2_sqrt = math.sqrt(1 - beta2**t)
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, g = grad.indices()[0], grad.values()
                else:
                    rows, g = torch.arange(p.shape[0], device=p.device), grad
                m = state["exp_avg"][rows].lerp_(g, 1 - beta1)
                v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                state["exp_avg"][rows] = m
                state["exp_avg_sq"][rows] = v
                denom = (v.sqrt() / bc2_sqrt).add_(group["eps"])
                p.index_add_(0, rows, m / denom, alpha=-step_size)
