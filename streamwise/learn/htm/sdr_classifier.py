"""SDR classifier: which value bucket will follow, ``steps`` records after this activity pattern?

A single-layer softmax network from the active cells to value buckets (Numenta's classifier in
"Continuous online sequence learning with HTM", Cui et al. 2016): the logits are the summed
weights of the active cells; once the value ``steps`` records later is known, the weights of the
pattern seen then move along the cross-entropy gradient (target bucket minus predicted
distribution).  Each bucket's value is a running average of the values that fell into it, so
the prediction is not quantised to bucket centres.  Buckets are added as new values appear.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SDRClassifier:
    def __init__(self, n_inputs: int, resolution: float, steps: int = 1, alpha: float = 0.1,
                 value_rate: float = 0.3) -> None:
        if n_inputs < 1 or resolution <= 0 or steps < 1 or alpha <= 0 or not 0 < value_rate <= 1:
            raise ValueError("need n_inputs >= 1, resolution > 0, steps >= 1, alpha > 0, "
                             "0 < value_rate <= 1")
        self.n_inputs, self.resolution, self.steps = n_inputs, resolution, steps
        self.alpha, self.value_rate = alpha, value_rate
        self.weights = np.zeros((n_inputs, 0), dtype=np.float32)
        self.bucket_keys: dict[int, int] = {}  # bucket number -> column of ``weights``
        self.bucket_values = np.zeros(0)
        self.patterns: deque[np.ndarray] = deque(maxlen=steps + 1)

    def _column(self, value: float) -> int:
        key = int(np.floor(value / self.resolution))
        if key not in self.bucket_keys:
            self.bucket_keys[key] = len(self.bucket_keys)
            self.weights = np.concatenate([self.weights, np.zeros((self.n_inputs, 1),
                                                                   np.float32)], axis=1)
            self.bucket_values = np.append(self.bucket_values, value)
        return self.bucket_keys[key]

    def distribution(self, pattern: np.ndarray) -> np.ndarray:
        """Probability of each bucket ``steps`` records after ``pattern``."""
        logits = self.weights[pattern].sum(0, dtype=np.float64)
        e = np.exp(logits - logits.max()) if len(logits) else logits
        return e / e.sum() if len(e) else e

    def learn(self, pattern: np.ndarray, value: float) -> None:
        """Record this step's pattern and teach the one from ``steps`` ago that ``value`` came."""
        col = self._column(value)
        self.bucket_values[col] += self.value_rate * (value - self.bucket_values[col])
        self.patterns.append(np.asarray(pattern, dtype=np.int64))
        if len(self.patterns) > self.steps:
            old = self.patterns[0]
            target = np.zeros(len(self.bucket_values))
            target[col] = 1.0
            grad = (target - self.distribution(old)).astype(np.float32)
            self.weights[old] += self.alpha * grad

    def predict(self, pattern: np.ndarray) -> float:
        """The value of the most likely bucket ``steps`` records after ``pattern``."""
        p = self.distribution(np.asarray(pattern, dtype=np.int64))
        if not len(p):
            raise ValueError("nothing learned yet: call learn() first")
        return float(self.bucket_values[int(np.argmax(p))])
