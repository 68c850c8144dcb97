"""Item popularity β(a) for SA2C's off-policy weights and NG_off (spec-offline §A.7), by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rlrec.data.dataset import PreparedDataset
from rlrec.data.popularity import item_popularity
from rlrec.data.prepare import ITEMS


def dataset_with_counts(
    tmp_path: Path, rows: list[tuple[int, int, int]], n: int
) -> PreparedDataset:
    """A dataset directory holding only ``items.parquet`` with rows ``(item, count_all, count_train)``
    written in the given (unsorted) order."""
    pl.DataFrame(
        {
            "item": [r[0] for r in rows],
            "item_id": [f"raw{r[0]}" for r in rows],
            "count_all": [r[1] for r in rows],
            "count_train": [r[2] for r in rows],
        },
        schema={
            "item": pl.Int32,
            "item_id": pl.Utf8,
            "count_all": pl.Int64,
            "count_train": pl.Int64,
        },
    ).write_parquet(tmp_path / ITEMS)
    return PreparedDataset(tmp_path, {"n_items": n, "pad_id": n, "state_size": 3})


# item:          0  1  2  3
# count_all:     5  3  1  1   (10 events)
# count_train:   4  0  1  0   (5 training events; item 1 only appears outside training)
ROWS = [(2, 1, 1), (0, 5, 4), (3, 1, 0), (1, 3, 0)]


def test_train_scope_with_add_one_smoothing_is_the_default(tmp_path: Path) -> None:
    ds = dataset_with_counts(tmp_path, ROWS, 4)
    expected = [5 / 9, 1 / 9, 2 / 9, 1 / 9]  # (4+1, 0+1, 1+1, 0+1) / (5 + 4)
    assert item_popularity(ds).tolist() == pytest.approx(expected, rel=1e-15)
    assert item_popularity(ds, "train", 1.0).tolist() == pytest.approx(expected, rel=1e-15)
    assert item_popularity(ds).dtype == np.float64


def test_both_scopes_and_the_smoothing_by_hand(tmp_path: Path) -> None:
    ds = dataset_with_counts(tmp_path, ROWS, 4)
    assert item_popularity(ds, "train", 0.0).tolist() == pytest.approx([0.8, 0.0, 0.2, 0.0])
    assert item_popularity(ds, "all", 0.0).tolist() == pytest.approx([0.5, 0.3, 0.1, 0.1])
    # (5.5, 3.5, 1.5, 1.5) / (10 + 4·0.5)
    assert item_popularity(ds, "all", 0.5).tolist() == pytest.approx(
        [5.5 / 12, 3.5 / 12, 1.5 / 12, 1.5 / 12]
    )
    # (4+2, 0+2, 1+2, 0+2) / (5 + 4·2)
    assert item_popularity(ds, "train", 2.0).tolist() == pytest.approx(
        [6 / 13, 2 / 13, 3 / 13, 2 / 13]
    )
    for scope in ("train", "all"):
        for smoothing in (0.0, 0.5, 1.0):
            assert item_popularity(ds, scope, smoothing).sum() == pytest.approx(1.0, abs=1e-15)  # type: ignore[arg-type]


def test_items_missing_from_the_table_count_zero(tmp_path: Path) -> None:
    ds = dataset_with_counts(tmp_path, [(0, 2, 2), (2, 2, 1)], 4)  # items 1 and 3 never seen
    assert item_popularity(ds, "train", 1.0).tolist() == pytest.approx([3 / 7, 1 / 7, 2 / 7, 1 / 7])
    assert item_popularity(ds, "all", 0.0).tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0])


def test_bad_smoothing_and_no_events(tmp_path: Path) -> None:
    ds = dataset_with_counts(tmp_path, [(0, 2, 0), (1, 1, 0)], 2)
    with pytest.raises(ValueError, match="non-negative"):
        item_popularity(ds, "train", -0.5)
    with pytest.raises(ValueError, match="no train events"):
        item_popularity(ds, "train", 0.0)
    assert item_popularity(ds, "train", 1.0).tolist() == [0.5, 0.5]
    assert item_popularity(ds, "all", 0.0).tolist() == pytest.approx([2 / 3, 1 / 3])


def test_prepared_dataset_counts_match_its_splits(tiny_dataset: Path) -> None:
    """On a real prepared dataset β equals the item frequencies counted from the split files."""
    ds = PreparedDataset.load(tiny_dataset)
    n = ds.n_items
    train = np.bincount(ds.frame("train").get_column("item").to_numpy(), minlength=n)
    every = sum(
        np.bincount(ds.frame(s).get_column("item").to_numpy(), minlength=n)
        for s in ("train", "val", "test")
    )
    assert item_popularity(ds, "train", 1.0) == pytest.approx((train + 1) / (train.sum() + n))
    assert item_popularity(ds, "all", 0.0) == pytest.approx(every / every.sum())
    assert not np.allclose(train / train.sum(), every / every.sum())  # the scopes differ here
