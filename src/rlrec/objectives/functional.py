"""Tensor math of the offline objectives (P-SA2C §3, P-CCQL §3), free of any module state.

Shapes: ``B`` batch, ``n`` items, ``K`` sampled negatives, ``L`` state window.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def bootstrap_target(
    q_next: torch.Tensor, reward: torch.Tensor, gamma: float, done: torch.Tensor | None = None
) -> torch.Tensor:
    """``y = r + γ·(1 − done)·q_next`` with ``q_next [B]`` the bootstrapped value.

    For double Q (P-SA2C Algorithm 1, lines 10–12) ``q_next = Q_val(s', argmax_a Q_sel(s', a))``:
    the selector is the main network, the value the target one, read by the caller at that one item.
    ``done``: ``[B]`` bool or ``None`` (negative-action targets are never masked). Returns ``[B]``.
    """
    if done is not None:
        q_next = q_next * (~done).to(q_next.dtype)
    return reward + gamma * q_next


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Per-element squared TD error ``scale·(y − Q)²``, gradient only into ``q_taken``: ½δ² by
    default (trfl's, the reference); P-SA2C Eq. 4 writes δ² (``scale = 1``)."""
    return scale * (target.detach() - q_taken).pow(2)


def sample_negatives(
    action: torch.Tensor,
    n_items: int,
    k: int,
    generator: torch.Generator,
    exclude: torch.Tensor | None = None,
    max_rounds: int = 100,
) -> torch.Tensor:
    """``[B, K]`` uniform item ids in ``[0, n)``, with replacement, never equal to the positive
    (P-SA2C §4.1.4).

    Drawing from ``[0, n − 1)`` and shifting ids ``≥ a⁺`` by one is exactly uniform over the other
    items (the reference's redraw-on-collision). With ``exclude`` (``[B, L]`` ids, e.g. the history;
    pads ignored), draws that hit an excluded id are redrawn, vectorised, until none is left.
    """
    b = action.shape[0]
    draw = torch.randint(0, n_items - 1, (b, k), generator=generator, device="cpu").to(
        action.device
    )
    neg = draw + (draw >= action.unsqueeze(1)).to(draw.dtype)
    if exclude is None:
        return neg
    for _ in range(max_rounds):
        bad = (neg.unsqueeze(2) == exclude.unsqueeze(1)).any(dim=2)
        if not bool(bad.any()):
            return neg
        redraw = torch.randint(0, n_items - 1, (b, k), generator=generator, device="cpu").to(
            action.device
        )
        redraw = redraw + (redraw >= action.unsqueeze(1)).to(redraw.dtype)
        neg = torch.where(bad, redraw, neg)
    return neg


def cross_entropy(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Per-sample ``CE_b = −log softmax(y(s_b))[a_b]`` over the full catalogue, ``[B]``."""
    return F.cross_entropy(logits, action, reduction="none")


def sampled_cross_entropy(
    s: torch.Tensor,
    pos_rows: tuple[torch.Tensor, torch.Tensor],
    cand_rows: tuple[torch.Tensor, torch.Tensor],
    action: torch.Tensor,
    candidates: torch.Tensor,
    log_expected: torch.Tensor | None,
) -> torch.Tensor:
    """Per-sample sampled-softmax CE ``[B]`` of encoded states ``s [B, H]`` for logged actions
    ``action [B]`` and ``N`` candidate negatives ``candidates [N]`` shared by the batch, given the
    CE head's weight rows and biases at the actions ``([B, H], [B])`` and at the candidates
    ``([N, H], [N])``.

    ``l⁺_b = ⟨s_b, w_{a_b}⟩ + c_{a_b}``, ``l_{b,j} = ⟨s_b, w_j⟩ + c_j − log(N q_j)`` with
    ``log_expected = log(N q_j) [N]`` (the log-Q correction; ``None``: none), a candidate equal to
    ``a_b`` left out of row ``b`` (an accidental hit), and ``CE_b = log(e^{l⁺_b} + Σ_j e^{l_{b,j}})
    − l⁺_b``. With candidates drawn with replacement from ``q``, ``Σ_j e^{l_j}/(N q_j)`` is an
    unbiased estimate of ``Σ_{i≠a} e^{l_i}`` (importance sampling, Bengio & Senécal 2008), so the
    normaliser is the full softmax's in expectation; without the correction it is not.
    """
    pos = torch.einsum("bh,bh->b", s, pos_rows[0]) + pos_rows[1]
    neg = torch.addmm(cand_rows[1], s, cand_rows[0].T)  # [B, N]
    if log_expected is not None:
        neg = neg - log_expected
    neg = neg.masked_fill(candidates[None, :] == action[:, None], -torch.inf)
    return torch.logsumexp(torch.cat([pos[:, None], neg], dim=1), dim=1) - pos


def sa2c_advantage(
    q_pos: torch.Tensor, q_neg: torch.Tensor, clip: tuple[float, float] | None
) -> torch.Tensor:
    """``A = Q(s,a⁺) − mean(Q over {a⁺} ∪ N)`` (P-SA2C Eq. 6–7, duplicates counted), maybe clipped.

    ``q_pos``: ``[B]``, ``q_neg``: ``[B, K]``, both detached by the caller. The reference clips to
    ``[0, 10]`` by default, so below-average positives get zero actor weight.
    """
    mean = (q_pos + q_neg.sum(dim=1)) / (1 + q_neg.shape[1])
    adv = q_pos - mean
    return adv if clip is None else adv.clamp(clip[0], clip[1])


def ips_weight(
    logits: torch.Tensor,
    action: torch.Tensor,
    beta: torch.Tensor,
    clip: tuple[float, float],
    smooth: float,
) -> torch.Tensor:
    """Off-policy weight ``ρ = clip(π(a⁺|s) / β(a⁺), lo, hi) ** smooth`` (P-SA2C Eq. 10), ``[B]``.

    ``π`` is the softmax of the (detached) CE logits, ``β`` the behaviour policy (item popularity).
    ``smooth = 0`` gives ρ ≡ 1 exactly.
    """
    if smooth == 0:
        return torch.ones_like(action, dtype=logits.dtype)
    pi = torch.softmax(logits.detach(), dim=1).gather(1, action.unsqueeze(1)).squeeze(1)
    return (pi / beta[action]).clamp(clip[0], clip[1]).pow(smooth)


def _paired_view_cross_entropy(sim: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``−log softmax_{j≠i}(sim_ij)`` at the row's paired view ``(i ± B)``.

    ``sim``: ``[..., 2B, 2B]`` similarities of the stacked views ``[z1; z2]``; the diagonal (a view
    with itself) is excluded from the softmax; the positive of row ``i`` is ``i + B`` (and back).
    Computed as ``logsumexp_{j≠i} sim_ij − sim_{i,pos(i)}`` (one pass over ``sim``).
    """
    two_b = sim.shape[-1]
    b = two_b // 2
    no_self = torch.zeros(two_b, two_b, dtype=sim.dtype, device=sim.device)
    no_self.fill_diagonal_(float("-inf"))
    positive = torch.cat([torch.arange(b, two_b), torch.arange(0, b)]).to(sim.device)
    rows = torch.arange(two_b, device=sim.device)
    return (torch.logsumexp(sim + no_self, dim=-1) - sim[..., rows, positive]).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent (InfoNCE with cosine similarity, P-CCQL Eq. 3; CCQL's ``InfoNCECosine``).

    ``z1``, ``z2``: ``[B, d]`` two views of the same ``B`` states. Each of the ``2B`` views must pick
    its partner among the other ``2B − 1`` by cosine similarity / ``temperature``; the other states
    of the batch are the negatives. Equals ``log(2B − 1)`` when all embeddings are identical.
    """
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    return _paired_view_cross_entropy(z @ z.T / temperature)


class _RankOnePairedCE(torch.autograd.Function):
    """:func:`_paired_view_cross_entropy` of ``sim_t = u_t u_tᵀ`` for every row ``t`` of ``u``.

    ``u``: ``[d, 2B]`` → scalar. Exact, but neither pass keeps a ``[d, 2B, 2B]`` tensor: the forward
    keeps the row log-sum-exps, the backward recomputes the softmax ``P`` chunk by chunk and uses
    ``∂/∂u_t = (P + Pᵀ) u_t − 2·u_t[pos]`` (the positive pairing is an involution).
    """

    CHUNK = 4  # coordinates per chunk: [4, 2B, 2B] stays cache-sized for B of a few hundred

    @staticmethod
    def _logits(u: torch.Tensor) -> torch.Tensor:
        sim = u.unsqueeze(2) * u.unsqueeze(1)  # [c, 2B, 2B]
        sim.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
        return sim

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor) -> torch.Tensor:
        two_b = u.shape[1]
        positive = torch.cat([torch.arange(two_b // 2, two_b), torch.arange(0, two_b // 2)])
        positive = positive.to(u.device)
        chunk = _RankOnePairedCE.CHUNK
        lse = torch.cat(
            [
                torch.logsumexp(_RankOnePairedCE._logits(u[c : c + chunk]), dim=-1)
                for c in range(0, u.shape[0], chunk)
            ]
        )
        ctx.save_for_backward(u, lse, positive)
        return (lse - u * u[:, positive]).mean()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        u, lse, positive = ctx.saved_tensors
        chunk = _RankOnePairedCE.CHUNK
        parts = []
        for c in range(0, u.shape[0], chunk):
            uc = u[c : c + chunk]
            prob = torch.exp(_RankOnePairedCE._logits(uc) - lse[c : c + chunk].unsqueeze(2))
            col = uc.unsqueeze(2)
            parts.append((prob @ col + prob.transpose(1, 2) @ col).squeeze(2))
        grad = torch.cat(parts) - 2.0 * u[:, positive]
        return grad * (grad_out / u.numel())


def ts2vec_legacy(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The CCQL code's ``InfoNCE``: TS2Vec's instance-wise loss on ``[B, d, 1]`` (for parity only).

    Reshaping the state to ``B × d × 1`` makes each of the ``d`` coordinates a "timestep" with a
    1-d feature: for coordinate ``t`` the similarity of views ``i, j`` is ``u_i·u_j`` (no
    normalisation, no temperature); the loss is the paired-view cross-entropy averaged over
    coordinates and both directions. Reproduction only — it mis-uses TS2Vec across dimensions.
    ``[B, d]``, ``[B, d]`` → scalar (0 for ``B = 1``, as TS2Vec).
    """
    if z1.shape[0] == 1:
        return z1.new_zeros(())
    return _RankOnePairedCE.apply(torch.cat([z1, z2]).T.contiguous())


def cql_sampled(q_pos: torch.Tensor, q_neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """Conservative term on sampled negatives (P-CCQL Eq. 2 with the log-sum-exp over ``{a⁺} ∪ N``).

    ``CQL_b = τ·logsumexp_{a ∈ {a⁺} ∪ N_b}(Q(s_b, a)/τ) − Q(s_b, a⁺)``; ``q_pos`` ``[B]``,
    ``q_neg`` ``[B, K]`` → ``[B]``, always ``≥ 0``, ``τ·log(1 + K)`` when all Q are equal.
    """
    q = torch.cat([q_pos.unsqueeze(1), q_neg], dim=1)
    return temperature * torch.logsumexp(q / temperature, dim=1) - q_pos


def cql_full(q: torch.Tensor, action: torch.Tensor, temperature: float) -> torch.Tensor:
    """Conservative term over the whole catalogue: ``τ·logsumexp_a(Q(s,a)/τ) − Q(s,a⁺)``, ``[B]``."""
    q_pos = q.gather(1, action.unsqueeze(1)).squeeze(1)
    return temperature * torch.logsumexp(q / temperature, dim=1) - q_pos


def cql_legacy(
    q_best: torch.Tensor, q_pos: torch.Tensor, best_index: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The CCQL code's ``cql_loss`` literally (docs/conservative.md), ``[B]``.

    ``c = [Q(s, a*), Q(s, a⁺), float(a*)]`` with ``a* = argmax Q_main(s', ·)`` (the item *index*
    enters the log-sum-exp as if it were a Q-value); ``τ·logsumexp(c/τ) − Q(s, a⁺)``. For an index
    much larger than the Q-values this is ``≈ a* − Q(s, a⁺)``: its gradient only raises ``Q(s, a⁺)``.
    """
    c = torch.stack([q_best, q_pos, best_index.to(q_pos.dtype)], dim=1)
    return temperature * torch.logsumexp(c / temperature, dim=1) - q_pos
