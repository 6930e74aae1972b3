"""NAB scoring: anomaly windows, probation, the scaled sigmoid, a threshold sweep, normalisation.

Rules (NAB v1.1):
- the first 15% of each file (at most 750 rows) is probationary and not scored;
- inside a labelled window, a detection at relative position ``p = -(right - i + 1) / width``
  scores ``tpWeight * S(p) / S(-1)`` with ``S(p) = 2 / (1 + e^(5p)) - 1`` (``-1`` for p >= 3);
  only the best (earliest) detection of a window counts; a window without one costs
  ``fnWeight``;
- outside windows, a detection costs ``fpWeight * S(|i - right_prev| / (width_prev - 1))`` after
  a window, ``fpWeight`` (S = -1) before the first one;
- one threshold per detector and profile, the one that maximises the total over all files (an
  exhaustive sweep over every distinct anomaly score);
- ``100 * (score - null) / (perfect - null)``, the null detector being a constant score and the
  perfect one ``tpWeight`` per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: ~0.987 at a window's left edge, 0 at its right edge, -1 far after."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int, fraction: float = 0.15) -> float:
    return min(math.floor(fraction * rows), fraction * 5000)


@dataclass(frozen=True)
class Point:
    """One scorable row: its anomaly score, its weighted reward if detected, its window."""

    score: float
    reward: float
    window: str | None  # None outside windows


def sweep_points(scores: list[float], windows: list[tuple[int, int]], name: str,
                 cost: dict[str, float], probation: float = 0.15) -> list[Point]:
    """Per-row rewards of one file; ``windows`` are (first, last) row indices, in order."""
    max_tp = scaled_sigmoid(-1.0)
    skip = probation_length(len(scores), probation)
    points: list[Point] = []
    pending = list(windows)
    current: tuple[int, int] | None = None
    prev: tuple[int, int] | None = None
    for i, s in enumerate(scores):
        if pending and i == pending[0][0]:
            current = pending.pop(0)
        if current is not None:
            width = current[1] - current[0] + 1
            reward = scaled_sigmoid(-(current[1] - i + 1) / width) * cost["tpWeight"] / max_tp
            window: str | None = f"{name}|{current[0]}"
        else:
            pos = 3.0 if prev is None else abs(prev[1] - i) / (prev[1] - prev[0])
            reward = scaled_sigmoid(pos) * cost["fpWeight"]
            window = None
        if i >= skip:
            points.append(Point(float(s), reward, window))
        if current is not None and i == current[1]:
            prev, current = current, None
    return points


def threshold_scores(points: list[Point], cost: dict[str, float]) -> list[tuple[float, float]]:
    """(threshold, total score) for every distinct anomaly score, detections being ``>=``."""
    ranked = sorted(points, key=lambda p: p.score, reverse=True)
    windows = {p.window: -cost["fnWeight"] for p in ranked if p.window is not None}
    fp, tp_sum = 0.0, sum(windows.values())
    out: list[tuple[float, float]] = [(math.inf, fp + tp_sum)]
    for k, p in enumerate(ranked):
        if p.window is None:
            fp += p.reward
        elif p.reward > windows[p.window]:
            tp_sum += p.reward - windows[p.window]
            windows[p.window] = p.reward
        if k + 1 == len(ranked) or ranked[k + 1].score != p.score:
            out.append((p.score, fp + tp_sum))
    return out


def best_threshold(points: list[Point], cost: dict[str, float]) -> tuple[float, float]:
    """The (threshold, score) with the highest total; ties go to the higher threshold."""
    best = (math.inf, -math.inf)
    for thr, score in threshold_scores(points, cost):
        if score > best[1]:
            best = (thr, score)
    return best


def normalised(score: float, null: float, windows: int, cost: dict[str, float]) -> float:
    perfect = windows * cost["tpWeight"]
    return 100.0 * (score - null) / (perfect - null)
