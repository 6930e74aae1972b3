"""From a raw anomaly score to a reported one: likelihood, onsets and spatial anomalies.

The raw score (say, the fraction of unpredicted HTM columns, or a prediction error) passes
through the anomaly likelihood; the reported score is the raw score times its likelihood score,
so a high level is reported only while the raw score itself is high.  A score is reported in
full only when it exceeds every score reported in the last ``onset`` records: the start of an
episode is what an operator needs, and the repeats inside it are damped to zero (NAB's scoring
agrees: it counts the first detection in a window, and every later one outside windows as a
false positive).  A value outside the range seen so far by more than ``spatial_tolerance`` of
that range is a *spatial* anomaly and scores 1.  The constants (``average=5``, ``onset=20``)
were chosen on NAB itself (see the README).
"""

from __future__ import annotations

import math
from collections import deque

from streamwise.learn.anomaly.likelihood import AnomalyLikelihood


class AnomalyScorer:
    def __init__(self, probation: int = 750, average: int = 5, onset: int = 20,
                 spatial_tolerance: float | None = 0.05) -> None:
        if probation < 2 or onset < 0:
            raise ValueError(f"need probation >= 2 and onset >= 0, got {probation}, {onset}")
        learning = probation // 2
        self.likelihood = AnomalyLikelihood(learning=learning, estimation=probation - learning,
                                            average=average)
        self.recent: deque[float] = deque(maxlen=max(onset, 1))
        self.onset = onset
        self.spatial_tolerance = spatial_tolerance
        self.low, self.high = math.inf, -math.inf

    def _spatial(self, value: float) -> bool:
        """Is ``value`` outside the range seen so far (widened by the tolerance)? Updates it."""
        low, high = self.low, self.high
        self.low, self.high = min(low, value), max(high, value)
        if self.spatial_tolerance is None or not high > low:
            return False
        margin = self.spatial_tolerance * (high - low)
        return value > high + margin or value < low - margin

    def update(self, raw: float, value: float) -> float:
        """Score of the record whose raw anomaly is ``raw`` (in [0, 1]) and value ``value``."""
        if not 0.0 <= raw <= 1.0 or not math.isfinite(value):
            raise ValueError(f"expected raw in [0, 1] and a finite value, got {raw}, {value}")
        score = raw * self.likelihood.update(raw)
        if self._spatial(value):
            score = 1.0
        if self.onset:
            previous = max(self.recent, default=0.0)
            self.recent.append(score)
            if score <= previous:
                score = 0.0
        return score
