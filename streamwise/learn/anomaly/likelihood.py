"""Anomaly likelihood: how unusual is the recent level of raw anomaly scores?

Raw scores (prediction errors, say) are noisy and their scale differs from stream to stream.  The
likelihood smooths them with a short moving average, fits a Gaussian to that average over a long
trailing history (refitted periodically), and reports how far in the upper tail the current
average lies.  A log transform spreads the values near 1, where the decisions are made.  (The
method of Ahmad et al., "Unsupervised real-time anomaly detection for streaming data", 2017.)
"""

from __future__ import annotations

import math
from collections import deque


class AnomalyLikelihood:
    """``update(raw) -> score in [0, 1]``; 0.5 until ``learning`` raw scores have been seen."""

    def __init__(self, learning: int = 288, history: int = 8640, average: int = 10,
                 refit_every: int = 100, log_scale: bool = True) -> None:
        self.learning, self.average, self.refit_every = learning, average, refit_every
        self.recent: deque[float] = deque(maxlen=average)
        self.history: deque[float] = deque(maxlen=history)
        self.mean, self.std = 0.0, 1.0
        self.seen = 0
        self.log_scale = log_scale

    def _refit(self) -> None:
        n = len(self.history)
        self.mean = sum(self.history) / n
        var = sum((h - self.mean) ** 2 for h in self.history) / n
        self.std = max(math.sqrt(var), 0.03)  # a floor: flat streams are not all anomalies

    def update(self, raw: float) -> float:
        self.recent.append(raw)
        level = sum(self.recent) / len(self.recent)
        self.history.append(level)
        self.seen += 1
        if self.seen <= self.learning:
            return 0.5
        if self.seen == self.learning + 1 or self.seen % self.refit_every == 0:
            self._refit()
        z = (level - self.mean) / self.std
        likelihood = 1.0 - 0.5 * math.erfc(z / math.sqrt(2))  # P(level' < level)
        if not self.log_scale:
            return likelihood
        # log transform: 0.9 -> 0.1, 0.99999 -> 0.5, 0.9999999999 -> 1.0
        return min(1.0, math.log(1.0000000001 - likelihood) / math.log(1e-10))
