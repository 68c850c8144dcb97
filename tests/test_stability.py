"""The divergence flags of the stability monitor on hand-made log windows (P-CCQL §4.3)."""

from __future__ import annotations

import math

import pytest

from rlrec.train.stability import StabilityConfig, StabilityMonitor, q_value_bound


def test_q_bound_is_the_largest_discounted_reward_sum() -> None:
    assert q_value_bound([0.2, 1.0], 0.5) == 2.0
    assert q_value_bound([0.2, 1.0, -3.0], 0.9) == pytest.approx(30.0)
    assert q_value_bound([1.0], 1.0) is None


def test_each_flag_fires_once_at_its_threshold() -> None:
    mon = StabilityMonitor(StabilityConfig(q_bound_factor=2.0, td_rise=10.0, warmup_windows=1), 2.0)
    assert mon.check_train(10, {"q_abs_max": 3.9, "td_pos": 5.0}) == []  # warm-up window
    assert mon.check_train(20, {"q_abs_max": 4.0, "td_pos": 0.1, "td_neg": 0.1}) == []
    flags = mon.check_train(30, {"q_abs_max": 4.5, "td_pos": 1.0, "td_neg": 1.1})
    # 4.5 > 2·2 and 2.1 > 10 × 0.2 (the smallest window after warm-up)
    assert [(f.kind, f.step, f.value) for f in flags] == [
        ("q_out_of_range", 30, 4.5),
        ("td_rise", 30, pytest.approx(2.1)),
    ]
    assert flags[1].threshold == pytest.approx(2.0)
    assert mon.check_train(40, {"q_abs_max": 9.0, "td_pos": 50.0}) == []  # reported once
    assert mon.check_val(40, 0.5, None) == []
    assert mon.check_val(50, 0.81, 1.0) == []  # 0.81 ≥ (1 − 0.2)·1.0
    drop = mon.check_val(60, 0.79, 1.0)
    assert [(f.kind, f.threshold) for f in drop] == [("val_drop", pytest.approx(0.8))]
    assert drop[0].message() == "val_drop at step 60: validation metric 0.79 below 0.8"


def test_state_round_trip_and_disabled_checks() -> None:
    mon = StabilityMonitor(StabilityConfig(warmup_windows=0), 2.0)
    mon.check_train(5, {"td_pos": 0.3, "q_abs_max": 10.0})
    again = StabilityMonitor(StabilityConfig(warmup_windows=0), 2.0)
    again.load_state_dict(mon.state_dict())
    assert again.flags == mon.flags and again.td_min == 0.3 and again.windows == 1
    off = StabilityMonitor(StabilityConfig(q_bound_factor=None, td_rise=None, val_drop=None), 2.0)
    assert off.check_train(5, {"td_pos": math.inf, "q_abs_max": 1e9}) == []
    assert off.check_val(5, 0.0, 1.0) == []
