"""Ranking metrics (HR, NDCG, MRR), reward@k, NG_off, the HR/NDCG consistency bound, list metrics and sampled negatives (spec-offline §E.2–E.4, §E.8)."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlrec.eval.lists import ListAccumulator
from rlrec.eval.metrics import (
    DEGENERATE_TIE_SHARE,
    MetricAccumulator,
    check_ndcg_consistency,
    degenerate_warning,
    expected_hit_at,
    expected_ndcg_at,
    hit_at,
    ndcg_at,
    target_rank_stats,
    target_ranks,
)
from rlrec.eval.sampled import N_NEGATIVES, NegativeSampler

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


L2, L3, L5, L6 = math.log2(2), math.log2(3), math.log2(5), math.log2(6)  # log2(rank + 1) terms


def test_rank_stats_and_point_ranks_on_ties() -> None:
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0], [1.0, 2.0, 2.0, 2.0, 0.0]])
    target = torch.tensor([2, 4])
    greater, tied = target_rank_stats(scores, target)
    assert greater.tolist() == [0, 4] and tied.tolist() == [2, 0]
    assert target_ranks(scores, target, "optimistic").tolist() == [1, 5]
    assert target_ranks(scores, target, "pessimistic").tolist() == [3, 5]
    assert target_ranks(scores, target).tolist() == [3, 5]  # the point-rank default is pessimistic
    collapsed = torch.zeros(1, 7)
    assert [x.tolist() for x in target_rank_stats(collapsed, torch.tensor([3]))] == [[0], [6]]
    assert target_ranks(collapsed, torch.tensor([3]), "optimistic").tolist() == [1]
    assert target_ranks(collapsed, torch.tensor([3]), "pessimistic").tolist() == [7]
    with pytest.raises(ValueError, match="no point rank"):
        target_ranks(collapsed, torch.tensor([3]), "expected")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ties must be"):
        MetricAccumulator(KS, r_click=0.2, r_buy=1.0, n_sessions=1, ties="random")  # type: ignore[arg-type]


def test_expected_hit_and_ndcg_closed_form_by_hand() -> None:
    # (g, t) = (0, 2): rank uniform on {1, 2, 3}; (1, 3): on {2..5}; (4, 0): rank 5; (6, 3): {7..10}.
    greater, tied = torch.tensor([0, 1, 4, 6]), torch.tensor([2, 3, 0, 3])
    assert expected_hit_at(greater, tied, 1).tolist() == pytest.approx([1 / 3, 0, 0, 0])
    assert expected_hit_at(greater, tied, 2).tolist() == pytest.approx([2 / 3, 1 / 4, 0, 0])
    assert expected_hit_at(greater, tied, 5).tolist() == pytest.approx([1, 1, 1, 0])
    assert expected_hit_at(greater, tied, 8).tolist() == pytest.approx([1, 1, 1, 2 / 4])
    assert expected_ndcg_at(greater, tied, 1).tolist() == pytest.approx([1 / 3, 0, 0, 0])
    assert expected_ndcg_at(greater, tied, 2).tolist() == pytest.approx(
        [(1 + 1 / L3) / 3, (1 / L3) / 4, 0, 0]
    )
    assert expected_ndcg_at(greater, tied, 4).tolist() == pytest.approx(
        [(1 + 1 / L3 + 1 / 2) / 3, (1 / L3 + 1 / 2 + 1 / L5) / 4, 0, 0]
    )
    assert expected_ndcg_at(greater, tied, 5).tolist() == pytest.approx(
        [(1 + 1 / L3 + 1 / 2) / 3, (1 / L3 + 1 / 2 + 1 / L5 + 1 / L6) / 4, 1 / L6, 0]
    )
    assert expected_ndcg_at(greater, tied, 8).tolist()[3] == pytest.approx(
        (1 / math.log2(8) + 1 / math.log2(9)) / 4
    )
    # untied targets get exactly the point-rank values
    g = torch.arange(30)
    assert torch.equal(
        expected_ndcg_at(g, torch.zeros(30, dtype=torch.int64), 10), ndcg_at(g + 1, 10)
    )
    assert torch.equal(
        expected_hit_at(g, torch.zeros(30, dtype=torch.int64), 10), hit_at(g + 1, 10)
    )


def accumulate_scores(
    scores: torch.Tensor,
    target: torch.Tensor,
    is_buy: torch.Tensor,
    ties: str,
    *,
    ks: tuple[int, ...] = KS,
    **kwargs: object,
) -> dict[str, float]:
    """Metrics of one batch of score rows (every event its own session, non-empty history)."""
    b = len(target)
    acc = MetricAccumulator(ks, r_click=0.2, r_buy=1.0, n_sessions=b, ties=ties, **kwargs)  # type: ignore[arg-type]
    greater, tied = target_rank_stats(scores, target)
    acc.update(
        greater + 1,
        is_buy,
        target,
        torch.arange(b),
        torch.zeros(b, dtype=torch.bool),
        n_tied=tied,
    )
    return acc.compute()


def test_three_tie_modes_on_a_hand_made_matrix() -> None:
    # row 0 (click):    target 2 tied with items 1, 3, nobody above: rank ∈ {1, 2, 3}
    # row 1 (click):    target 0 below item 1, tied with 3 others:   rank ∈ {2, 3, 4, 5}
    # row 2 (purchase): target 4 unique, 4 items above:              rank 5
    scores = torch.tensor(
        [[1.0, 2.0, 2.0, 2.0, 0.0], [1.0, 3.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0, 0.0]]
    )
    target, is_buy = torch.tensor([2, 0, 4]), torch.tensor([0, 0, 1])
    beta = np.array([0.5, 0.1, 0.25, 0.1, 0.125])  # 1/β of the targets 2, 0, 4: 4, 2, 8
    ks = (1, 2, 5)
    got = {
        ties: accumulate_scores(scores, target, is_buy, ties, ks=ks, propensity=beta, ng_off_k=2)
        for ties in ("expected", "optimistic", "pessimistic")
    }
    e, o, p = got["expected"], got["optimistic"], got["pessimistic"]
    # expected: row 0 E[hit@1, @2, @5] = 1/3, 2/3, 1; row 1 = 0, 1/4, 1; row 2 = 0, 0, 1
    assert (e["hr_click@1"], e["hr_click@2"], e["hr_click@5"]) == pytest.approx(
        ((1 / 3) / 2, (2 / 3 + 1 / 4) / 2, 1.0)
    )
    ndcg0 = {1: 1 / 3, 2: (1 + 1 / L3) / 3, 5: (1 + 1 / L3 + 1 / 2) / 3}
    ndcg1 = {1: 0.0, 2: (1 / L3) / 4, 5: (1 / L3 + 1 / 2 + 1 / L5 + 1 / L6) / 4}
    for k in ks:
        assert e[f"ndcg_click@{k}"] == pytest.approx((ndcg0[k] + ndcg1[k]) / 2)
    assert (e["hr_purchase@2"], e["hr_purchase@5"], e["ndcg_purchase@5"]) == pytest.approx(
        (0, 1, 1 / L6)
    )
    assert e["reward@2"] == pytest.approx(0.2 * (2 / 3 + 1 / 4))
    assert e["reward@5"] == pytest.approx(0.2 * 2 + 1.0)
    assert e["ng_off_click"] == pytest.approx((4 * ndcg0[2] + 2 * ndcg1[2]) / (4 + 2))
    assert e["ng_off_purchase"] == 0.0
    assert e["hr@2/session_mean"] == pytest.approx((2 / 3 + 1 / 4 + 0) / 3)
    assert e["ndcg_click@5/nonempty"] == pytest.approx(e["ndcg_click@5"])
    # optimistic ranks 1, 2, 5; pessimistic ranks 3, 5, 5
    assert (o["hr_click@1"], o["hr_click@2"], o["ndcg_click@2"]) == pytest.approx(
        (1 / 2, 1.0, (1 + 1 / L3) / 2)
    )
    assert o["ng_off_click"] == pytest.approx((4 * 1 + 2 / L3) / 6)
    assert (p["hr_click@2"], p["hr_click@5"], p["ndcg_click@5"]) == pytest.approx(
        (0.0, 1.0, (1 / 2 + 1 / L6) / 2)
    )
    assert p["reward@2"] == 0.0 and p["ng_off_click"] == 0.0
    for m in got.values():
        assert m["tied_target_share"] == pytest.approx(2 / 3)
        assert m["n_click"] == 2 and m["n_purchase"] == 1 and m["n_events"] == 3


def test_constant_scores_give_k_over_n() -> None:
    n = 7
    scores = torch.zeros(4, n)
    target, is_buy = torch.tensor([0, 3, 6, 2]), torch.tensor([0, 1, 0, 1])
    ks = (1, 3, 7, 10)
    m = accumulate_scores(scores, target, is_buy, "expected", ks=ks)
    ndcg = {  # Σ_{r=1..min(k, n)} 1/log2(r + 1), divided by n
        1: 1 / n,
        3: (1 + 1 / L3 + 1 / 2) / n,
        7: (1 + 1 / L3 + 1 / 2 + 1 / L5 + 1 / L6 + 1 / math.log2(7) + 1 / 3) / n,
    }
    ndcg[10] = ndcg[7]
    for k in ks:
        for t in ("click", "purchase"):
            assert m[f"hr_{t}@{k}"] == pytest.approx(min(k, n) / n, abs=1e-12)
            assert m[f"ndcg_{t}@{k}"] == pytest.approx(ndcg[k], abs=1e-12)
        assert m[f"reward@{k}"] == pytest.approx((0.2 * 2 + 1.0 * 2) * min(k, n) / n)
    assert m["tied_target_share"] == 1.0
    opt = accumulate_scores(scores, target, is_buy, "optimistic", ks=ks)
    assert opt["hr_click@1"] == opt["ndcg_click@1"] == 1.0  # why optimistic is never the default
    pess = accumulate_scores(scores, target, is_buy, "pessimistic", ks=ks)
    assert pess["hr_click@3"] == 0.0 and pess["hr_click@7"] == 1.0
    # 15 masses of 1/5 sum to 3.0000000000000004 in float64: rates are clipped to stay ≤ 1
    five = accumulate_scores(
        torch.zeros(3, 5), torch.tensor([4, 3, 2]), torch.zeros(3, dtype=torch.int64), "expected"
    )
    assert five["hr_click@5"] == 1.0 and five["hr@5/session_mean"] == 1.0
    assert five["ndcg_click@5"] <= five["hr_click@5"]


def test_degenerate_warning() -> None:
    assert DEGENERATE_TIE_SHARE == 0.01
    assert degenerate_warning({"tied_target_share": 0.0}) is None
    assert degenerate_warning({"tied_target_share": 0.01}) is None
    assert degenerate_warning({"tied_target_share": math.nan}) is None
    assert degenerate_warning({}) is None
    msg = degenerate_warning({"tied_target_share": 0.25})
    assert msg is not None and "25.0%" in msg and "\n" not in msg
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]])
    m = accumulate_scores(scores, torch.tensor([0, 0]), torch.tensor([0, 0]), "expected")
    assert m["tied_target_share"] == 0.5 and degenerate_warning(m) is not None


def test_nan_target_score_is_never_a_hit() -> None:
    scores = torch.tensor([[0.0, math.nan, 1.0], [math.nan, 2.0, 1.0]])
    target = torch.tensor([1, 2])
    assert target_ranks(scores, target, "optimistic").tolist() == [3, 2]
    assert target_ranks(scores, target, "pessimistic").tolist() == [3, 2]
    # a NaN target is last and untied; other NaNs neither outrank nor tie the target
    greater, tied = target_rank_stats(
        torch.tensor([[0.0, math.nan, math.nan], [math.nan, 1.0, 1.0]]), target
    )
    assert greater.tolist() == [2, 0] and tied.tolist() == [0, 1]
    m = accumulate_scores(
        torch.full((1, 30), math.nan), torch.tensor([1]), torch.tensor([0]), "expected"
    )
    assert m["hr_click@5"] == 0.0 and m["tied_target_share"] == 0.0


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
    rates = ("hr", "ndcg", "mrr")
    main = [f"{name}_{t}@{k}" for k in KS for t in ("click", "purchase") for name in rates]
    nonempty = [f"{key}/nonempty" for key in main]
    session = [f"{name}@{k}/session_mean" for k in KS for name in rates]
    expected = {
        *main,
        *(f"reward@{k}" for k in KS),
        "ng_off_click",
        "ng_off_purchase",
        "n_click",
        "n_purchase",
        "n_events",
        "tied_target_share",
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


@functools.cache
def _orderings(n: int) -> np.ndarray:
    """``[n!, n]``: every tie-break priority vector over ``n`` items (``[p, i]`` = priority of ``i``)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)


def brute_force_events(
    scores: np.ndarray, target: np.ndarray, cut: list[int], ties: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An independent, sort-based reference for integer scores and tiny ``n``: each row is sorted by
    (score desc, tie-break priority) and, under ``expected``, the hits and gains are averaged over
    **all** ``n!`` priority vectors (uniformly random tie-breaking); the target gets the best
    (``optimistic``) or worst (``pessimistic``) priority otherwise. Returns ``[B, max(cut) + 1]``
    per-event ``hit[b, k]``, ``gain[b, k]`` and reciprocal rank ``rr[b, k]`` (filled for ``k`` in
    ``cut``)."""
    b_events, n = scores.shape
    hit = np.zeros((b_events, max(cut) + 1))
    gain = np.zeros((b_events, max(cut) + 1))
    rr = np.zeros((b_events, max(cut) + 1))
    for b in range(b_events):
        if ties == "expected":
            prio = _orderings(n)
        else:
            prio = np.arange(n)[None, :].copy()
            prio[0, target[b]] = -1 if ties == "optimistic" else n
        key = -scores[b][None, :] * (n + 2) + prio  # distinct keys, ordered by score then priority
        order = np.argsort(key, axis=1, kind="stable")
        rank = np.argmax(order == target[b], axis=1) + 1  # [orderings]
        for k in cut:
            hit[b, k] = np.mean(rank <= k)
            gain[b, k] = np.mean(np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0))
            rr[b, k] = np.mean(np.where(rank <= k, 1.0 / rank, 0.0))
    return hit, gain, rr


def brute_force_metrics(
    scores: np.ndarray,
    target: np.ndarray,
    is_buy: np.ndarray,
    session: np.ndarray,
    empty: np.ndarray,
    beta: np.ndarray,
    ks: tuple[int, ...],
    ng_off_k: int,
    ties: str,
) -> dict[str, float]:
    """Every metric of :class:`MetricAccumulator` from :func:`brute_force_events`, aggregated with
    plain Python."""
    b_events = len(target)
    hit, gain, rr = brute_force_events(scores, target, sorted({*ks, ng_off_k}), ties)

    def mean(rows: list[int], v: np.ndarray) -> float:
        return float(np.mean(v[rows])) if rows else math.nan

    out: dict[str, float] = {}
    for c, name in enumerate(("click", "purchase")):
        rows = [b for b in range(b_events) if is_buy[b] == c]
        ne = [b for b in rows if not empty[b]]
        for k in ks:
            for metric, v in (("hr", hit), ("ndcg", gain), ("mrr", rr)):
                out[f"{metric}_{name}@{k}"] = mean(rows, v[:, k])
                out[f"{metric}_{name}@{k}/nonempty"] = mean(ne, v[:, k])
        w = np.array([1.0 / beta[target[b]] for b in rows])
        g = np.array([gain[b, ng_off_k] for b in rows])
        out[f"ng_off_{name}"] = float((w * g).sum() / w.sum()) if rows else math.nan
        out[f"n_{name}"] = float(len(rows))
        out[f"n_{name}/nonempty"] = float(len(ne))
    for k in ks:
        out[f"reward@{k}"] = sum((1.0 if is_buy[b] else 0.2) * hit[b, k] for b in range(b_events))
    out["n_events"] = float(b_events)
    tied = [np.sum(scores[b] == scores[b, target[b]]) > 1 for b in range(b_events)]
    out["tied_target_share"] = float(np.mean(tied)) if b_events else math.nan
    sessions = sorted(set(session.tolist()))
    for k in ks:
        for name, v in (("hr", hit), ("ndcg", gain), ("mrr", rr)):
            per = [np.mean(v[session == s_, k]) for s_ in sessions]
            out[f"{name}@{k}/session_mean"] = float(np.mean(per)) if per else math.nan
    out["n_sessions"] = float(len(sessions))
    return out


@pytest.mark.parametrize("ties", ["expected", "optimistic", "pessimistic"])
@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_over_all_tie_breaks(ties: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1 + seed % 6
    b = 25
    scores = rng.integers(0, 1 + seed % 3, (b, n))  # few levels: many ties
    target = rng.integers(0, n, b)
    is_buy = rng.integers(0, 2, b)
    session = np.sort(rng.integers(0, 8, b))  # some of the 8 sessions have no events
    empty = rng.random(b) < 0.3
    beta = rng.random(n) + 0.05
    ks, ng_off_k = (1, 2, 3, 5, 8), 3
    expected = brute_force_metrics(scores, target, is_buy, session, empty, beta, ks, ng_off_k, ties)
    acc = MetricAccumulator(
        ks,
        r_click=0.2,
        r_buy=1.0,
        n_sessions=8,
        propensity=beta,
        ng_off_k=ng_off_k,
        ties=ties,  # type: ignore[arg-type]
    )
    t = torch.from_numpy
    for part in (slice(0, 11), slice(11, b)):  # two batches
        greater, tied = target_rank_stats(t(scores[part]).to(torch.float32), t(target[part]))
        acc.update(
            greater + 1,
            t(is_buy[part]),
            t(target[part]),
            t(session[part]),
            t(empty[part]),
            n_tied=tied,
        )
    got = acc.compute()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=1e-6), key
    if ties == "expected":  # the per-event closed forms
        hit, gain, _ = brute_force_events(scores, target, list(ks), ties)
        greater, tied = target_rank_stats(t(scores).to(torch.float32), t(target))
        for k in ks:
            assert expected_hit_at(greater, tied, k).numpy() == pytest.approx(hit[:, k], abs=1e-6)
            assert expected_ndcg_at(greater, tied, k).numpy() == pytest.approx(gain[:, k], abs=1e-6)


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
@given(ranked_batches(), st.sampled_from(["expected", "optimistic", "pessimistic"]))
def test_properties(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ties: str) -> None:
    scores, target, is_buy = batch
    ks = (1, 2, 5, 10, 20)
    m = accumulate_scores(scores, target, is_buy, ties, ks=ks)
    if ties != "expected":  # the point ranks of target_ranks give the same numbers
        point = accumulate(target_ranks(scores, target, ties), is_buy, ks=ks)  # type: ignore[arg-type]
        point.pop("tied_target_share")  # unknown without n_tied
        assert all(point[k] == m[k] or (math.isnan(point[k]) and math.isnan(m[k])) for k in point)
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
    m2 = accumulate_scores(relabelled, perm[target], is_buy, ties, ks=ks)
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


# ------------------------------------------------------------ metrics of the top-k lists


def test_list_metrics_by_hand() -> None:
    """Coverage, diversity and novelty of three hand-made lists over 5 items."""
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-2.0, 0.0], [0.0, 0.0]])
    pop = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])  # self-information 1, 2, 3, 4, 4 bits
    acc = ListAccumulator((1, 2, 3), 5, vectors=vectors, popularity=pop)
    acc.update(torch.tensor([[0, 1, 2], [0, 3, 1]]))
    acc.update(torch.tensor([[4, 0, 1]]))  # item 4's zero vector: cosine 0 with every item
    got = acc.compute()
    c = 1 / math.sqrt(
        2
    )  # cos(v0, v2) = cos(v1, v2); cos(v0, v1) = cos(v3, v1) = 0, cos(v0, v3) = -1
    expected = {
        "coverage@1": 2 / 5,  # {0, 4}
        "coverage@2": 4 / 5,  # {0, 1, 3, 4}
        "coverage@3": 5 / 5,
        "diversity_head@2": ((1 - 0) + (1 + 1) + (1 - 0)) / 3,
        "diversity_head@3": ((1 - 2 * c / 3) + (1 + 1 / 3) + 1) / 3,
        "novelty@1": (1 + 1 + 4) / 3,
        "novelty@2": ((1 + 2) / 2 + (1 + 4) / 2 + (4 + 1) / 2) / 3,
        "novelty@3": ((1 + 2 + 3) / 3 + (1 + 4 + 2) / 3 + (4 + 1 + 2) / 3) / 3,
    }
    assert math.isnan(got.pop("diversity_head@1"))  # a single item has no pairs
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("seed", range(3))
def test_diversity_equals_the_pairwise_mean(seed: int) -> None:
    """The ``|Σ u|²`` identity equals the mean of ``1 − cos`` over every pair of each list."""
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(40, 5, generator=g)
    lists = torch.stack([torch.randperm(40, generator=g)[:7] for _ in range(11)])
    acc = ListAccumulator((2, 4, 7), 40, vectors=vectors)
    acc.update(lists)
    got = acc.compute()
    u = torch.nn.functional.normalize(vectors.double(), dim=1)
    for k in (2, 4, 7):
        per_list = [
            np.mean(
                [1 - float(u[a] @ u[b]) for a, b in itertools.combinations(row[:k].tolist(), 2)]
            )
            for row in lists
        ]
        assert got[f"diversity_head@{k}"] == pytest.approx(np.mean(per_list), rel=1e-12)


def test_list_accumulator_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least as many items"):
        ListAccumulator((5,), 4)
    with pytest.raises(ValueError, match="popularity"):
        ListAccumulator((2,), 4, popularity=np.array([0.5, 0.5, 0.0, 0.0]))
    acc = ListAccumulator((2,), 4, coverage=False)
    with pytest.raises(ValueError, match="lists must be"):
        acc.update(torch.tensor([[0, 1, 2]]))
    assert acc.compute() == {}
    assert math.isnan(ListAccumulator((2,), 4).compute()["coverage@2"])  # no events


# ------------------------------------------------------------ sampled negatives


def test_negatives_are_distinct_exclude_the_target_and_ignore_batching() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 400, 9000)  # three seeded blocks
    for probs in (None, rng.random(400) + 0.01):
        whole = NegativeSampler(targets, 400, probs=probs, seed=3).rows(0, 9000)
        assert whole.shape == (9000, N_NEGATIVES) and whole.min() >= 0 and whole.max() < 400
        assert all(len(set(row)) == N_NEGATIVES for row in whole.tolist())
        assert not (whole == targets[:, None]).any()
        assert (whole[:4096] == whole[4096:8192]).mean() < 0.05  # blocks draw independently
        sampler = NegativeSampler(targets, 400, probs=probs, seed=3)
        parts = [sampler.rows(lo, min(lo + 777, 9000)) for lo in range(0, 9000, 777)]
        assert np.array_equal(np.concatenate(parts), whole)  # same negatives whatever the batch
        again = NegativeSampler(targets, 400, probs=probs, seed=3).rows(4000, 4100)
        assert np.array_equal(again, whole[4000:4100])
        other = NegativeSampler(targets, 400, probs=probs, seed=4).rows(0, 9000)
        assert not np.array_equal(other, whole)
    with pytest.raises(ValueError, match="at least 101 items"):
        NegativeSampler(targets[:5] % 100, 100)


def test_popularity_negatives_are_successive_sampling() -> None:
    """Two negatives of {0, 1, 2} (target 3) with weights .4, .3, .2: P({a, b}) =
    p_a/(1 − p_3) · p_b/(1 − p_3 − p_a) + the same with a and b swapped (Monte Carlo, 5σ)."""
    p = np.array([0.4, 0.3, 0.2, 0.1])
    draws = NegativeSampler(np.full(40_000, 3), 4, probs=p, seed=0, m=2).rows(0, 40_000)
    rest = 1 - p[3]

    def pair(a: int, b: int) -> float:
        return p[a] / rest * p[b] / (rest - p[a]) + p[b] / rest * p[a] / (rest - p[b])

    seen = np.sort(draws, axis=1)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        share = float(np.mean((seen[:, 0] == a) & (seen[:, 1] == b)))
        q = pair(a, b)
        assert abs(share - q) < 5 * math.sqrt(q * (1 - q) / len(draws)), (a, b)
