"""HTM forecaster: an HTM region's active cells -> SDR classifier -> the value ``steps`` ahead.

The setup of Cui et al. 2016 for the New York taxi series: value, time of day and day of week
encoded, sequence memory learning all the time, and a classifier reading the active cells.  The
value encoder is sized from the series' range (``low``, ``high``), as in the paper.
"""

from __future__ import annotations

from typing import Any

from streamwise.learn.anomaly.base import value_of
from streamwise.learn.htm.region import HTMRegion
from streamwise.learn.htm.sdr_classifier import SDRClassifier


class HTMForecaster:
    def __init__(self, low: float, high: float, steps: int = 5, columns: int = 2048,
                 seed: int = 0, alpha: float = 0.01, sp_learning: bool = False) -> None:
        # the pooler stays as initialised by default: without boosting, its Hebbian learning
        # let a few columns win for most inputs, and the classifier lost the value (measured
        # on nyc_taxi: NRMSE 0.94 with pooler learning, 0.42 without, classifier on columns)
        self.region = HTMRegion(low, high, columns, seed, time_of_day=True, day_of_week=True,
                                sp_learning=sp_learning)
        self.classifier = SDRClassifier(self.region.tm.n_cells, self.region.resolution,
                                        steps=steps, alpha=alpha)
        self.steps = steps

    def learn_one(self, x: float | dict[str, Any]) -> None:
        value = value_of(x)
        self.region.compute(x, learn=True)
        self.classifier.learn(self.region.tm.active_cells, value)

    def predict_one(self) -> float:
        """The value ``steps`` records after the last one learned."""
        return self.classifier.predict(self.region.tm.active_cells)
