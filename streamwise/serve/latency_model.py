"""A measured latency model of one model's batched step: ``seconds(n) = a + b n``.

StreamDiffusionV2 sizes batches from the latency a step will take, not only from deadline order:
a larger batch serves more streams per second but each of its chunks waits for the whole step.
The scheduler feeds every step it runs (batch size, seconds) into an exponentially weighted least
squares fit and, with ``slo_batching``, cuts a group so that its predicted step still ends before
the earliest deadline in it; a group whose deadline is lost whatever its size is not cut.
Until two different batch sizes have been seen the fit is undetermined and nothing is cut.
"""

from __future__ import annotations

import numpy as np


class LatencyModel:
    """``observe(n, seconds)``; ``predict(n)``; ``largest(n, slack)``."""

    def __init__(self, decay: float = 0.98, min_samples: int = 8) -> None:
        if not 0 < decay <= 1 or min_samples < 2:
            raise ValueError(f"need 0 < decay <= 1 and min_samples >= 2, got {decay}, "
                             f"{min_samples}")
        self.decay, self.min_samples = decay, min_samples
        self.gram = np.zeros((2, 2))
        self.rhs = np.zeros(2)
        self.samples = 0
        self.sizes: set[int] = set()

    def observe(self, n: int, seconds: float) -> None:
        if n < 1 or not np.isfinite(seconds) or seconds < 0:
            return  # a failed or absurd measurement teaches nothing
        x = np.array([1.0, float(n)])
        self.gram = self.decay * self.gram + np.outer(x, x)
        self.rhs = self.decay * self.rhs + x * seconds
        self.samples += 1
        if len(self.sizes) < 2:
            self.sizes.add(n)

    def coefficients(self) -> tuple[float, float] | None:
        """``(a, b)``, both >= 0, or None while undetermined."""
        if self.samples < self.min_samples or len(self.sizes) < 2:
            return None
        a, b = np.linalg.solve(self.gram + 1e-12 * np.eye(2), self.rhs)
        return max(0.0, float(a)), max(0.0, float(b))

    def predict(self, n: int) -> float | None:
        c = self.coefficients()
        return None if c is None else c[0] + c[1] * n

    def largest(self, n: int, slack: float) -> int:
        """The largest batch ``<= n`` predicted to finish within ``slack`` seconds; ``n`` while
        the model is undetermined, and ``n`` when even one stream would finish late: a deadline
        that is lost whatever the size is not worth the throughput that cutting costs (cut to
        1, a server behind its deadlines would fall further behind)."""
        c = self.coefficients()
        if c is None:
            return n
        a, b = c
        if b <= 0 or a + b > slack:
            return n
        return int(min(n, np.floor((slack - a) / b)))
