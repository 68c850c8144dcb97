"""Offline evaluation: ranking metrics and the full-catalogue evaluator (P-SA2C §4.1.2; docs/offline.md)."""

from rlrec.eval.evaluator import (
    EvalConfig,
    LinearScores,
    ScoreFn,
    evaluate,
    metric_names,
    top_k,
)
from rlrec.eval.metrics import (
    DEGENERATE_TIE_SHARE,
    TIE_MODES,
    MetricAccumulator,
    Ties,
    check_ndcg_consistency,
    degenerate_warning,
    expected_hit_at,
    expected_ndcg_at,
    hit_at,
    linear_rank_stats,
    ndcg_at,
    target_rank_stats,
    target_ranks,
)

__all__ = [
    "DEGENERATE_TIE_SHARE",
    "TIE_MODES",
    "EvalConfig",
    "LinearScores",
    "MetricAccumulator",
    "ScoreFn",
    "Ties",
    "check_ndcg_consistency",
    "degenerate_warning",
    "evaluate",
    "expected_hit_at",
    "expected_ndcg_at",
    "hit_at",
    "linear_rank_stats",
    "metric_names",
    "ndcg_at",
    "target_rank_stats",
    "target_ranks",
    "top_k",
]
