"""Quality of a user-response model's probabilities: AUC, log-loss, calibration.

The simulator *samples* from the URM's probabilities, so calibration matters as much as ranking:
besides the pooled AUC (the reference reports a per-position macro AUC — also given here) rlrec
reports log-loss, the mean predicted probability next to the empirical positive rate, and the
expected calibration error over equal-width bins.
"""

from __future__ import annotations

import torch


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Pooled ROC AUC with ties counted half (Mann–Whitney); NaN if only one class is present."""
    s = scores.reshape(-1).double()
    y = labels.reshape(-1).bool()
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # elements strictly smaller than each unique value
    ranks = (below + (counts + 1) / 2.0)[inverse]  # average 1-based ranks
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean of per-column AUCs of ``(R, K)`` matrices (the reference's sklearn multilabel AUC),
    skipping columns with a single class."""
    values = [roc_auc(scores[:, j], labels[:, j]) for j in range(scores.shape[1])]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def log_loss(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped to ``[eps, 1 - eps]``)."""
    p = probs.double().clamp(eps, 1 - eps)
    y = labels.double()
    return float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """``Σ_b (n_b / n)·|mean p_b − mean y_b|`` over ``bins`` equal-width probability bins."""
    p = probs.reshape(-1).double()
    y = labels.reshape(-1).double()
    idx = (p * bins).long().clamp(0, bins - 1)
    sp = torch.bincount(idx, weights=p, minlength=bins)
    sy = torch.bincount(idx, weights=y, minlength=bins)
    return float((sp - sy).abs().sum() / p.numel())


def response_report(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """All of the above for ``(R, K)`` logits and labels."""
    probs = torch.sigmoid(logits.double())
    return {
        "auc": roc_auc(logits, labels),
        "auc_per_position": macro_auc(logits, labels),
        "log_loss": log_loss(probs, labels),
        "mean_prob": float(probs.mean()),
        "positive_rate": float(labels.double().mean()),
        "ece": expected_calibration_error(probs, labels),
    }
