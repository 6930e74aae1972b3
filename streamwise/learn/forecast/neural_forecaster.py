"""A neural forecaster trained online: Legendre memories + calendar features -> MLP.

The value, normalised by running statistics, drives Legendre memories (the LMU's linear system)
over about a day and a week of records; with the calendar phase of the *target* time (known:
the stream is regular) they feed a small MLP that predicts the normalised value ``steps``
records ahead.  Each prediction becomes a training pair when its target arrives; every record
takes one Adam step on a minibatch of the newest pair and pairs replayed from a bounded buffer.
Nothing looks ahead.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import torch

from streamwise.layers.lmu import legendre_system
from streamwise.learn.anomaly.base import value_of
from streamwise.learn.running_stats import RunningStats


def calendar(t: datetime | None, harmonics: int = 3) -> np.ndarray:
    """Sin/cos of the day's phase (``harmonics`` of them) and of the week's phase."""
    if t is None:
        return np.zeros(2 * harmonics + 2)
    day = (t.hour * 3600 + t.minute * 60 + t.second) / 86400.0
    week = (t.weekday() + day) / 7.0
    phases = [2 * math.pi * k * day for k in range(1, harmonics + 1)] + [2 * math.pi * week]
    return np.array([f(p) for p in phases for f in (math.sin, math.cos)])


class NeuralForecaster:
    def __init__(self, steps: int = 5, order: int = 8, thetas: tuple[float, ...] = (48.0, 336.0),
                 hidden: int = 64, lr: float = 1e-3, batch: int = 32, buffer: int = 5000,
                 seed: int = 0, log_values: bool = False) -> None:
        gen = torch.Generator().manual_seed(seed)
        systems = [legendre_system(order, th) for th in thetas]
        self.a = [a.double().numpy() for a, _ in systems]
        self.b = [b.double().numpy() for _, b in systems]
        self.memory = [np.zeros(order) for _ in thetas]
        n_in = order * len(thetas) + 1 + len(calendar(None))
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, 1))
        for p in self.net.parameters():  # seeded initialisation, independent of global RNG
            with torch.no_grad():
                p.copy_(torch.empty_like(p).uniform_(-1, 1, generator=gen)
                        / math.sqrt(p.shape[-1]))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.steps, self.batch = steps, batch
        self.stats = RunningStats()
        self.pending: deque[np.ndarray] = deque()  # features still waiting for their target
        self.buffer: deque[tuple[np.ndarray, float]] = deque(maxlen=buffer)
        self.rng = np.random.default_rng(seed)
        self.last_time: datetime | None = None
        self.interval: timedelta | None = None
        self.features: np.ndarray | None = None
        self.log_values = log_values  # learn sign(v) log(1 + |v|): relative errors for counts

    def learn_one(self, x: float | dict[str, Any]) -> None:
        v = value_of(x)
        if self.log_values:
            v = math.copysign(math.log1p(abs(v)), v)
        t = x.get("timestamp") if isinstance(x, dict) else None
        t = t if isinstance(t, datetime) else None
        if t is not None and self.last_time is not None and t > self.last_time:
            self.interval = t - self.last_time
        self.last_time = t
        self.stats.update(v)
        u = self.stats.standardise(v)
        if len(self.pending) == self.steps:  # this value is the target of an old prediction
            self.buffer.append((self.pending.popleft(), u))
            self._train()
        for k in range(len(self.memory)):
            self.memory[k] = self.a[k] @ self.memory[k] + self.b[k] * u
        target_time = t + self.steps * self.interval if t and self.interval else None
        self.features = np.concatenate([*self.memory, [u], calendar(target_time)])
        self.pending.append(self.features)

    def _train(self) -> None:
        n = min(self.batch - 1, len(self.buffer) - 1)
        picks = [len(self.buffer) - 1] + list(self.rng.integers(0, len(self.buffer) - 1, n))
        xs = torch.tensor(np.stack([self.buffer[i][0] for i in picks]), dtype=torch.float32)
        ys = torch.tensor([self.buffer[i][1] for i in picks], dtype=torch.float32)
        loss = torch.nn.functional.mse_loss(self.net(xs).squeeze(1), ys)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def predict_one(self) -> float:
        """The value ``steps`` records after the last one learned."""
        if self.features is None:
            raise ValueError("nothing learned yet: call learn_one() first")
        with torch.no_grad():
            u = float(self.net(torch.tensor(self.features, dtype=torch.float32)[None])[0, 0])
        v = self.stats.unstandardise(u)
        return math.copysign(math.expm1(abs(v)), v) if self.log_values else v


class Persistence:
    """The value ``steps`` ahead is the last value seen (the naive baseline)."""

    def __init__(self) -> None:
        self.last: float | None = None

    def learn_one(self, x: float | dict[str, Any]) -> None:
        self.last = value_of(x)

    def predict_one(self) -> float:
        if self.last is None:
            raise ValueError("nothing learned yet: call learn_one() first")
        return self.last
