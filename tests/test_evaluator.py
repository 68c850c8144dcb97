"""Full-catalogue evaluation over every event of a split (spec-offline §E.1–E.4, §E.7)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from rlrec.data.dataset import SessionLog
from rlrec.data.transitions import Transitions
from rlrec.errors import ConfigError
from rlrec.eval import (
    EvalConfig,
    LinearScores,
    ScoreFn,
    degenerate_warning,
    evaluate,
    linear_rank_stats,
    metric_names,
    target_rank_stats,
    top_k,
)
from rlrec.eval.lists import linear_ranked_top, ranked_top
from rlrec.eval.sampled import NegativeSampler

N = 6  # items 0..5, pad id 6
KS = (1, 3, 5)
G5 = 1 / math.log2(5)  # NDCG gain of rank 4


def log_of(sessions: list[list[int]], buys: list[list[int]]) -> SessionLog:
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    is_buy = np.concatenate([np.asarray(b, dtype=np.int8) for b in buys])
    starts = np.cumsum([0] + [len(s) for s in sessions]).astype(np.int64)
    return SessionLog(items, is_buy, starts, pl.Series(range(len(sessions))))


def tiny(padding: str = "right") -> Transitions:
    log = log_of([[0, 1, 2], [3], [4, 4, 5, 0]], [[0, 0, 1], [1], [0, 1, 0, 0]])
    return Transitions(log, state_size=3, pad_id=N, padding=padding)  # type: ignore[arg-type]


def successor(state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
    """Predicts ``last + 1 (mod N)`` with distinct scores: the target's rank is
    ``(target - last - 1) mod N + 1``, so it is an oracle when the session steps by +1 and wrong
    otherwise (an empty history reads the pad ``N`` as the last item)."""
    last = state.gather(1, (len_state - 1).unsqueeze(1))
    return -torch.remainder(torch.arange(N) - last - 1, N).to(torch.float32)


def hand_metrics() -> dict[str, float]:
    """Ranks: A = [6, 1, 1], B = [3], C = [4, 6, 1, 1]; purchases A3, B1, C2; empty histories A1, B1, C1."""
    w = {"click": (10, 5, 5, 10, 10), "purchase": (1 / 0.3, 10, 5)}  # 1/β of each target
    return {
        "hr_click@1": 3 / 5,
        "ndcg_click@1": 3 / 5,
        "hr_purchase@1": 1 / 3,
        "ndcg_purchase@1": 1 / 3,
        "hr_click@3": 3 / 5,
        "ndcg_click@3": 3 / 5,
        "hr_purchase@3": 2 / 3,
        "ndcg_purchase@3": 1.5 / 3,
        "hr_click@5": 4 / 5,
        "ndcg_click@5": (3 + G5) / 5,
        "hr_purchase@5": 2 / 3,
        "ndcg_purchase@5": 1.5 / 3,
        "mrr_click@1": 3 / 5,  # reciprocal ranks: clicks 1/6, 1, 1/4, 1, 1; purchases 1, 1/3, 1/6
        "mrr_click@3": 3 / 5,
        "mrr_click@5": (3 + 1 / 4) / 5,
        "mrr_purchase@1": 1 / 3,
        "mrr_purchase@3": (1 + 1 / 3) / 3,
        "mrr_purchase@5": (1 + 1 / 3) / 3,
        "reward@1": 0.2 * 3 + 1,
        "reward@3": 0.2 * 3 + 2,
        "reward@5": 0.2 * 4 + 2,
        "ng_off_click": (5 + 5 * G5 + 10 + 10) / sum(w["click"]),
        "ng_off_purchase": (1 / 0.3 + 10 * 0.5) / sum(w["purchase"]),
        "n_click": 5,
        "n_purchase": 3,
        "n_events": 8,
        "tied_target_share": 0.0,
        **{f"{m}_click@{k}/nonempty": 1.0 for k in KS for m in ("hr", "ndcg", "mrr")},
        **{f"{m}_purchase@{k}/nonempty": 0.5 for k in KS for m in ("hr", "ndcg", "mrr")},
        "n_click/nonempty": 3,
        "n_purchase/nonempty": 2,
        "hr@1/session_mean": (2 / 3 + 0 + 1 / 2) / 3,
        "ndcg@1/session_mean": (2 / 3 + 0 + 1 / 2) / 3,
        "hr@3/session_mean": (2 / 3 + 1 + 1 / 2) / 3,
        "ndcg@3/session_mean": (2 / 3 + 0.5 + 1 / 2) / 3,
        "hr@5/session_mean": (2 / 3 + 1 + 3 / 4) / 3,
        "ndcg@5/session_mean": (2 / 3 + 0.5 + (2 + G5) / 4) / 3,
        "mrr@1/session_mean": (2 / 3 + 0 + 1 / 2) / 3,
        "mrr@3/session_mean": (2 / 3 + 1 / 3 + 1 / 2) / 3,
        "mrr@5/session_mean": (2 / 3 + 1 / 3 + (2 + 1 / 4) / 4) / 3,
        "n_sessions": 3,
    }


BETA = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Identical dicts, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@pytest.mark.parametrize("padding", ["right", "left"])
def test_exact_metrics_on_a_hand_built_split(padding: str) -> None:
    tr = tiny(padding)
    if padding == "left":  # the last real item sits at the end of a left-padded state
        score_fn = lambda s, n: successor(s, torch.full_like(n, s.shape[1]))  # noqa: E731
    else:
        score_fn = successor
    cfg = EvalConfig(ks=KS, ng_off_k=5)
    got = evaluate(score_fn, tr, cfg, N, BETA)
    expected = hand_metrics()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert got["n_events"] == len(tr) == 8  # every event, the three empty-history ones included


def test_batch_size_and_memory_cap_do_not_change_results() -> None:
    rng = np.random.default_rng(0)
    n = 50
    sessions = [list(rng.integers(0, n, rng.integers(1, 15))) for _ in range(30)]
    buys = [list(rng.integers(0, 2, len(s))) for s in sessions]
    tr = Transitions(log_of(sessions, buys), state_size=4, pad_id=n)
    table = torch.from_numpy(rng.normal(size=(n + 1, n))).to(torch.float32)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def score_fn(state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        seen.append((state, len_state))
        return table[state.gather(1, (len_state - 1).unsqueeze(1)).squeeze(1)]

    beta = rng.random(n) + 0.01
    reference = evaluate(score_fn, tr, EvalConfig(batch_size=1000), n, beta)
    assert len(seen) == 1
    everything = tr.batch(torch.arange(len(tr)))
    assert torch.equal(seen[0][0], everything.state)  # the states of Transitions.batch
    assert torch.equal(seen[0][1], everything.len_state)
    for cfg in (
        EvalConfig(batch_size=1),
        EvalConfig(batch_size=7),
        EvalConfig(batch_size=1000, max_score_elements=3 * n + 1),
        EvalConfig(batch_size=1000, max_score_elements=n - 1),
    ):
        seen.clear()
        assert same(evaluate(score_fn, tr, cfg, n, beta), reference)
        step = cfg.effective_batch(n)
        assert [len(s) for s, _ in seen[:-1]] == [step] * (len(seen) - 1)
        assert sum(len(s) for s, _ in seen) == len(tr)
    assert EvalConfig(batch_size=1000, max_score_elements=3 * n + 1).effective_batch(n) == 3
    assert EvalConfig().effective_batch(1_000_000) == 67


def test_batching_does_not_change_expected_tie_metrics() -> None:
    rng = np.random.default_rng(1)
    n = 40
    sessions = [list(rng.integers(0, n, rng.integers(1, 12))) for _ in range(25)]
    buys = [list(rng.integers(0, 2, len(s))) for s in sessions]
    tr = Transitions(log_of(sessions, buys), state_size=4, pad_id=n)
    table = torch.from_numpy(rng.integers(0, 3, size=(n + 1, n))).to(torch.float32)  # many ties

    def score_fn(state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        return table[state.gather(1, (len_state - 1).unsqueeze(1)).squeeze(1)]

    beta = rng.random(n) + 0.01
    reference = evaluate(score_fn, tr, EvalConfig(batch_size=1000), n, beta)
    assert reference["tied_target_share"] > 0.9
    for cfg in (EvalConfig(batch_size=1), EvalConfig(batch_size=7)):
        got = evaluate(score_fn, tr, cfg, n, beta)
        assert got.keys() == reference.keys()
        for key, value in reference.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_constant_model_gets_k_over_n_and_is_flagged() -> None:
    tr = tiny()
    flat = lambda s, n: torch.zeros(len(s), N)  # noqa: E731
    got = evaluate(flat, tr, EvalConfig(ks=KS, ng_off_k=5), N, BETA)
    # every target is tied with the N - 1 = 5 other items: its rank is uniform on 1..6, so
    # HR@k = k/6 and NDCG@k = (Σ_{r=1..k} 1/log2(r+1)) / 6 for every event, whatever the model.
    ndcg = {
        1: 1 / 6,
        3: (1 + 1 / math.log2(3) + 1 / 2) / 6,
        5: (1 + 1 / math.log2(3) + 1 / 2 + G5 + 1 / math.log2(6)) / 6,
    }
    for k in KS:
        hr = k / 6
        for name, value in (("hr", hr), ("ndcg", ndcg[k])):
            for key in (
                f"{name}_click@{k}",
                f"{name}_purchase@{k}",
                f"{name}_click@{k}/nonempty",
                f"{name}_purchase@{k}/nonempty",
                f"{name}@{k}/session_mean",
            ):
                assert got[key] == pytest.approx(value, rel=1e-12), key
        assert got[f"reward@{k}"] == pytest.approx((0.2 * 5 + 1.0 * 3) * hr, rel=1e-12)
    assert got["ng_off_click"] == pytest.approx(ndcg[5], rel=1e-12)
    assert got["ng_off_purchase"] == pytest.approx(ndcg[5], rel=1e-12)
    assert got["tied_target_share"] == 1.0
    assert degenerate_warning(got) is not None
    assert degenerate_warning(evaluate(successor, tr, EvalConfig(ks=KS), N)) is None


def test_tie_modes_and_bad_inputs() -> None:
    tr = tiny()
    flat = lambda s, n: torch.zeros(len(s), N)  # noqa: E731
    assert EvalConfig().ties == "expected"
    opt = evaluate(flat, tr, EvalConfig(ks=KS, ties="optimistic"), N)
    assert opt["hr_click@1"] == opt["ndcg_purchase@1"] == 1.0  # what an unstable sort may give
    pess = evaluate(flat, tr, EvalConfig(ks=KS, ties="pessimistic"), N)
    assert pess["hr_click@5"] == 0.0 and pess["hr_purchase@5"] == 0.0
    assert opt["tied_target_share"] == pess["tied_target_share"] == 1.0
    for ties in ("expected", "optimistic", "pessimistic"):
        cfg = EvalConfig(ks=KS, ties=ties)  # type: ignore[arg-type]
        assert set(evaluate(flat, tr, cfg, N, BETA)) == metric_names(cfg, ng_off=True)
        assert "tied_target_share" in metric_names(cfg, ng_off=False)
    with pytest.raises(ValueError, match="score_fn returned shape"):
        evaluate(lambda s, n: torch.zeros(len(s), N + 1), tr, EvalConfig(), N)
    with pytest.raises(ValueError, match="propensity"):
        evaluate(flat, tr, EvalConfig(), N, np.ones(N + 1))
    with pytest.raises(ValueError):
        EvalConfig(ks=(0, 5))
    with pytest.raises(ValueError):
        EvalConfig(ties="random")  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 5, 10, 103])
@pytest.mark.parametrize("chunk_size", [1, 7, 50, 103, 500])
def test_chunked_top_k_equals_topk(k: int, chunk_size: int) -> None:
    scores = torch.randn(9, 103, generator=torch.Generator().manual_seed(k + chunk_size))
    values, indices = top_k(scores, k, chunk_size=chunk_size)
    ref_values, ref_indices = torch.topk(scores, k, dim=1)
    assert torch.equal(values, ref_values)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(top_k(scores, k)[1], ref_indices)


# ---------------------------------------------------- linear heads ranked in column chunks


def integer_head(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Small-integer weights and biases: products are exact in float32, so every way of summing
    gives the same scores, and many items tie."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(-2, 3, (n, d), generator=g).float(),
        torch.randint(-2, 3, (n,), generator=g).float(),
    )


@pytest.mark.parametrize("chunk", [1, 7, 64, 500, 10_000])
@pytest.mark.parametrize("special", ["none", "nan item", "nan state", "inf bias"])
def test_linear_rank_stats_equal_the_materialised_counts(chunk: int, special: str) -> None:
    """Chunked counts = ``target_rank_stats`` of the full score matrix, ties, NaN and ∞ included."""
    weight, bias = integer_head(531, 6, seed=chunk)
    h = torch.randint(-2, 3, (40, 6), generator=torch.Generator().manual_seed(1)).float()
    target = torch.randint(0, 531, (40,), generator=torch.Generator().manual_seed(2))
    if special == "nan item":
        weight[int(target[0])] = float("nan")  # a NaN target and NaN rivals elsewhere
        weight[17] = float("nan")
    elif special == "nan state":
        h[3] = float("nan")
    elif special == "inf bias":
        bias[[5, int(target[1])]] = float("inf")
        bias[9] = -float("inf")
    expected = target_rank_stats(torch.addmm(bias, h, weight.t()), target)
    got = linear_rank_stats(h, weight, bias, target, chunk)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    if special == "none":
        assert int(expected[1].sum()) > 40  # the case has ties to get right
        no_bias = linear_rank_stats(h, weight, None, target, chunk)
        want = target_rank_stats(h @ weight.t(), target)
        assert torch.equal(no_bias[0], want[0]) and torch.equal(no_bias[1], want[1])


def test_linear_rank_stats_recount_when_the_estimate_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The target's score is checked against the value its own chunk produced: an estimate that is
    one ulp off (as a differently shaped product may give) is corrected by a second sweep."""
    import rlrec.eval.metrics as metrics_module

    weight = torch.randn(3000, 16, generator=torch.Generator().manual_seed(0))
    bias = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    h = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    target = torch.randint(0, 3000, (64,), generator=torch.Generator().manual_seed(3))
    exact = linear_rank_stats(h, weight, bias, target, 256)
    scores = metrics_module._target_scores
    monkeypatch.setattr(
        metrics_module,
        "_target_scores",
        lambda *a: torch.nextafter(scores(*a), torch.tensor(float("inf"))),
    )
    sweeps = []
    sweep = metrics_module._linear_sweep
    monkeypatch.setattr(metrics_module, "_linear_sweep", lambda *a: sweeps.append(1) or sweep(*a))
    got = linear_rank_stats(h, weight, bias, target, 256)
    assert len(sweeps) == 2
    assert torch.equal(got[0], exact[0]) and torch.equal(got[1], exact[1])


@pytest.mark.parametrize("ties", ["expected", "pessimistic", "optimistic"])
def test_linear_scores_give_the_materialised_metrics(ties: str) -> None:
    """``evaluate`` with :class:`LinearScores` (chunks) = with the full score matrix, every metric."""
    g = torch.Generator().manual_seed(4)
    sessions = [torch.randint(0, 300, (int(n),), generator=g).tolist() for n in range(1, 40)]
    buys = [[int(i % 3 == 0) for i in range(len(s))] for s in sessions]
    data = Transitions(log_of(sessions, buys), state_size=5, pad_id=300)
    weight, bias = integer_head(300, 5, seed=5)
    embed = torch.randint(-1, 2, (301, 5), generator=g).float()

    def encode(state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        return embed[state].sum(dim=1)  # integer states: exact scores, many ties

    cfg = EvalConfig(ks=(1, 5, 10), ties=ties, batch_size=16)  # type: ignore[arg-type]
    pop = np.linspace(0.1, 1.0, 300)
    linear = evaluate(LinearScores(encode, weight, bias), data, cfg, 300, pop)
    full = evaluate(lambda s, n: torch.addmm(bias, encode(s, n), weight.t()), data, cfg, 300, pop)
    assert linear == full
    assert linear["tied_target_share"] > 0.1


# ---------------------------------------------------- list metrics (opt-in) through evaluate


@pytest.mark.parametrize("levels", [2, 5, 1000])
def test_ranked_top_is_the_total_order(levels: int) -> None:
    """:func:`ranked_top` = a full sort by (score desc, item index asc), ties across the k-th place
    included, for every k."""
    g = torch.Generator().manual_seed(levels)
    scores = torch.randint(0, levels, (25, 40), generator=g).float()
    scores[3] = 0.0  # a constant row
    order = np.lexsort((np.arange(40)[None, :].repeat(25, 0), -scores.numpy()), axis=1)
    for k in (1, 3, 39, 40):
        values, indices = ranked_top(scores, k)
        assert indices.tolist() == order[:, :k].tolist()
        assert torch.equal(values, scores.gather(1, indices))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_linear_ranked_top_equals_the_served_lists(chunk: int) -> None:
    """Chunked lists = :func:`ranked_top` of the materialised scores: ties by lower item index,
    NaN last (integer heads: exact scores, many ties)."""
    weight, bias = integer_head(300, 4, seed=chunk)
    weight[[3, 77]] = float("nan")
    h = torch.randint(-2, 3, (30, 4), generator=torch.Generator().manual_seed(0)).float()
    scores = torch.addmm(bias, h, weight.t()).nan_to_num(nan=-torch.inf)
    for k in (1, 10, 300):
        want = ranked_top(scores, k)[1]
        assert torch.equal(linear_ranked_top(h, weight, bias, k, chunk), want)
    flat = torch.zeros(2, 300)
    assert ranked_top(flat, 4)[1].tolist() == [[0, 1, 2, 3]] * 2  # ties: lower index first


def test_list_metrics_of_a_constant_model_and_the_served_lists() -> None:
    """A constant model serves items 0..k-1 to everybody (the serving tie rule): coverage k/n,
    the diversity and novelty of those k items."""
    tr = tiny()
    flat = lambda s, n: torch.zeros(len(s), N)  # noqa: E731
    vectors = torch.eye(N)  # orthogonal items: every pair has 1 − cos = 1
    pop = np.array([0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    cfg = EvalConfig(ks=KS, list_metrics=["coverage", "diversity", "novelty"])
    got = evaluate(
        LinearScores(lambda s, n: torch.zeros(len(s), N), vectors), tr, cfg, N, None, pop
    )
    for k in KS:
        assert got[f"coverage@{k}"] == k / N
        assert got[f"novelty@{k}"] == pytest.approx(np.mean(-np.log2(pop[:k])), rel=1e-12)
        if k > 1:
            assert got[f"diversity_head@{k}"] == pytest.approx(1.0)
    assert set(got) == metric_names(cfg, ng_off=False)
    assert "coverage@1" not in evaluate(flat, tr, EvalConfig(ks=KS), N)  # opt-in
    with pytest.raises(ValueError, match="diversity list metric needs item vectors"):
        evaluate(flat, tr, cfg, N, None, pop)
    with pytest.raises(ValueError, match="novelty list metric needs"):
        evaluate(flat, tr, EvalConfig(ks=KS, list_metrics=["novelty"]), N)


def test_list_metrics_of_the_successor_oracle() -> None:
    """``successor`` ranks ``last + 1, last + 2, …`` (mod N): the lists are known by hand."""
    tr = (
        tiny()
    )  # last items: pad(6), 0, 1 | pad | pad, 4, 4, 5  → top-1 items 1, 1, 2 | 1 | 1, 5, 5, 0
    got = evaluate(successor, tr, EvalConfig(ks=(1, 2), list_metrics=["coverage"]), N)
    assert got["coverage@1"] == 4 / N  # {0, 1, 2, 5}
    assert got["coverage@2"] == 5 / N  # second places 2, 2, 3 | 2 | 2, 0, 0, 1: adds 3, not 4


def test_linear_scores_give_the_materialised_list_metrics() -> None:
    g = torch.Generator().manual_seed(7)
    sessions = [torch.randint(0, 200, (int(n),), generator=g).tolist() for n in range(1, 30)]
    data = Transitions(log_of(sessions, [[0] * len(s) for s in sessions]), state_size=4, pad_id=200)
    weight, bias = integer_head(200, 5, seed=8)
    embed = torch.randint(-1, 2, (201, 5), generator=g).float()

    def encode(state: torch.Tensor, len_state: torch.Tensor) -> torch.Tensor:
        return embed[state].sum(dim=1)

    pop = np.linspace(0.1, 1.0, 200) / np.linspace(0.1, 1.0, 200).sum()
    cfg = EvalConfig(ks=(1, 5, 10), batch_size=16, list_metrics=["coverage", "novelty"])
    linear = evaluate(LinearScores(encode, weight, bias), data, cfg, 200, None, pop)
    full = evaluate(
        lambda s, n: torch.addmm(bias, encode(s, n), weight.t()), data, cfg, 200, None, pop
    )
    assert linear == full
    assert 0 < linear["coverage@10"] < 1


# ---------------------------------------------------- sampled ranking (uni100, pop100)


def last_item_rows(table: torch.Tensor) -> ScoreFn:
    """A model whose output for a history is the row of ``table`` of the history's last item."""
    return lambda s, ln: table[s.gather(1, (ln - 1).unsqueeze(1)).squeeze(1)]


def random_split(n_events: int, n_items: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    items = list(rng.integers(0, n_items, n_events))
    sessions = [items[i : i + 10] for i in range(0, n_events, 10)]
    buys = [[int(j % 4 == 0) for j in range(len(s))] for s in sessions]
    return Transitions(log_of(sessions, buys), state_size=3, pad_id=n_items)


@pytest.mark.parametrize("protocol", ["uni100", "pop100"])
def test_sampled_ranking_by_hand(protocol: str) -> None:
    """Scores ``−item``: the target's sampled rank is 1 + the number of its negatives with a lower
    index (those drawn by the seeded sampler); with 101 items every other item is a negative and
    the sampled ranking is the full one."""
    n = 150
    tr = random_split(200, n, seed=1)
    by_index = lambda s, ln: -torch.arange(n, dtype=torch.float32).expand(len(s), n)  # noqa: E731
    pop = np.random.default_rng(2).random(n) + 0.01
    cfg = EvalConfig(ks=(1, 10, 50), protocol=protocol, sample_seed=5)  # type: ignore[arg-type]
    got = evaluate(by_index, tr, cfg, n, None, pop)
    target = tr.items[: len(tr)].numpy()
    negatives = NegativeSampler(
        target, n, probs=pop if protocol == "pop100" else None, seed=5
    ).rows(0, len(tr))
    rank = 1 + (negatives < target[:, None]).sum(axis=1)
    click = tr.is_buy[: len(tr)].numpy() == 0
    for k in (1, 10, 50):
        assert got[f"hr_click@{k}"] == pytest.approx(np.mean(rank[click] <= k), rel=1e-12)
        assert got[f"mrr_click@{k}"] == pytest.approx(
            np.mean(np.where(rank[click] <= k, 1 / rank[click], 0)), rel=1e-12
        )
    small = random_split(60, 101, seed=3)
    table = torch.randn(102, 101, generator=torch.Generator().manual_seed(0))
    last = last_item_rows(table)
    full = evaluate(last, small, EvalConfig(), 101)
    sampled = evaluate(
        last, small, cfg.model_copy(update={"ks": (5, 10, 20)}), 101, None, pop[:101]
    )
    assert same(full, sampled)


def test_sampled_ties_and_determinism() -> None:
    n = 120
    tr = random_split(300, n, seed=4)
    flat = lambda s, ln: torch.zeros(len(s), n)  # noqa: E731
    got = evaluate(flat, tr, EvalConfig(ks=(1, 10), protocol="uni100"), n)
    assert got["hr_click@10"] == pytest.approx(10 / 101, rel=1e-12)  # in expectation, not 1
    assert got["tied_target_share"] == 1.0
    pess = evaluate(flat, tr, EvalConfig(ks=(10,), protocol="uni100", ties="pessimistic"), n)
    assert pess["hr_click@10"] == 0.0
    table = torch.randn(n + 1, n, generator=torch.Generator().manual_seed(1))
    last = last_item_rows(table)
    cfg = EvalConfig(protocol="uni100", sample_seed=9)
    a = evaluate(last, tr, cfg, n)
    assert same(a, evaluate(last, tr, cfg, n))
    assert same(a, evaluate(last, tr, cfg.model_copy(update={"batch_size": 7}), n))
    assert not same(a, evaluate(last, tr, cfg.model_copy(update={"sample_seed": 10}), n))
    linear = evaluate(
        LinearScores(
            last_item_rows(torch.eye(n + 1)),
            table.t().contiguous(),
        ),
        tr,
        cfg,
        n,
    )
    assert same(a, linear)  # the candidates' batched product = the gathered full scores
    with pytest.raises(ConfigError, match="needs at least 101 items"):
        evaluate(last, random_split(30, 100, 0), EvalConfig(protocol="uni100"), 100)
    with pytest.raises(ValueError, match="pop100' needs the training popularity"):
        evaluate(last, tr, EvalConfig(protocol="pop100"), n)


def test_uni100_hit_rate_of_a_random_model_is_10_over_101() -> None:
    """A model with i.i.d. random scores ranks the target uniformly among the 101 candidates:
    HR@10 = 10/101 in expectation; 100,000 events put the estimate within 4 standard deviations
    (±0.0038: a rank off by one, 9/101 or 11/101, is outside)."""
    n, events = 500, 100_000
    tr = random_split(events, n, seed=5)
    g = torch.Generator().manual_seed(6)
    noise = lambda s, ln: torch.rand(len(s), n, generator=g)  # noqa: E731
    got = evaluate(noise, tr, EvalConfig(ks=(10,), protocol="uni100"), n)
    hr = (got["hr_click@10"] * got["n_click"] + got["hr_purchase@10"] * got["n_purchase"]) / events
    p = 10 / 101
    assert abs(hr - p) < 4 * math.sqrt(p * (1 - p) / events)
