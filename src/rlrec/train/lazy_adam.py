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

``moment_dtype=torch.bfloat16`` stores ``m`` and ``v`` in bfloat16 (half the optimiser's memory:
for a 1M-item catalogue's embedding and heads the moments are most of a step's footprint). The
arithmetic stays float32 on the gathered rows; the moments are written back with **stochastic
rounding** — each float32 rounds up or down to a neighbouring bfloat16 with probabilities that
make the stored value exact in expectation. Round-to-nearest would lose the update of ``v`` by
``β₂ = 0.999`` (a 0.1 % change, below bfloat16's 0.4 % resolution), freezing a row's ``v`` at its
largest gradient; stochastic rounding keeps every update in expectation. The rounding noise is
drawn from ``(seed, parameter index, step)``, so a run is reproducible and resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from rlrec.seeding import derive_seed


class LazyAdam(torch.optim.Optimizer):
    """Adam for row-sparse gradients with lazy moments (see the module docstring)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        moment_dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        if moment_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"moment_dtype must be float32 or bfloat16, not {moment_dtype}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.moment_dtype = moment_dtype
        self.seed = seed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's loading, then the moments back in ``moment_dtype`` (torch casts optimiser
        state to its parameter's dtype)."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key] = state[key].to(self.moment_dtype)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for index, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, dtype=self.moment_dtype)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=self.moment_dtype)
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
                m = state["exp_avg"][rows].float().lerp_(g, 1 - beta1)
                v = state["exp_avg_sq"][rows].float().mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if self.moment_dtype == torch.float32:
                    state["exp_avg"][rows] = m
                    state["exp_avg_sq"][rows] = v
                else:
                    gen = torch.Generator(p.device)
                    gen.manual_seed(derive_seed(self.seed, "lazy_adam", index, int(t)))
                    state["exp_avg"][rows] = round_to_bfloat16(m, gen)
                    state["exp_avg_sq"][rows] = round_to_bfloat16(v, gen)
                denom = (v.sqrt() / bc2_sqrt).add_(group["eps"])
                p.index_add_(0, rows, m / denom, alpha=-step_size)


def round_to_bfloat16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (float32, any shape) stochastically rounded to bfloat16, unbiased: with ``lo ≤ x ≤ hi``
    the two neighbouring bfloat16 values, ``hi`` with probability ``(x − lo) / (hi − lo)``.

    A bfloat16 is the top 16 bits of a float32; adding a uniform 16-bit integer to the bit pattern
    carries into those bits with exactly that probability, and the low bits are then cut off
    (sign-magnitude bits: the same holds for negative values; ±inf stays ±inf)."""
    noise = torch.randint(
        0, 1 << 16, x.shape, dtype=torch.int32, device=x.device, generator=generator
    )
    bits = (x.contiguous().view(torch.int32) + noise).bitwise_and_(-(1 << 16))
    return bits.view(torch.float32).to(torch.bfloat16)
