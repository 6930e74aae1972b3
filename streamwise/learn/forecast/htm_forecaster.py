"""HTM forecaster: an HTM region's active cells -> SDR classifiers -> the next ``horizon`` values.

The setup of Cui et al. 2016 for the New York taxi series: value, time of day and day of week
encoded, sequence memory learning all the time, and a classifier reading the active cells (one per
step ahead, up to ``horizon``).  The value encoder is sized from the series' range (``low``,
``high``), as in the paper.  ``tm="backtracking"`` reads the backtracking temporal memory's
inference cells instead.
"""

from __future__ import annotations

from typing import Any

from streamwise.learn.base import Forecaster, check_horizon, value_of
from streamwise.learn.htm.region import HTMRegion
from streamwise.learn.htm.sdr_classifier import SDRClassifier


class HTMForecaster(Forecaster):
    def __init__(self, low: float, high: float, horizon: int = 5, columns: int = 2048,
                 seed: int = 0, alpha: float = 0.01, sp_learning: bool = False,
                 tm: str = "sequence") -> None:
        check_horizon(horizon, None)
        # the pooler stays as initialised by default: without boosting, its Hebbian learning
        # let a few columns win for most inputs, and the classifier lost the value (measured
        # on nyc_taxi: NRMSE 0.94 with pooler learning, 0.42 without, classifier on columns)
        self.region = HTMRegion(low, high, columns, seed, time_of_day=True, day_of_week=True,
                                sp_learning=sp_learning, tm=tm)
        self.classifiers = [SDRClassifier(self.region.tm.n_cells, self.region.resolution,
                                          steps=h, alpha=alpha) for h in range(1, horizon + 1)]
        self.horizon = horizon
        self.learned = 0

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        """Learn the next value ``y``; ``x`` may carry its ``timestamp``."""
        value = value_of(y)
        if x is not None and not isinstance(x, dict):
            raise ValueError(f"expected x a dict of features (or None), got {x!r}")
        self.region.compute({**(x or {}), "value": value}, learn=True)
        for c in self.classifiers:
            c.learn(self.region.tm.active_cells, value)
        self.learned += 1

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        """The ``horizon`` values after the last one learned (``xs`` is not used)."""
        check_horizon(horizon, xs, self.horizon)
        if not self.learned:
            raise ValueError("nothing learned yet: call learn_one() first")
        return [c.predict(self.region.tm.active_cells) for c in self.classifiers[:horizon]]
