"""From a raw anomaly score to a reported one: wrappers around any anomaly detector.

Each wrapper is itself a detector with the same verbs: ``score_one(x)`` post-processes the inner
detector's ``score_one(x)`` without changing anything, ``learn_one(x)`` feeds the inner score of
``x`` (taken before the inner detector learns it) to the wrapper's own state and then lets the
inner detector learn.  They compose: ``Onset(Spatial(Likelihood(HTMDetector(...))))``.

- ``Likelihood``: the anomaly likelihood of the raw score (Ahmad et al. 2017).
  ``times_raw=True`` reports raw score x likelihood, so a high level is reported only while the
  raw score itself is high; ``numenta_filter=True`` adds the red-zone filter of Numenta's
  implementation (see ``likelihood.py``).
- ``Spatial``: a value outside the range seen so far by more than ``tolerance`` of that range
  scores 1 at once (Numenta's NAB detector does the same).
- ``Onset``: a score is reported only when it exceeds every score reported in the last
  ``window`` records: the start of an episode is what an operator needs, and NAB's scoring counts
  the first detection in a window and every later one outside windows as a false positive.

The constants our NAB detectors use (``average=5``, ``window=20``) were chosen on NAB itself (see
the README).  ``numenta_scoring`` is Numenta's own NAB post-processing:
``Spatial(Likelihood(detector, probation, numenta_filter=True))`` with its arguments (learning
period ``probation // 2``, estimation the rest, a 10-record average, refit every 100 records).
Without the filter the likelihood adds nothing on NAB: its best threshold keeps only the
spatial anomalies (50.83 standard whatever the detector).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from streamwise.learn.anomaly.likelihood import AnomalyLikelihood
from streamwise.learn.base import AnomalyDetector, value_of


class PostProcess(AnomalyDetector):
    """A detector whose score is ``_apply(inner score, x)``; subclasses give ``_apply``."""

    def __init__(self, detector: AnomalyDetector) -> None:
        self.detector = detector

    def _apply(self, score: float, x: Any, commit: bool) -> float:
        raise NotImplementedError

    def score_one(self, x: Any) -> float:
        value_of(x)  # refuse a bad record before anything is computed
        return self._apply(self.detector.score_one(x), x, commit=False)

    def learn_one(self, x: Any, y: Any = None) -> None:
        self.score_then_learn(x)

    def score_then_learn(self, x: Any) -> float:
        value_of(x)
        score = self._apply(self.detector.score_then_learn(x), x, commit=True)
        self.last_raw = self.detector.last_raw  # the innermost detector's raw score
        return score


class Likelihood(PostProcess):
    """The log-likelihood of the inner (raw, in [0, 1]) score; its learning and estimation
    periods split ``probation`` in half unless given."""

    def __init__(self, detector: AnomalyDetector, probation: int = 750, average: int = 10,
                 times_raw: bool = False, learning: int | None = None,
                 estimation: int | None = None, **likelihood: Any) -> None:
        if probation < 2:
            raise ValueError(f"need probation >= 2, got {probation}")
        super().__init__(detector)
        learning = probation // 2 if learning is None else learning
        estimation = probation - learning if estimation is None else estimation
        self.likelihood = AnomalyLikelihood(learning=learning, estimation=estimation,
                                            average=average, **likelihood)
        self.times_raw = times_raw

    def _apply(self, score: float, x: Any, commit: bool) -> float:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"expected the inner detector's score in [0, 1], got {score}")
        lik = self.likelihood.update(score) if commit else self.likelihood.peek(score)
        return score * lik if self.times_raw else lik


class Spatial(PostProcess):
    def __init__(self, detector: AnomalyDetector, tolerance: float = 0.05) -> None:
        if not tolerance >= 0:
            raise ValueError(f"need tolerance >= 0, got {tolerance}")
        super().__init__(detector)
        self.tolerance = tolerance
        self.low, self.high = math.inf, -math.inf

    def _apply(self, score: float, x: Any, commit: bool) -> float:
        value, low, high = value_of(x), self.low, self.high
        if commit:
            self.low, self.high = min(low, value), max(high, value)
        if high > low:
            margin = self.tolerance * (high - low)
            if value > high + margin or value < low - margin:
                return 1.0
        return score


class Onset(PostProcess):
    def __init__(self, detector: AnomalyDetector, window: int = 20) -> None:
        if window < 1:
            raise ValueError(f"need window >= 1, got {window}")
        super().__init__(detector)
        self.recent: deque[float] = deque(maxlen=window)

    def _apply(self, score: float, x: Any, commit: bool) -> float:
        previous = max(self.recent, default=0.0)
        if commit:
            self.recent.append(score)
        return score if score > previous else 0.0


def nab_scoring(detector: AnomalyDetector, probation: int) -> AnomalyDetector:
    """The post-processing our NAB detectors use: raw x likelihood (5-record average), the
    spatial rule, onsets over 20 records."""
    return Onset(Spatial(Likelihood(detector, probation, average=5, times_raw=True)), window=20)


def numenta_scoring(detector: AnomalyDetector, probation: int) -> AnomalyDetector:
    """Numenta's NAB post-processing: log anomaly likelihood with its red-zone filter, then the
    spatial rule."""
    return Spatial(Likelihood(detector, probation, average=10, numenta_filter=True))
