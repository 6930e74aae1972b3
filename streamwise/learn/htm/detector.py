"""HTM anomaly detector: encoders -> spatial pooler -> temporal memory -> anomaly likelihood.

Like Numenta's NAB detector, it sizes its value encoder from the file's minimum and maximum
(``resolution = max(0.001, (max - min) / 130)``): the only thing it knows in advance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from streamwise.learn.anomaly.base import Detector, value_of
from streamwise.learn.anomaly.likelihood import AnomalyLikelihood
from streamwise.learn.htm.encoders import DateEncoder, RandomDistributedScalarEncoder
from streamwise.learn.htm.spatial_pooler import SpatialPooler
from streamwise.learn.htm.temporal_memory import TemporalMemory


class HTMDetector(Detector):
    def __init__(self, low: float, high: float, columns: int = 2048, seed: int = 0,
                 learning: int = 375, time_of_day: bool = False) -> None:
        self.value_enc = RandomDistributedScalarEncoder(max(0.001, (high - low) / 130.0),
                                                        n=400, w=21, seed=seed)
        # off by default: without boosting, the slowly varying time bits came to dominate the
        # pooler's columns, and a novel value changed only ~18% of them (measured)
        self.date_enc = DateEncoder(w=21, radius_hours=9.49, weekend=False) if time_of_day \
            else None
        size = self.value_enc.size + (self.date_enc.size if self.date_enc else 0)
        self.sp = SpatialPooler(size, columns, 40, seed=seed)
        self.tm = TemporalMemory(columns, 32, activation_threshold=13, min_threshold=10,
                                 max_new_synapses=20, max_synapses=32, seed=seed)
        self.likelihood = AnomalyLikelihood(learning=learning)
        self.last_raw = 0.0

    def _encode(self, x: float | dict[str, Any]) -> np.ndarray:
        bits = [self.value_enc.encode(value_of(x))]
        t = x.get("timestamp") if isinstance(x, dict) else None
        if self.date_enc is not None and isinstance(t, datetime):
            bits.append(self.value_enc.size + self.date_enc.encode(t))
        return np.concatenate(bits)

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        columns = self.sp.compute(self._encode(x), learn=True)
        self.last_raw = self.tm.compute(columns, learn=True)
        return self.likelihood.update(self.last_raw)

    def learn_one(self, x: float | dict[str, Any]) -> None:
        self.score_then_learn(x)

    def score_one(self, x: float | dict[str, Any]) -> float:
        """Raw anomaly of ``x`` against the current predictions (nothing is learned)."""
        columns = self.sp.compute(self._encode(x), learn=False)
        predicted = self.tm.predicted_columns()
        return 1.0 - len(np.intersect1d(columns, predicted)) / len(columns)
