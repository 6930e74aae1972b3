"""HTM anomaly detector: the raw anomaly of an HTM region (the fraction of unpredicted columns).

Like Numenta's NAB detector, it sizes its value encoder from the file's minimum and maximum
(``resolution = max(0.001, (max - min) / 130)``) and its likelihood's learning period from the
benchmark's probationary length (given to the likelihood wrapper): the only things it knows in
advance.  How the raw score becomes the reported one (likelihood, spatial anomalies, onsets) is
the business of the wrappers in ``streamwise.learn.anomaly.postprocess``:
``Spatial(Likelihood(HTMDetector(low, high), probation))`` is Numenta's own post-processing.
``tm="backtracking"`` uses the backtracking temporal memory (see ``region.py``).
"""

from __future__ import annotations

from typing import Any

from streamwise.learn.base import AnomalyDetector, value_of
from streamwise.learn.htm.backtracking_tm import BacktrackingTM
from streamwise.learn.htm.region import HTMRegion
from streamwise.learn.htm.temporal_memory import TemporalMemory


class HTMDetector(AnomalyDetector):
    def __init__(self, low: float, high: float, columns: int = 2048, seed: int = 0,
                 time_of_day: bool = True, sp_learning: bool = True,
                 tm: str = "sequence") -> None:
        self.region = HTMRegion(low, high, columns, seed, time_of_day=time_of_day,
                                sp_learning=sp_learning, tm=tm)
        self.last_raw = 0.0

    @property
    def tm(self) -> TemporalMemory | BacktrackingTM:
        return self.region.tm

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        value_of(x)
        self.last_raw = self.region.compute(x, learn=True)
        return self.last_raw

    def learn_one(self, x: float | dict[str, Any], y: Any = None) -> None:
        self.score_then_learn(x)

    def score_one(self, x: float | dict[str, Any]) -> float:
        """Raw anomaly of ``x`` against the current predictions (nothing is learned)."""
        return self.region.surprise(x)
