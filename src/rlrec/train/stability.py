"""Training-stability monitoring (P-CCQL §4.3; docs/conservative.md).

RL objectives for recommendation can reach a good validation score early and then degrade as
Q-learning diverges; P-CCQL asks for training dynamics to be reported beside tables. The trainer
logs, per step (averaged over each ``log_every`` window), the TD losses, the Q-values of the logged
action (``q_pos``), of the sampled negatives (``q_neg``), of the catalogue (``q_mean``, ``q_max``,
``q_abs_max``), the CE and contrastive losses and the gradient norm. :class:`StabilityMonitor`
reads those windows and the validation scores and **flags** three symptoms:

* ``q_out_of_range`` — ``q_abs_max`` exceeds ``q_bound_factor × max|r| / (1 − γ)``: no discounted
  sum of the rewards can reach it, so the Q head extrapolates without bound;
* ``td_rise`` — the TD loss of a window exceeds ``td_rise ×`` the smallest earlier window value
  (after the first ``warmup_windows`` windows);
* ``val_drop`` — the validation ``select_metric`` falls below ``(1 − val_drop) ×`` its best.

Each flag is reported once (its first occurrence), logged as a ``stability`` record, and listed in
``summary.json``; ``stop_on_flag`` ends the run at the first flag (the best checkpoint stays).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field

from rlrec.config import StrictModel

TD_KEYS = ("td_pos", "td_neg")


class StabilityConfig(StrictModel):
    """Thresholds of the divergence flags (``null`` disables one)."""

    q_bound_factor: float | None = Field(2.0, gt=0.0)
    td_rise: float | None = Field(10.0, gt=1.0)
    warmup_windows: int = Field(3, ge=0, description="log windows before td_rise is checked")
    val_drop: float | None = Field(0.2, gt=0.0, lt=1.0)
    stop_on_flag: bool = False
    catalogue_stats_every: int = Field(
        10,
        ge=1,
        description="log q_mean, q_max and q_abs_max (statistics of Q(s, ·) over the whole "
        "catalogue, one extra head pass) every this many steps",
    )


@dataclass(frozen=True)
class Flag:
    """One symptom of instability at optimiser step ``step``."""

    kind: str
    step: int
    value: float
    threshold: float

    def record(self) -> dict[str, Any]:
        """The ``stability`` log record of this flag."""
        return {
            "flag": self.kind,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message(),
        }

    def message(self) -> str:
        what = {
            "q_out_of_range": "max |Q|",
            "td_rise": "TD loss",
            "val_drop": "validation metric",
        }[self.kind]
        side = "below" if self.kind == "val_drop" else "above"
        return (
            f"{self.kind} at step {self.step}: {what} {self.value:.4g} {side} {self.threshold:.4g}"
        )


class StabilityMonitor:
    """Checks log windows and validation scores; remembers what it flagged (resumable state)."""

    def __init__(self, cfg: StabilityConfig, q_bound: float | None) -> None:
        """``q_bound``: the largest ``|Q|`` a discounted reward sum can reach, ``None`` if unbounded."""
        self.cfg = cfg
        self.q_bound = q_bound
        self.td_min = math.inf
        self.windows = 0
        self.flags: list[Flag] = []

    def _raise(self, kind: str, step: int, value: float, threshold: float) -> list[Flag]:
        if any(f.kind == kind for f in self.flags):
            return []
        flag = Flag(kind, step, value, threshold)
        self.flags.append(flag)
        return [flag]

    def check_train(self, step: int, values: dict[str, float]) -> list[Flag]:
        """New flags from one log window's averaged values."""
        new: list[Flag] = []
        cfg = self.cfg
        q = values.get("q_abs_max")
        if cfg.q_bound_factor is not None and self.q_bound is not None and q is not None:
            limit = cfg.q_bound_factor * self.q_bound
            if q > limit:
                new += self._raise("q_out_of_range", step, q, limit)
        td = sum(values[k] for k in TD_KEYS if k in values) if "td_pos" in values else None
        if cfg.td_rise is not None and td is not None and math.isfinite(td):
            self.windows += 1
            if self.windows > cfg.warmup_windows:
                if self.td_min > 0 and td > cfg.td_rise * self.td_min:
                    new += self._raise("td_rise", step, td, cfg.td_rise * self.td_min)
                self.td_min = min(self.td_min, td)
        return new

    def check_val(self, step: int, value: float, best: float | None) -> list[Flag]:
        """New flags from a validation score and the best one so far (higher is better)."""
        if self.cfg.val_drop is None or best is None or math.isnan(value) or best <= 0:
            return []
        limit = (1.0 - self.cfg.val_drop) * best
        return self._raise("val_drop", step, value, limit) if value < limit else []

    def state_dict(self) -> dict[str, Any]:
        return {
            "td_min": None if math.isinf(self.td_min) else self.td_min,
            "windows": self.windows,
            "flags": [asdict(f) for f in self.flags],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.td_min = math.inf if state.get("td_min") is None else float(state["td_min"])
        self.windows = int(state.get("windows", 0))
        self.flags = [Flag(**f) for f in state.get("flags", [])]


def q_value_bound(rewards: list[float], gamma: float) -> float | None:
    """``max|r| / (1 − γ)``: no discounted sum of these rewards exceeds it in magnitude."""
    if gamma >= 1.0:
        return None
    return max(abs(r) for r in rewards) / (1.0 - gamma)
