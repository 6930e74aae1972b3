"""Welford's running mean and variance, one value (or vector) at a time.

Shared by the stream-x wrappers, the LMU anomaly predictor, the neural forecaster and the
stream-x prediction task; it needs only NumPy (no gymnasium), so the anomaly and forecasting
learners work without the ``rl`` extra.
"""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Welford's running mean and variance of vectors (or scalars)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.count = 0
        self.mean = np.zeros(shape, dtype=np.float64)
        self.m2 = np.zeros(shape, dtype=np.float64)

    def update(self, x: np.ndarray | float) -> None:
        self.count += 1
        delta = np.asarray(x, dtype=np.float64) - self.mean
        self.mean = self.mean + delta / self.count
        self.m2 = self.m2 + delta * (np.asarray(x, dtype=np.float64) - self.mean)

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count if self.count > 1 else np.ones_like(self.mean)

    @property
    def std(self) -> float:
        """Standard deviation of a scalar stream: 1 before two values, or while it is 0."""
        return float(np.sqrt(self.var)) or 1.0

    def standardise(self, x: float) -> float:
        """A scalar value in units of the running statistics."""
        return (x - float(self.mean)) / self.std

    def unstandardise(self, u: float) -> float:
        return u * self.std + float(self.mean)
