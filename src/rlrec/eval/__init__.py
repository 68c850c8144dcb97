"""Offline evaluation: ranking metrics and the full-catalogue evaluator (spec-offline §E)."""

from rlrec.eval.evaluator import EvalConfig, ScoreFn, evaluate, top_k
from rlrec.eval.metrics import (
    MetricAccumulator,
    Ties,
    check_ndcg_consistency,
    hit_at,
    ndcg_at,
    target_ranks,
)

__all__ = [
    "EvalConfig",
    "MetricAccumulator",
    "ScoreFn",
    "Ties",
    "check_ndcg_consistency",
    "evaluate",
    "hit_at",
    "ndcg_at",
    "target_ranks",
    "top_k",
]
