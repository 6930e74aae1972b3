"""Windowed Gaussian: the NAB baseline.  A value's score is one minus its Gaussian tail
probability under the mean and standard deviation of a trailing window of past values, which
slides forward in steps (NAB's settings: a 6400-value window moved by 100)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from streamwise.learn.base import AnomalyDetector, value_of


class WindowedGaussian(AnomalyDetector):
    def __init__(self, window: int = 6400, step: int = 100) -> None:
        if window < 2 or step < 1:
            raise ValueError(f"need window >= 2 and step >= 1, got {window}, {step}")
        self.window, self.step = window, step
        self.values: deque[float] = deque()
        self.pending: list[float] = []
        self.total, self.total_sq = 0.0, 0.0  # running sums over the window
        self.mean, self.std = 0.0, 1.0

    def _add(self, v: float) -> None:
        self.values.append(v)
        self.total += v
        self.total_sq += v * v

    def _refit(self) -> None:
        n = len(self.values)
        self.mean = self.total / n
        var = max(self.total_sq / n - self.mean * self.mean, 0.0)
        self.std = math.sqrt(var) or 1e-6

    def score_one(self, x: float | dict[str, Any]) -> float:
        v = value_of(x)
        if not self.values:
            return 0.0
        z = abs(v - self.mean) / self.std
        tail = 0.5 * math.erfc(z / math.sqrt(2))  # probability of a value this far out
        return 1.0 - tail

    def learn_one(self, x: float | dict[str, Any], y: Any = None) -> None:
        v = value_of(x)
        if len(self.values) < self.window:
            self._add(v)
            self._refit()
            return
        self.pending.append(v)
        if len(self.pending) == self.step:  # slide the window forward by one step
            for p in self.pending:
                old = self.values.popleft()
                self.total -= old
                self.total_sq -= old * old
                self._add(p)
            self.pending = []
            self._refit()
