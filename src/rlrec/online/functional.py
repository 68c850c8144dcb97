"""Tensor math of the online agents' losses (P-HAC §2.6, Table 3), apart from any class.

Shapes: ``B`` transitions, ``K`` slate size, ``N`` items, ``d`` kernel/hyper-action width. Slates
hold item ids ``1..N``; score matrices ``(B, N)`` have column ``i - 1`` for item ``i``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rlrec.models.gather import table_rows

HyperReduction = Literal["mean", "sum_dims"]
SlateLogProb = Literal["independent", "plackett_luce"]


def td_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    legacy_done_mask: bool = False,
) -> torch.Tensor:
    """``y = r + γ (1 − d) V'`` (P-HAC Eq. 7), all ``(B,)``.

    ``legacy_done_mask`` reproduces the reference's inverted mask ``r + γ d V'``: it
    bootstraps only on terminal transitions and is myopic elsewhere.
    """
    d = terminated.to(reward.dtype)
    mask = d if legacy_done_mask else 1.0 - d
    return reward + gamma * mask * next_value


def n_step_targets(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    legacy_done_mask: bool = False,
) -> torch.Tensor:
    """n-step TD targets ``(m, B)`` of a rollout of ``m`` steps of ``B`` slots (all inputs
    ``(m, B)``; ``next_value`` = ``V'(s'_t)`` of each transition's own next state):

    ``y_t = r_t + γ (1 − d_t) · (V'(s'_t) if t = m − 1 or truncated_t else y_{t+1})``.

    A slot whose session ended (left or truncated) is refilled with a new user, so the return never
    runs across sessions: a truncated session bootstraps from its own next state. ``m = 1`` is
    :func:`td_target`; ``legacy_done_mask`` inverts the mask at every step.
    """
    out = torch.empty_like(reward)
    following = next_value[-1]
    for t in reversed(range(reward.shape[0])):
        bootstrap = torch.where(truncated[t], next_value[t], following)
        out[t] = td_target(reward[t], terminated[t], bootstrap, gamma, legacy_done_mask)
        following = out[t]
    return out


@torch.no_grad()
def polyak_(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``θ' ← τ θ + (1 − τ) θ'`` for every parameter, in place."""
    for p_t, p in zip(target.parameters(), source.parameters(), strict=True):
        p_t.lerp_(p, tau)


def mean_pool(phi: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
    """HAC's inverse module ``Ẑ = (1/K) Σ_k Φ(x_{a_k})``: kernel table ``(N+1, d)``, slate ``(B, K)``
    → ``(B, d)`` (P-HAC Eq. 6, average pooling)."""
    return table_rows(phi, slate).mean(1)


def hyper_alignment(
    z_hat: torch.Tensor, z: torch.Tensor, reduction: HyperReduction = "mean"
) -> torch.Tensor:
    """``‖Ẑ − Z‖²`` averaged over the batch (P-HAC Eq. 9), ``(B, d)`` each.

    ``mean`` averages over the ``d`` dimensions too (the reference); ``sum_dims`` sums them (the
    paper's squared norm, ``d`` times larger).
    """
    sq = (z_hat - z).pow(2)
    return sq.mean() if reduction == "mean" else sq.sum(1).mean()


def slate_logits(phi: torch.Tensor, slate: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``ℓ_k = ⟨Φ(x_{a_k}), Z⟩``: kernel table ``(N+1, d)``, slate ``(B, K)``, ``Z`` ``(B, d)`` →
    ``(B, K)``."""
    return (table_rows(phi, slate) * z[:, None, :]).sum(-1)


def slate_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``mean_{b,k} BCE(σ(ℓ), y)`` (P-HAC Eq. 10 with its minus sign), computed from logits."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def clipped_advantage(target: torch.Tensor, value: torch.Tensor, clip: float = 1.0) -> torch.Tensor:
    """``clip(sg(y − V), −clip, clip)`` (the reference A2C), ``(B,)``."""
    return (target - value).detach().clamp(-clip, clip)


def slate_log_prob(
    scores: torch.Tensor, slate: torch.Tensor, kind: SlateLogProb = "independent"
) -> torch.Tensor:
    """Log-probability ``(B,)`` of slates ``(B, K)`` under ``softmax(scores)`` ``(B, N)``.

    ``independent``: ``Σ_k log P(a_k)`` (P-HAC's ``P(a|Z) = Π P(i|Z)``, the reference A2C).
    ``plackett_luce``: the exact probability of drawing the slate in that order without replacement,
    ``Σ_k [s_{a_k} − log Σ_{i ∉ {a_1..a_{k−1}}} exp s_i]``.
    """
    picked = scores.gather(1, slate - 1)  # (B, K)
    if kind == "independent":
        return (picked - torch.logsumexp(scores, dim=1, keepdim=True)).sum(1)
    onehot = F.one_hot(slate - 1, scores.shape[1])  # (B, K, N)
    chosen = onehot.cumsum(1) - onehot  # items picked before position k
    available = scores[:, None, :].masked_fill(chosen.bool(), -torch.inf)  # (B, K, N)
    return (picked - torch.logsumexp(available, dim=2)).sum(1)


def neg_entropy(scores: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ_i P_i log P_i`` of ``softmax(scores)`` ``(B, N)`` (A2C's entropy term)."""
    logp = torch.log_softmax(scores, dim=1)
    return (logp.exp() * logp).sum(1).mean()


def slate_nll(scores: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
    """``mean_{b,k} −log softmax(scores)[a_k]`` (PG-RA's inverse loss, with ``log_softmax``)."""
    return -(scores.log_softmax(1).gather(1, slate - 1)).mean()


def smoothed_action(z: torch.Tensor, std: float, clip: float, gen: torch.Generator) -> torch.Tensor:
    """TD3 target smoothing ``Z + clip(ε, −c, c)``, ``ε ~ N(0, std²)`` drawn from ``gen``."""
    noise = torch.randn(z.shape, generator=gen).to(z.device) * std
    return z + noise.clamp(-clip, clip)
