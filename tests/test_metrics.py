"""Ranking metrics, reward@k, NG_off and the HR/NDCG consistency bound (spec-offline §E.2–E.4, §E.8)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlrec.eval.metrics import (
    MetricAccumulator,
    check_ndcg_consistency,
    hit_at,
    ndcg_at,
    target_ranks,
)

KS = (5, 10, 20)


def accumulate(
    rank: torch.Tensor,
    is_buy: torch.Tensor,
    action: torch.Tensor | None = None,
    *,
    ks: tuple[int, ...] = KS,
    r_click: float = 0.2,
    r_buy: float = 1.0,
    propensity: np.ndarray | None = None,
    ng_off_k: int = 10,
) -> dict[str, float]:
    """Metrics of one batch where every event is its own session with a non-empty history."""
    b = len(rank)
    acc = MetricAccumulator(
        ks, r_click=r_click, r_buy=r_buy, n_sessions=b, propensity=propensity, ng_off_k=ng_off_k
    )
    action = torch.zeros(b, dtype=torch.int64) if action is None else action
    acc.update(rank, is_buy, action, torch.arange(b), torch.zeros(b, dtype=torch.bool))
    return acc.compute()


def curve(metrics: dict[str, float], name: str, ks: tuple[int, ...] = KS) -> dict[int, float]:
    return {k: metrics[f"{name}@{k}"] for k in ks}


def rows_with_target_at(ranks: list[int], n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Score rows where item ``j`` has rank ``j + 1`` and the target is the item of rank ``r``."""
    scores = torch.arange(n, 0, -1, dtype=torch.float32).repeat(len(ranks), 1)
    return scores, torch.tensor(ranks) - 1


def test_ranks_1_3_11_25_give_exact_hr_and_ndcg() -> None:
    scores, target = rows_with_target_at([1, 3, 11, 25])
    rank = target_ranks(scores, target)
    assert rank.tolist() == [1, 3, 11, 25]
    expected_hit = {5: [1, 1, 0, 0], 10: [1, 1, 0, 0], 20: [1, 1, 1, 0]}
    ndcg11 = 1 / math.log2(12)
    expected_ndcg = {5: [1, 0.5, 0, 0], 10: [1, 0.5, 0, 0], 20: [1, 0.5, ndcg11, 0]}
    for k in KS:
        assert hit_at(rank, k).tolist() == expected_hit[k]
        assert ndcg_at(rank, k).tolist() == pytest.approx(expected_ndcg[k], abs=1e-15)
    m = accumulate(rank, torch.zeros(4, dtype=torch.int64))
    assert (m["hr_click@5"], m["hr_click@10"], m["hr_click@20"]) == (0.5, 0.5, 0.75)
    assert m["ndcg_click@5"] == m["ndcg_click@10"] == pytest.approx(1.5 / 4)
    assert m["ndcg_click@20"] == pytest.approx((1.5 + ndcg11) / 4)


def test_ties_optimistic_vs_pessimistic() -> None:
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0], [1.0, 2.0, 2.0, 2.0, 0.0]])
    target = torch.tensor([2, 4])
    assert target_ranks(scores, target, "optimistic").tolist() == [1, 5]
    assert target_ranks(scores, target, "pessimistic").tolist() == [3, 5]
    collapsed = torch.zeros(1, 7)
    assert target_ranks(collapsed, torch.tensor([3]), "optimistic").tolist() == [1]
    assert target_ranks(collapsed, torch.tensor([3]), "pessimistic").tolist() == [7]


def test_nan_target_score_is_never_a_hit() -> None:
    scores = torch.tensor([[0.0, math.nan, 1.0], [math.nan, 2.0, 1.0]])
    target = torch.tensor([1, 2])
    assert target_ranks(scores, target, "optimistic").tolist() == [3, 2]
    assert target_ranks(scores, target, "pessimistic").tolist() == [3, 2]


def test_event_type_comes_from_is_buy_even_when_rewards_are_equal() -> None:
    m = accumulate(torch.tensor([1, 30, 2]), torch.tensor([0, 1, 1]), r_click=1.0, r_buy=1.0)
    assert (m["n_click"], m["n_purchase"], m["n_events"]) == (1, 2, 3)
    assert m["hr_click@5"] == 1.0
    assert m["hr_purchase@5"] == 0.5
    assert m["reward@5"] == 2.0


def test_reward_at_k_identity() -> None:
    g = torch.Generator().manual_seed(0)
    rank = torch.randint(1, 40, (500,), generator=g)
    is_buy = (torch.rand(500, generator=g) < 0.2).to(torch.int64)
    m = accumulate(rank, is_buy, r_click=0.2, r_buy=1.0)
    for k in KS:
        identity = (
            0.2 * m[f"hr_click@{k}"] * m["n_click"] + 1.0 * m[f"hr_purchase@{k}"] * m["n_purchase"]
        )
        assert m[f"reward@{k}"] == pytest.approx(identity, rel=1e-12)
        r = np.where(is_buy.numpy() == 1, 1.0, 0.2)
        direct = float(((rank <= k).numpy() * r).sum())
        assert m[f"reward@{k}"] == pytest.approx(direct, rel=1e-12)


def test_ng_off_three_event_example() -> None:
    beta = np.full(16, 1 / 16)
    beta[[0, 1, 2]] = [0.5, 0.25, 0.125]
    # clicks: item 0 at rank 1 (w = 2, ndcg 1), item 1 at rank 3 (w = 4, ndcg 0.5), item 2 at rank
    # 15 (w = 8, a miss): NG_off = (2·1 + 4·0.5 + 8·0) / (2 + 4 + 8) = 2/7.
    m = accumulate(
        torch.tensor([1, 3, 15]),
        torch.zeros(3, dtype=torch.int64),
        torch.tensor([0, 1, 2]),
        propensity=beta,
    )
    assert m["ng_off_click"] == pytest.approx(2 / 7, rel=1e-12)
    assert m["ndcg_click@10"] == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(m["ng_off_purchase"])


def test_type_without_events_gives_nan_rates() -> None:
    m = accumulate(torch.tensor([1, 7]), torch.zeros(2, dtype=torch.int64))
    for k in KS:
        assert math.isnan(m[f"hr_purchase@{k}"]) and math.isnan(m[f"ndcg_purchase@{k}"])
        assert not math.isnan(m[f"reward@{k}"])
    assert m["n_purchase"] == 0
    empty = MetricAccumulator(KS, r_click=0.2, r_buy=1.0, n_sessions=0).compute()
    assert math.isnan(empty["hr_click@5"]) and math.isnan(empty["ndcg@5/session_mean"])
    assert empty["n_events"] == 0 and empty["reward@5"] == 0


def test_key_set() -> None:
    m = accumulate(torch.tensor([1]), torch.tensor([1]), propensity=np.ones(1))
    main = [f"{name}_{t}@{k}" for k in KS for t in ("click", "purchase") for name in ("hr", "ndcg")]
    nonempty = [f"{key}/nonempty" for key in main]
    session = [f"{name}@{k}/session_mean" for k in KS for name in ("hr", "ndcg")]
    expected = {
        *main,
        *(f"reward@{k}" for k in KS),
        "ng_off_click",
        "ng_off_purchase",
        "n_click",
        "n_purchase",
        "n_events",
        *nonempty,
        "n_click/nonempty",
        "n_purchase/nonempty",
        *session,
        "n_sessions",
    }
    assert set(m) == expected
    assert all(type(v) is float for v in m.values())
    assert not any(
        key.startswith("ng_off") for key in accumulate(torch.tensor([1]), torch.tensor([1]))
    )


def test_diagnostics_exclude_empty_history_and_average_over_sessions() -> None:
    acc = MetricAccumulator((1,), r_click=0.2, r_buy=1.0, n_sessions=2)
    # session 0: ranks 1 (empty history), 1, 2; session 1: rank 5 (empty history); all clicks.
    acc.update(
        torch.tensor([1, 1, 2, 5]),
        torch.zeros(4, dtype=torch.int64),
        torch.zeros(4, dtype=torch.int64),
        torch.tensor([0, 0, 0, 1]),
        torch.tensor([True, False, False, True]),
    )
    m = acc.compute()
    assert m["hr_click@1"] == 0.5
    assert m["hr_click@1/nonempty"] == 0.5 and m["n_click/nonempty"] == 2
    assert m["hr@1/session_mean"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["n_sessions"] == 2


@st.composite
def ranked_batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ``[B, n]`` scores with many ties, targets and purchase flags."""
    b = draw(st.integers(1, 40))
    n = draw(st.integers(1, 60))
    levels = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = torch.from_numpy(rng.integers(0, levels, (b, n)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, n, b))
    is_buy = torch.from_numpy(rng.integers(0, 2, b))
    return scores, target, is_buy


@settings(max_examples=60, deadline=None)
@given(ranked_batches(), st.sampled_from(["optimistic", "pessimistic"]))
def test_properties(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ties: str) -> None:
    scores, target, is_buy = batch
    ks = (1, 2, 5, 10, 20)
    m = accumulate(target_ranks(scores, target, ties), is_buy, ks=ks)  # type: ignore[arg-type]
    for t in ("click", "purchase"):
        hr, ndcg = curve(m, f"hr_{t}", ks), curve(m, f"ndcg_{t}", ks)
        if m[f"n_{t}"] == 0:
            assert all(math.isnan(v) for v in (*hr.values(), *ndcg.values()))
            continue
        for k in ks:
            assert 0.0 <= ndcg[k] <= hr[k] <= 1.0
        for k1, k2 in itertools.pairwise(ks):
            assert hr[k1] <= hr[k2] and ndcg[k1] <= ndcg[k2]
        assert check_ndcg_consistency(hr, ndcg, from_zero=True) == []

    rng = np.random.default_rng(int(scores.sum()) + len(scores))
    perm = torch.from_numpy(rng.permutation(scores.shape[1]))  # item j becomes item perm[j]
    relabelled = torch.empty_like(scores)
    relabelled[:, perm] = scores
    m2 = accumulate(target_ranks(relabelled, perm[target], ties), is_buy, ks=ks)  # type: ignore[arg-type]
    assert m2.keys() == m.keys()
    assert all(m2[k] == m[k] or (math.isnan(m2[k]) and math.isnan(m[k])) for k in m)


def test_consistency_checker_flags_published_violations() -> None:
    # P-CCQL Table 4, RC15 SASRec-AC clicks: NDCG@10 = 0.338 > NDCG@20 = 0.290 (spec §E.8, §F.27).
    problems = check_ndcg_consistency(
        {5: 0.343, 10: 0.439, 20: 0.517}, {5: 0.239, 10: 0.338, 20: 0.290}, tol=5e-4
    )
    assert any("NDCG decreases: NDCG@10" in p for p in problems)
    assert any("NDCG@10 - NDCG@5" in p for p in problems)
    # P-CCQL Table 3, RR SASRec-CCQL purchases: NDCG@20 = 0.569 > the bound's maximum ≈ 0.545.
    problems = check_ndcg_consistency(
        {5: 0.613, 10: 0.676, 20: 0.720}, {5: 0.517, 10: 0.533, 20: 0.569}, tol=5e-4
    )
    assert any("NDCG@20 - NDCG@10 = 0.0360 outside [0.0100, 0.0123]" in p for p in problems)
    # P-CCQL Table 4, RC15 SASRec-CCQL purchases: consistent.
    assert (
        check_ndcg_consistency(
            {5: 0.496, 10: 0.620, 20: 0.712}, {5: 0.356, 10: 0.397, 20: 0.419}, tol=5e-4
        )
        == []
    )
    assert check_ndcg_consistency({5: 0.3}, {5: 0.4}, from_zero=True) != []  # NDCG@5 > HR@5
    with pytest.raises(ValueError, match="same cut-offs"):
        check_ndcg_consistency({5: 0.3}, {10: 0.2})
