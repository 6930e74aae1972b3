"""HTM anomaly detector: encoders -> spatial pooler -> temporal memory -> anomaly likelihood.

Like Numenta's NAB detector, it sizes its value encoder from the file's minimum and maximum
(``resolution = max(0.001, (max - min) / 130)``) and its likelihood's learning period from the
benchmark's probationary length: the only things it knows in advance.  Also like it, a value
outside the range seen so far (by more than 5% of that range) scores 1 at once: a *spatial*
anomaly that needs no sequence context.
"""

from __future__ import annotations

import math
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
                 probation: int = 750, time_of_day: bool = True,
                 spatial_tolerance: float | None = 0.05) -> None:
        self.value_enc = RandomDistributedScalarEncoder(max(0.001, (high - low) / 130.0),
                                                        n=400, w=21, seed=seed)
        # time of day, as Numenta's NAB model: half the active input bits, so a novel value
        # at a familiar hour still changes about half the pooler's columns
        self.date_enc = DateEncoder(w=21, radius_hours=9.49, weekend=False) if time_of_day \
            else None
        size = self.value_enc.size + (self.date_enc.size if self.date_enc else 0)
        self.sp = SpatialPooler(size, columns, 40, seed=seed)
        self.tm = TemporalMemory(columns, 32, activation_threshold=13, min_threshold=10,
                                 max_new_synapses=20, max_synapses=32, seed=seed)
        learning = probation // 2
        self.likelihood = AnomalyLikelihood(learning=learning, estimation=probation - learning)
        self.spatial_tolerance = spatial_tolerance
        self.seen_low, self.seen_high = math.inf, -math.inf
        self.last_raw = 0.0

    def _encode(self, x: float | dict[str, Any]) -> np.ndarray:
        bits = [self.value_enc.encode(value_of(x))]
        t = x.get("timestamp") if isinstance(x, dict) else None
        if self.date_enc is not None and isinstance(t, datetime):
            bits.append(self.value_enc.size + self.date_enc.encode(t))
        return np.concatenate(bits)

    def _spatial_anomaly(self, value: float) -> bool:
        """Is ``value`` outside the range seen so far (widened by the tolerance)? Updates it."""
        low, high = self.seen_low, self.seen_high
        self.seen_low, self.seen_high = min(low, value), max(high, value)
        if self.spatial_tolerance is None or not high > low:
            return False
        margin = self.spatial_tolerance * (high - low)
        return value > high + margin or value < low - margin

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        spatial = self._spatial_anomaly(value_of(x))
        columns = self.sp.compute(self._encode(x), learn=True)
        self.last_raw = self.tm.compute(columns, learn=True)
        score = self.likelihood.update(self.last_raw)
        return 1.0 if spatial else score

    def learn_one(self, x: float | dict[str, Any]) -> None:
        self.score_then_learn(x)

    def score_one(self, x: float | dict[str, Any]) -> float:
        """Raw anomaly of ``x`` against the current predictions (nothing is learned)."""
        columns = self.sp.compute(self._encode(x), learn=False)
        predicted = self.tm.predicted_columns()
        return 1.0 - len(np.intersect1d(columns, predicted)) / len(columns)
