"""A streaming detector built from streamwise parts: Legendre memories + an online predictor.

The value, normalised online (running mean and variance, no look-ahead), drives two Legendre
memories (the LMU's linear system: one over ~16 records, one over ~256), which summarise its
recent past with O(1) state.  A linear predictor of the next value from those coefficients (plus
time-of-day and weekday phases when a timestamp is given) learns online by normalised LMS.  Its
absolute error, over its running RMS, is the raw anomaly score (in [0, 1]); the wrappers in
``postprocess`` turn it into a reported one.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from streamwise.layers.lmu import legendre_system
from streamwise.learn.base import AnomalyDetector, value_of
from streamwise.learn.running_stats import RunningStats


class LMUPredictorDetector(AnomalyDetector):
    def __init__(self, order: int = 12, thetas: tuple[float, ...] = (16.0, 256.0),
                 lr: float = 0.05) -> None:
        systems = [legendre_system(order, t) for t in thetas]
        self.a = [a.numpy() for a, _ in systems]
        self.b = [b.numpy() for _, b in systems]
        self.m = [np.zeros(order) for _ in thetas]
        self.stats = RunningStats()
        self.n_features = order * len(thetas) + 5  # memories, 4 time phases, bias
        self.w = np.zeros(self.n_features)
        self.lr = lr
        self.err_stats = RunningStats()
        self._features: np.ndarray | None = None  # features that predict the next value

    @staticmethod
    def _phases(x: float | dict[str, Any]) -> np.ndarray:
        t = x.get("timestamp") if isinstance(x, dict) else None
        if not isinstance(t, datetime):
            return np.zeros(4)
        day = (t.hour * 60 + t.minute) / 1440.0
        week = (t.weekday() + day) / 7.0
        tau = 2 * math.pi
        return np.array([math.sin(tau * day), math.cos(tau * day),
                         math.sin(tau * week), math.cos(tau * week)])

    def _error(self, x: float | dict[str, Any]) -> float:
        """Normalised absolute error of the prediction made for this record."""
        if self._features is None or self.stats.count < 2:
            return 0.0
        pred = float(self.w @ self._features)
        err = abs(self.stats.standardise(value_of(x)) - pred)
        scale = float(np.sqrt(self.err_stats.var + self.err_stats.mean ** 2)) or 1.0
        return min(err / scale / 4.0, 1.0)

    def score_one(self, x: float | dict[str, Any]) -> float:
        """Normalised absolute error of the prediction made for ``x`` (nothing learned)."""
        value_of(x)  # validates
        return self._error(x)

    def learn_one(self, x: float | dict[str, Any], y: Any = None) -> None:
        v = value_of(x)
        if self._features is not None and self.stats.count >= 2:  # normalised LMS step
            f = self._features
            err = self.stats.standardise(v) - float(self.w @ f)
            self.err_stats.update(abs(err))
            self.w += self.lr * err * f / (1e-6 + float(f @ f))
        self.stats.update(v)
        u = self.stats.standardise(v)
        for k in range(len(self.m)):
            self.m[k] = self.a[k] @ self.m[k] + self.b[k] * u
        self._features = np.concatenate([*self.m, self._phases(x), [1.0]])

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        self.last_raw = self.score_one(x)
        self.learn_one(x)
        return self.last_raw
