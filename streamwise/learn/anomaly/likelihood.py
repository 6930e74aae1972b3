"""Anomaly likelihood: how unusual is the recent level of raw anomaly scores?

Raw scores (prediction errors, say) are noisy and their scale differs from stream to stream.  The
likelihood smooths them with a short moving average, fits a Gaussian to that average over a long
trailing history (refitted periodically), and reports how far in the tail the current average
lies.  A log transform spreads the values near 1, where the decisions are made.  (The method of
Ahmad et al., "Unsupervised real-time anomaly detection for streaming data", 2017: the first
``learning`` scores are left out of the fit, the next ``estimation`` scores only feed it, and the
fitted mean and variance have floors so that a stream predicted perfectly so far does not turn
every small error into an alarm.)  ``numenta_filter`` adds the red-zone filter of Numenta's
implementation: a tail probability at most ``1e-5`` right after another one is raised to
``1e-3``, so a run of extreme levels is reported at full strength only on its first record.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

MEAN_FLOOR, VARIANCE_FLOOR = 0.03, 0.0003
RED, YELLOW = 1e-5, 1e-3  # Numenta's filter: tail probabilities of 0.99999 and 0.999


class AnomalyLikelihood:
    """``update(raw) -> score in [0, 1]``: likelihood 0.5 until ``learning + estimation`` scores."""

    def __init__(self, learning: int = 288, estimation: int = 100, history: int = 8640,
                 average: int = 10, refit_every: int = 100, log_scale: bool = True,
                 numenta_filter: bool = False) -> None:
        if learning < 0 or estimation < 1 or history < 1 or average < 1 or refit_every < 1:
            raise ValueError("need learning >= 0 and estimation, history, average, "
                             "refit_every >= 1")
        self.learning, self.estimation = learning, estimation
        self.average, self.refit_every = average, refit_every
        self.recent: deque[float] = deque(maxlen=average)
        self.history: deque[float] = deque(maxlen=history)  # moving averages after learning
        self.mean, self.std = 0.0, 1.0
        self.seen = 0
        self.log_scale = log_scale
        self.numenta_filter = numenta_filter
        self.prev_level: float | None = None  # the last level, for the filter
        self.prev_tail = 1.0  # its tail probability (unfiltered) under the current fit

    @staticmethod
    def _fit(history: Sequence[float]) -> tuple[float, float]:
        """Mean and standard deviation of ``history``, with their floors."""
        n = len(history)
        mean = sum(history) / n
        var = sum((h - mean) ** 2 for h in history) / n
        return max(mean, MEAN_FLOOR), math.sqrt(max(var, VARIANCE_FLOOR))

    def tail(self, level: float, mean: float | None = None, std: float | None = None) -> float:
        """Probability of a level at least this far from the mean (mirrored below it)."""
        mean = self.mean if mean is None else mean
        std = self.std if std is None else std
        z = abs(level - mean) / std
        return 0.5 * math.erfc(z / math.sqrt(2))

    def _level(self, raw: float) -> float:
        """The moving average of the last ``average`` raw scores, ``raw`` the newest."""
        kept = list(self.recent)[max(0, len(self.recent) - self.average + 1):]
        return (sum(kept) + raw) / (len(kept) + 1)

    def _refit_due(self, seen: int) -> bool:
        return seen == self.learning + self.estimation + 1 or seen % self.refit_every == 0

    def _filtered(self, tail: float, prev_tail: float) -> float:
        return YELLOW if self.numenta_filter and tail <= RED and prev_tail <= RED else tail

    def peek(self, raw: float) -> float:
        """The score ``update(raw)`` would give, with nothing changed."""
        level, seen = self._level(raw), self.seen + 1
        if seen <= self.learning + self.estimation:
            return self._scale(0.5)
        mean, std, prev_tail = self.mean, self.std, self.prev_tail
        if self._refit_due(seen):
            cap = self.history.maxlen or len(self.history) + 1
            mean, std = self._fit(list(self.history)[max(0, len(self.history) + 1 - cap):]
                                  + [level])
            if self.prev_level is not None:
                prev_tail = self.tail(self.prev_level, mean, std)
        return self._scale(1.0 - self._filtered(self.tail(level, mean, std), prev_tail))

    def update(self, raw: float) -> float:
        level = self._level(raw)
        self.recent.append(raw)
        self.seen += 1
        if self.seen > self.learning:
            self.history.append(level)
        if self.seen <= self.learning + self.estimation:
            self.prev_level = level
            return self._scale(0.5)
        if self._refit_due(self.seen):
            self.mean, self.std = self._fit(self.history)
            if self.prev_level is not None:
                self.prev_tail = self.tail(self.prev_level)
        tail = self.tail(level)
        score = self._scale(1.0 - self._filtered(tail, self.prev_tail))
        self.prev_level, self.prev_tail = level, tail
        return score

    def _scale(self, likelihood: float) -> float:
        if not self.log_scale:
            return likelihood
        # log transform: 0.5 -> 0.03, 0.9 -> 0.1, 0.99999 -> 0.5, 0.9999999999 -> 1.0
        return min(1.0, math.log(1.0000000001 - likelihood) / math.log(1e-10))
