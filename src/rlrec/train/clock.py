"""Where a training run's time goes, and the per-window averages of its logged values."""

from __future__ import annotations

import time
from collections import defaultdict

import torch


class StepClock:
    """Wall-clock seconds by activity (``train``, ``validation``, ``checkpoint``).

    :meth:`lap` charges the time since the previous lap to an activity, so training throughput can
    leave out evaluation and checkpoint time. On CUDA it synchronises first: kernels still queued
    belong to the activity that launched them.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self._mark = time.perf_counter()
        self._window_train = 0.0

    def lap(self, activity: str) -> float:
        """Charge the seconds since the last lap to ``activity``; returns them."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        self.seconds[activity] += seconds
        if activity == "train":
            self._window_train += seconds
        return seconds

    def take_window(self) -> float:
        """Training seconds since the previous call (a log window's), at least 1 ns."""
        seconds, self._window_train = self._window_train, 0.0
        return max(seconds, 1e-9)

    def total(self) -> float:
        return sum(self.seconds.values())


def window_means(steps: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """The mean of each logged value over the steps that logged it.

    The values stay tensors until here, so a step costs no ``.item()`` (no device synchronisation
    on CUDA) and no Python-side arithmetic; one stack per key at the end of the window.
    """
    keys = dict.fromkeys(k for step in steps for k in step)
    return {
        k: float(torch.stack([step[k].double() for step in steps if k in step]).mean())
        for k in keys
    }
