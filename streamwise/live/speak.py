"""When to speak: a calibrated head that decides, at every input step, to stay silent or respond.

VideoLLM-online trains its language model to emit, per frame, either "stay silent" or a
response.  Here the decision is a logistic head on the model's own hidden state at each input
step (a read of a few words): ``features = [mean over the read's tokens, last token]`` of the
last layer.  It is fitted on steps labelled by construction (here: a read in which a character
is named as speaking, ``live/questions.py``'s attribution rule), and its threshold is calibrated
on a held-out part of the steps to a target rate of false alarms (fires on a step with nothing
to say).  ``trade_off`` measures, over a threshold sweep, false alarms against the response
delay (steps from an event to the first firing at or after it) and misses (no firing before the
next event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def read_labels(events: Sequence[int], bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """1 for each read ``(a, b)`` (words ``a .. b-1``) in which an event completes, i.e. some
    ``e`` in ``events`` with ``a < e <= b`` (``e``: the number of words read when it is
    complete, as ``Book.speeches`` counts)."""
    ev = np.sort(np.asarray(events, dtype=np.int64))
    out = np.zeros(len(bounds), dtype=np.int64)
    for i, (a, b) in enumerate(bounds):
        j = np.searchsorted(ev, a, side="right")
        out[i] = int(j < len(ev) and ev[j] <= b)
    return out


@dataclass
class SpeakHead:
    """``fit(features, labels)``, then ``prob(features)`` and ``fires(features)``."""

    false_alarm: float = 0.02  # target share of silent steps on which it fires (held-out)
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)
    _model: Any = None
    _mean: Any = None
    _std: Any = None

    def fit(self, features: np.ndarray, labels: np.ndarray, held_out: float = 0.3,
            seed: int = 0) -> SpeakHead:
        from sklearn.linear_model import LogisticRegression

        x, y = np.asarray(features, dtype=np.float64), np.asarray(labels).astype(int)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"expected features [N, D] and labels [N], got {x.shape}, {y.shape}")
        if not 0.0 < held_out < 1.0 or not 0.0 < self.false_alarm < 1.0:
            raise ValueError("expected 0 < held_out < 1 and 0 < false_alarm < 1")
        cut = int(len(x) * (1 - held_out))  # in stream order: calibrate on what comes later
        if len(set(y[:cut].tolist())) < 2 or not (y[cut:] == 0).any():
            raise ValueError("expected both labels in the fitting part and silent steps in the "
                             "held-out part")
        self._mean, self._std = x[:cut].mean(0), x[:cut].std(0) + 1e-6
        self._model = LogisticRegression(C=0.05, max_iter=2000, random_state=seed)
        self._model.fit((x[:cut] - self._mean) / self._std, y[:cut])
        p = self.prob(x[cut:])
        silent = np.sort(p[y[cut:] == 0])
        # the smallest threshold whose false-alarm share on held-out silent steps is <= target
        k = int(np.floor(self.false_alarm * len(silent)))
        self.threshold = float(silent[len(silent) - k - 1]) + 1e-12 if k < len(silent) else 0.0
        fired = p >= self.threshold
        self.info = {"fit_steps": cut, "held_out_steps": len(x) - cut,
                     "held_out_false_alarm": float(fired[y[cut:] == 0].mean()),
                     "held_out_recall": float(fired[y[cut:] == 1].mean())
                     if (y[cut:] == 1).any() else float("nan"),
                     "threshold": self.threshold}
        return self

    def prob(self, features: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("SpeakHead.prob before fit")
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        return self._model.predict_proba((x - self._mean) / self._std)[:, 1]

    def fires(self, features: np.ndarray) -> np.ndarray:
        return self.prob(features) >= self.threshold


def trade_off(prob: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]
              ) -> list[dict[str, float]]:
    """Per threshold: false alarms per 1000 silent steps, and for each event step the delay in
    steps to the first firing at or after it (a miss when none comes before the next event)."""
    p, y = np.asarray(prob), np.asarray(labels).astype(bool)
    events = np.flatnonzero(y)
    nxt = np.append(events[1:], len(y))
    rows = []
    for th in thresholds:
        fire = p >= th
        delays, misses = [], 0
        for e, stop in zip(events, nxt):
            hit = np.flatnonzero(fire[e:stop])
            if hit.size:
                delays.append(int(hit[0]))
            else:
                misses += 1
        rows.append({"threshold": float(th),
                     "false_alarms_per_1000": float(1000 * fire[~y].mean()) if (~y).any() else 0.0,
                     "miss_rate": misses / max(len(events), 1),
                     "delay_steps_mean": float(np.mean(delays)) if delays else float("nan")})
    return rows
