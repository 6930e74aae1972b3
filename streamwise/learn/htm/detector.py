"""HTM anomaly detector: an HTM region's raw anomaly -> likelihood, onsets, spatial anomalies.

Like Numenta's NAB detector, it sizes its value encoder from the file's minimum and maximum
(``resolution = max(0.001, (max - min) / 130)``) and its likelihood's learning period from the
benchmark's probationary length: the only things it knows in advance.  Also like it, a value
outside the range seen so far (by more than 5% of that range) scores 1 at once.  How the raw
score becomes the reported one is ``AnomalyScorer``'s business.
"""

from __future__ import annotations

from typing import Any

from streamwise.learn.anomaly.base import Detector, value_of
from streamwise.learn.anomaly.postprocess import AnomalyScorer
from streamwise.learn.htm.region import HTMRegion
from streamwise.learn.htm.temporal_memory import TemporalMemory


class HTMDetector(Detector):
    def __init__(self, low: float, high: float, columns: int = 2048, seed: int = 0,
                 probation: int = 750, time_of_day: bool = True, sp_learning: bool = True,
                 **scoring: Any) -> None:
        self.region = HTMRegion(low, high, columns, seed, time_of_day=time_of_day,
                                sp_learning=sp_learning)
        self.scorer = AnomalyScorer(probation, **scoring)
        self.last_raw = 0.0

    @property
    def tm(self) -> TemporalMemory:
        return self.region.tm

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        value = value_of(x)
        self.last_raw = self.region.compute(x, learn=True)
        return self.scorer.update(self.last_raw, value)

    def learn_one(self, x: float | dict[str, Any]) -> None:
        self.score_then_learn(x)

    def score_one(self, x: float | dict[str, Any]) -> float:
        """Raw anomaly of ``x`` against the current predictions (nothing is learned)."""
        return self.region.surprise(x)
