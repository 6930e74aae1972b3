"""The verbs every streaming detector shares (River's): ``learn_one``, ``score_one``."""

from __future__ import annotations

import math
from typing import Any


def value_of(x: float | dict[str, Any], key: str = "value") -> float:
    """The numeric value of a record: a float, or ``x[key]`` of a dict; NaN/inf refused."""
    if isinstance(x, dict) and key not in x:
        raise ValueError(f"expected a dict with a {key!r} entry, got keys {sorted(x)}")
    v = x[key] if isinstance(x, dict) else x
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"expected a number (or a dict with {key!r}), got {x!r}") from e
    if not math.isfinite(f):
        raise ValueError(f"expected a finite value, got {f}")
    return f


class Detector:
    """``score_one(x)`` in [0, 1] scores a record before learning it; ``learn_one(x)`` learns."""

    #: the raw score (before any likelihood) behind the last ``score_then_learn``, if any
    last_raw: float | None = None

    def learn_one(self, x: float | dict[str, Any]) -> None:
        raise NotImplementedError

    def score_one(self, x: float | dict[str, Any]) -> float:
        raise NotImplementedError

    def score_then_learn(self, x: float | dict[str, Any]) -> float:
        """Prequential use: score the record with what was learned so far, then learn it."""
        s = self.score_one(x)
        self.learn_one(x)
        return s
