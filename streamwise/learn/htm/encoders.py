"""Encoders: values and timestamps as sparse distributed representations (sets of active bits).

- ``ScalarEncoder``: ``w`` consecutive bits slide over ``n`` as the value goes from ``low`` to
  ``high`` (optionally periodic, wrapping around), so nearby values share bits.
- ``RandomDistributedScalarEncoder``: a value's bucket ``b = floor(v / resolution)`` activates
  the bits ``hash(b), hash(b + 1), ..., hash(b + w - 1)``: neighbouring buckets share ``w - 1``
  bits, distant ones almost none, and no range has to be known in advance.
- ``DateEncoder``: time of day (periodic), weekend and day of week (periodic), concatenated.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit integer hash (splitmix64 finaliser), vectorised."""
    salt = np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))  # wraps like the C original
    z = x.astype(np.uint64) + salt
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class RandomDistributedScalarEncoder:
    def __init__(self, resolution: float, n: int = 400, w: int = 21, seed: int = 42) -> None:
        if resolution <= 0 or w < 1 or n <= w:
            raise ValueError(f"need resolution > 0 and n > w >= 1, got {resolution}, {n}, {w}")
        self.resolution, self.n, self.w, self.seed = resolution, n, w, seed

    @property
    def size(self) -> int:
        return self.n

    def encode(self, value: float) -> np.ndarray:
        """Sorted indices of the active bits (at most ``w``: hash collisions merge bits)."""
        if not np.isfinite(value):
            raise ValueError(f"cannot encode {value}")
        bucket = int(np.floor(value / self.resolution))
        # offset keeps the hashed integers non-negative for negative buckets
        keys = np.arange(bucket, bucket + self.w, dtype=np.int64) + (1 << 40)
        bits = (_mix(keys, self.seed) % np.uint64(self.n)).astype(np.int64)
        return np.unique(bits)


class ScalarEncoder:
    def __init__(self, low: float, high: float, n: int, w: int, periodic: bool = False) -> None:
        if not high > low or w < 1 or n <= w:
            raise ValueError(f"need high > low and n > w >= 1, got {low}, {high}, {n}, {w}")
        self.low, self.high, self.n, self.w, self.periodic = low, high, n, w, periodic

    @property
    def size(self) -> int:
        return self.n

    def encode(self, value: float) -> np.ndarray:
        if not np.isfinite(value):
            raise ValueError(f"cannot encode {value}")
        frac = (value - self.low) / (self.high - self.low)
        if self.periodic:
            first = int(np.floor((frac % 1.0) * self.n))
            return np.sort((first + np.arange(self.w)) % self.n)
        frac = min(max(frac, 0.0), 1.0)
        first = int(round(frac * (self.n - self.w)))
        return np.arange(first, first + self.w)


class DateEncoder:
    """Time of day (periodic, ``w`` bits over ``radius_hours``), weekend (two states) and day
    of week (periodic, ``w`` bits over ``radius_days``; off unless given)."""

    def __init__(self, w: int = 21, radius_hours: float = 9.49, weekend: bool = True,
                 radius_days: float | None = None) -> None:
        n_day = max(w + 1, int(round(w * 24.0 / radius_hours)))
        self.day = ScalarEncoder(0.0, 24.0, n_day, w, periodic=True)
        self.weekend = ScalarEncoder(0.0, 1.0, 2 * w, w) if weekend else None
        self.week = None if radius_days is None else ScalarEncoder(
            0.0, 7.0, max(w + 1, int(round(w * 7.0 / radius_days))), w, periodic=True)

    @property
    def size(self) -> int:
        return sum(e.size for e in (self.day, self.weekend, self.week) if e is not None)

    def encode(self, t: datetime) -> np.ndarray:
        hours = t.hour + t.minute / 60.0 + t.second / 3600.0
        bits, offset = [self.day.encode(hours)], self.day.size
        if self.weekend is not None:
            bits.append(offset + self.weekend.encode(1.0 if t.weekday() >= 5 else 0.0))
            offset += self.weekend.size
        if self.week is not None:
            bits.append(offset + self.week.encode(t.weekday() + hours / 24.0))
        return np.concatenate(bits)
