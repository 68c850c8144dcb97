"""Transitions cut at batch time match the reference replay buffer (spec-offline §A.5)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rlrec.data.dataset import SessionLog
from rlrec.data.transitions import Transitions


def log_of(sessions: list[list[int]], buys: list[list[int]] | None = None) -> SessionLog:
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    is_buy = (
        np.concatenate([np.asarray(b, dtype=np.int8) for b in buys])
        if buys
        else np.zeros(len(items), dtype=np.int8)
    )
    starts = np.cumsum([0] + [len(s) for s in sessions]).astype(np.int64)
    return SessionLog(items, is_buy, starts, pl.Series(range(len(sessions))))


def test_worked_example_of_spec_a5() -> None:
    P = 99
    frame = Transitions(log_of([[5, 7, 5]], [[0, 0, 1]]), state_size=10, pad_id=P).to_frame()
    assert frame.get_column("state").to_list() == [[P] * 10, [5] + [P] * 9, [5, 7] + [P] * 8]
    assert frame.get_column("len_state").to_list() == [1, 1, 2]
    assert frame.get_column("action").to_list() == [5, 7, 5]
    assert frame.get_column("is_buy").to_list() == [0, 0, 1]
    assert frame.get_column("next_state").to_list() == [
        [5] + [P] * 9,
        [5, 7] + [P] * 8,
        [5, 7, 5] + [P] * 7,
    ]
    assert frame.get_column("len_next_states").to_list() == [1, 2, 3]
    assert frame.get_column("is_done").to_list() == [False, False, True]


def test_window_slides_beyond_state_size() -> None:
    x = list(range(1, 13))  # a 12-event session x_1..x_12
    frame = Transitions(log_of([x]), state_size=10, pad_id=0).to_frame()
    assert frame.row(11, named=True)["state"] == x[1:11]  # i = 12: [x_2..x_11]
    assert frame.row(11, named=True)["len_state"] == 10
    assert frame.row(11, named=True)["next_state"] == x[2:12]


@pytest.mark.parametrize("padding", ["right", "left"])
def test_next_state_is_next_state_and_one_done_per_session(padding: str) -> None:
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(0, 50, rng.integers(1, 30))) for _ in range(40)]
    log = log_of(sessions)
    tr = Transitions(log, state_size=7, pad_id=50, padding=padding)  # type: ignore[arg-type]
    b = tr.batch(torch.arange(len(tr)))
    done = b.done.numpy()
    assert done.sum() == len(sessions)
    assert np.all(done[log.starts[1:] - 1])
    inner = np.flatnonzero(~done)
    assert torch.equal(b.next_state[inner], b.state[inner + 1])
    assert torch.equal(b.len_next_state[inner], b.len_state[inner + 1])
    # the first event of every session has an empty (all-pad) state and len_state 1
    first = torch.from_numpy(log.starts[:-1])
    assert bool((b.state[first] == 50).all()) and bool((b.len_state[first] == 1).all())


def test_left_padding_aligns_history_to_the_right() -> None:
    frame = Transitions(log_of([[5, 7, 5]]), 4, pad_id=9, padding="left").to_frame()
    assert frame.get_column("state").to_list() == [[9, 9, 9, 9], [9, 9, 9, 5], [9, 9, 5, 7]]
    assert frame.get_column("len_state").to_list() == [1, 1, 2]


def test_reward_and_shuffled_batches_are_seeded() -> None:
    tr = Transitions(log_of([[1, 2, 3], [4, 5]], [[0, 1, 0], [1, 0]]), 3, pad_id=6)
    b = tr.batch(torch.arange(5))
    assert b.reward(0.2, 1.0).tolist() == pytest.approx([0.2, 1.0, 0.2, 1.0, 0.2])
    order = lambda seed: torch.cat(  # noqa: E731
        [
            x.action
            for x in tr.iter_batches(2, shuffle=True, generator=torch.Generator().manual_seed(seed))
        ]
    )
    assert torch.equal(order(3), order(3))
    assert sorted(order(3).tolist()) == [1, 2, 3, 4, 5]
