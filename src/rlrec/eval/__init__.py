"""Offline evaluation: ranking and list metrics, the full-catalogue or sampled evaluator
(P-SA2C §4.1.2; docs/offline.md)."""

from rlrec.eval.evaluator import (
    EvalConfig,
    LinearScores,
    ListMetric,
    ScoreFn,
    evaluate,
    metric_names,
    top_k,
)
from rlrec.eval.lists import ListAccumulator, in_total_order, linear_ranked_top, ranked_top
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
from rlrec.eval.sampled import N_NEGATIVES, PROTOCOL_LABELS, PROTOCOLS, NegativeSampler, Protocol

__all__ = [
    "DEGENERATE_TIE_SHARE",
    "N_NEGATIVES",
    "PROTOCOLS",
    "PROTOCOL_LABELS",
    "TIE_MODES",
    "EvalConfig",
    "LinearScores",
    "ListAccumulator",
    "ListMetric",
    "MetricAccumulator",
    "NegativeSampler",
    "Protocol",
    "ScoreFn",
    "Ties",
    "check_ndcg_consistency",
    "degenerate_warning",
    "evaluate",
    "expected_hit_at",
    "expected_ndcg_at",
    "hit_at",
    "in_total_order",
    "linear_rank_stats",
    "linear_ranked_top",
    "metric_names",
    "ndcg_at",
    "ranked_top",
    "target_rank_stats",
    "target_ranks",
    "top_k",
]
