"""Approximate top-k with a FAISS index (``--index``): its recall, and lists that follow the exact
ranking's rules (order, ties, excluded history) over the index's candidates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config

from rlrec.serve.ann import ItemIndex
from rlrec.serve.inference import Query, Recommender


def test_index_recall_on_a_random_head() -> None:
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(5000, 16, generator=g), torch.randn(5000, generator=g)
    index = ItemIndex(weight, bias)
    s = torch.randn(200, 16, generator=g)
    assert index.recall(s, 10) >= 0.95
    scores, found = index.search(s, 10)
    assert torch.allclose(scores, (s @ weight.T + bias).gather(1, found))  # re-scored exactly
    # a head that only an inner product (not a cosine) ranks right: the bias decides
    flat = ItemIndex(torch.zeros(50, 4), torch.arange(50.0))
    assert flat.search(torch.randn(3, 4), 5)[1].tolist() == [[49, 48, 47, 46, 45]] * 3


@pytest.fixture(scope="module")
def rec(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    from rlrec.train.trainer import Trainer

    out = tmp_path_factory.mktemp("ann") / "run"
    cfg = tiny_train_config(
        tiny_dataset,
        out,
        objective={"kind": "supervised"},
        train={"max_steps": 10, "eval_every": 10, "tensorboard": False},
    )
    Trainer(cfg).fit()
    return Recommender.from_run(out)


def test_recommender_with_an_index_gives_the_exact_lists(rec: Recommender) -> None:
    ids = rec.ids
    best = [item for item, _ in rec.recommend([ids[10:16]], 6)[0]]  # excluded: the index must
    queries = [  # look past them
        Query(rec.encode(ids[:5]), 5),
        Query(rec.encode([]), 10),
        Query(rec.encode(best), 8, exclude_history=True),
    ]
    exact = rec.top(queries)
    assert rec.choose_index("exact") is None and rec.ann is None
    assert not rec.use_index(threshold=10**9)  # below the threshold: exact
    note = rec.choose_index("faiss")
    assert note is not None and "recall@10 1.000" in note  # 60 items: the graph finds them all
    approximate = rec.top(queries)
    assert [[i for i, _ in r] for r in approximate] == [[i for i, _ in r] for r in exact]
    for a, b in zip(approximate, exact, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-5, abs=1e-6)
    assert len(approximate[2]) == 8 and not {i for i, _ in approximate[2]} & set(best)


def test_cli_index_option(cli, rec: Recommender, tmp_path: Path) -> None:
    run = Path(rec.meta["checkpoint"]["path"]).parent
    result = cli("recommend", run, "--history", ",".join(map(str, rec.ids[:3])), "--index", "faiss")
    assert result.code == 0 and "approximate top-k: FAISS HNSW index over 60 items" in result.err
    result = cli("recommend", run, "--history", str(rec.ids[0]), "--index", "nearest")
    assert result.code == 2 and "--index must be auto, exact or faiss" in result.err


def test_auto_drops_an_index_below_the_recall_bar(
    rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ItemIndex, "calibrate", lambda self, s, k, target: 0.5)
    note = rec.choose_index("auto", threshold=0)
    assert rec.ann is None and note is not None and "ranking the full catalogue" in note
    assert rec.choose_index("faiss") is not None and rec.ann is not None  # asked for: kept
    rec.ann = None
