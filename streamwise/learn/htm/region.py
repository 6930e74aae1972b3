"""One HTM region: encoders -> spatial pooler -> temporal memory, fed one record at a time.

The value encoder is sized from the stream's expected range (``resolution = max(0.001,
(high - low) / 130)``, Numenta's NAB setting); time of day (and optionally day of week) are
encoded beside it when records carry a ``timestamp``.  The pooler and temporal memory take
Numenta's NAB parameters (2048 columns, 40 active, 32 cells per column, activation threshold 13,
min threshold 10, 20 new synapses, 32 synapses per segment); ``tm_params`` overrides the
temporal memory's.  ``tm="backtracking"`` swaps in the backtracking temporal memory
(``backtracking_tm.py``, the kind Numenta's NAB results came from, with its NAB parameters:
128 segments per cell, pay-attention length 3, inference/learning backtracking over 10/5
inputs, sequences restarted after 32 steps).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from streamwise.learn.base import value_of
from streamwise.learn.htm.backtracking_tm import BacktrackingTM
from streamwise.learn.htm.encoders import DateEncoder, RandomDistributedScalarEncoder
from streamwise.learn.htm.spatial_pooler import SpatialPooler
from streamwise.learn.htm.temporal_memory import TemporalMemory


class HTMRegion:
    def __init__(self, low: float, high: float, columns: int = 2048, seed: int = 0,
                 time_of_day: bool = True, day_of_week: bool = False,
                 buckets: float = 130.0, sp_learning: bool = True,
                 tm_params: dict[str, Any] | None = None, tm: str = "sequence") -> None:
        if not np.isfinite(low) or not np.isfinite(high) or high < low:
            raise ValueError(f"need finite low <= high, got {low}, {high}")
        if tm not in ("sequence", "backtracking"):
            raise ValueError(f"tm must be 'sequence' or 'backtracking', got {tm!r}")
        self.resolution = max(0.001, (high - low) / buckets)
        self.value_enc = RandomDistributedScalarEncoder(self.resolution, n=400, w=21, seed=seed)
        # time of day, as Numenta's NAB model: half the active input bits, so a novel value
        # at a familiar hour still changes about half the pooler's columns
        self.date_enc = DateEncoder(w=21, radius_hours=9.49, weekend=False,
                                    radius_days=1.0 if day_of_week else None) \
            if time_of_day or day_of_week else None
        size = self.value_enc.size + (self.date_enc.size if self.date_enc else 0)
        self.sp = SpatialPooler(size, columns, 40, seed=seed)
        self.sp_learning = sp_learning
        params: dict[str, Any] = dict(activation_threshold=13, min_threshold=10,
                                      max_synapses=32, seed=seed)
        self.tm: TemporalMemory | BacktrackingTM
        if tm == "backtracking":
            self.tm = BacktrackingTM(columns, 32, new_synapses=20,
                                     **{**params, **(tm_params or {})})
        else:
            self.tm = TemporalMemory(columns, 32, max_new_synapses=20,
                                     **{**params, **(tm_params or {})})

    def encode(self, x: float | dict[str, Any]) -> np.ndarray:
        bits = [self.value_enc.encode(value_of(x))]
        t = x.get("timestamp") if isinstance(x, dict) else None
        if self.date_enc is not None and isinstance(t, datetime):
            bits.append(self.value_enc.size + self.date_enc.encode(t))
        return np.concatenate(bits)

    def compute(self, x: float | dict[str, Any], learn: bool = True) -> float:
        """Feed one record; returns the raw anomaly (fraction of unpredicted columns)."""
        columns = self.sp.compute(self.encode(x), learn=learn and self.sp_learning)
        return self.tm.compute(columns, learn=learn)

    def surprise(self, x: float | dict[str, Any]) -> float:
        """Raw anomaly of ``x`` against the current predictions, learning nothing."""
        columns = self.sp.compute(self.encode(x), learn=False)
        predicted = self.tm.predicted_columns()
        return 1.0 - len(np.intersect1d(columns, predicted)) / len(columns)
