"""Streaming metrics with River's verbs: ``update(y_true, y_pred)``, ``revert``, ``get()``.

``requires_labels`` says whether a metric reads a label (``predict_one``) or probabilities
(``predict_proba_one``, a ``{label: p}`` dict); River's metric objects have the same attributes,
so either kind can go into our evaluators.  ``ROCAUC`` is exact (River's is an approximation over
a fixed grid of thresholds): it keeps the positives' and negatives' scores sorted, so an update
or a revert costs one binary search and one insertion.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Hashable
from typing import Any

EPS = 1e-15  # probabilities are clamped to [EPS, 1 - EPS] for the log loss, as River does


class Metric:
    requires_labels = True
    bigger_is_better = True

    def update(self, y_true: Any, y_pred: Any) -> None:
        raise NotImplementedError

    def revert(self, y_true: Any, y_pred: Any) -> None:
        raise NotImplementedError

    def get(self) -> float:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.name}: {self.get():.6f}"


class _Mean(Metric):
    """The mean of ``_value(y_true, y_pred)`` over the updates (nan before any)."""

    def __init__(self) -> None:
        self.total, self.n = 0.0, 0

    def _value(self, y_true: Any, y_pred: Any) -> float:
        raise NotImplementedError

    def update(self, y_true: Any, y_pred: Any) -> None:
        self.total += self._value(y_true, y_pred)
        self.n += 1

    def revert(self, y_true: Any, y_pred: Any) -> None:
        self.total -= self._value(y_true, y_pred)
        self.n -= 1

    def get(self) -> float:
        return self.total / self.n if self.n else math.nan


class Accuracy(_Mean):
    def _value(self, y_true: Any, y_pred: Any) -> float:
        return float(y_true == y_pred)


def positive_probability(y_pred: Any) -> float:
    """P(True) from a ``{label: p}`` dict (River's binary convention) or a number."""
    if isinstance(y_pred, dict):
        return float(y_pred.get(True, 0.0))
    return float(y_pred)


class LogLoss(_Mean):
    """Binary log loss on ``P(True)`` for boolean labels (as River), else the cross-entropy of
    the true label's probability."""

    requires_labels = False
    bigger_is_better = False

    def _value(self, y_true: Any, y_pred: Any) -> float:
        if isinstance(y_true, bool) or y_true in (0, 1) and not isinstance(y_pred, dict):
            p = min(max(positive_probability(y_pred), EPS), 1 - EPS)
            return -math.log(p) if y_true else -math.log(1 - p)
        p = min(max(float(y_pred.get(y_true, 0.0)), EPS), 1 - EPS)
        return -math.log(p)


class MAE(_Mean):
    bigger_is_better = False

    def _value(self, y_true: Any, y_pred: Any) -> float:
        return abs(float(y_true) - float(y_pred))


class RMSE(_Mean):
    bigger_is_better = False

    def _value(self, y_true: Any, y_pred: Any) -> float:
        return (float(y_true) - float(y_pred)) ** 2

    def get(self) -> float:
        return math.sqrt(super().get())


class ROCAUC(Metric):
    """Exact area under the ROC curve of ``P(positive)``; ties count one half."""

    requires_labels = False

    def __init__(self, positive: Hashable = True) -> None:
        self.positive = positive
        self.pos: list[float] = []
        self.neg: list[float] = []
        self.wins = 0.0  # positive-negative pairs ordered right (ties 1/2)

    def _pairs(self, s: float, is_pos: bool) -> float:
        other = self.neg if is_pos else self.pos
        lo, hi = bisect.bisect_left(other, s), bisect.bisect_right(other, s)
        below = lo if is_pos else len(other) - hi  # negatives under a positive, or vice versa
        return below + 0.5 * (hi - lo)

    def _score(self, y_pred: Any) -> float:
        if isinstance(y_pred, dict):
            return float(y_pred.get(self.positive, 0.0))
        return float(y_pred)

    def update(self, y_true: Any, y_pred: Any) -> None:
        s, is_pos = self._score(y_pred), y_true == self.positive
        self.wins += self._pairs(s, is_pos)
        bisect.insort(self.pos if is_pos else self.neg, s)

    def revert(self, y_true: Any, y_pred: Any) -> None:
        s, is_pos = self._score(y_pred), y_true == self.positive
        mine = self.pos if is_pos else self.neg
        del mine[bisect.bisect_left(mine, s)]
        self.wins -= self._pairs(s, is_pos)

    def get(self) -> float:
        n = len(self.pos) * len(self.neg)
        return self.wins / n if n else math.nan


class Rolling(Metric):
    """``metric`` over the last ``window`` updates (it must support ``revert``)."""

    def __init__(self, metric: Any, window: int) -> None:
        if window < 1:
            raise ValueError(f"need window >= 1, got {window}")
        self.metric, self.window = metric, window
        self.recent: deque[tuple[Any, Any]] = deque()
        self.requires_labels = getattr(metric, "requires_labels", True)
        self.bigger_is_better = getattr(metric, "bigger_is_better", True)

    @property
    def name(self) -> str:
        return f"Rolling{type(self.metric).__name__}"

    def update(self, y_true: Any, y_pred: Any) -> None:
        self.metric.update(y_true, y_pred)
        self.recent.append((y_true, y_pred))
        if len(self.recent) > self.window:
            self.metric.revert(*self.recent.popleft())

    def get(self) -> float:
        return float(self.metric.get())


METRICS = {"accuracy": Accuracy, "log_loss": LogLoss, "roc_auc": ROCAUC, "mae": MAE,
           "rmse": RMSE}
