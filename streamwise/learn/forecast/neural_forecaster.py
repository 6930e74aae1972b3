"""A neural forecaster trained online: Legendre memories + calendar features -> MLP.

The value, normalised by running statistics, drives Legendre memories (the LMU's linear system)
over about a day and a week of records; with the calendar phase of the record's time they feed a
small MLP with one output per step ahead (``horizon`` of them), the normalised values of the next
records.  Each record's features become a training pair once all its targets have arrived; every
record takes one Adam step on a minibatch of the newest pair and pairs replayed from a bounded
buffer.  Nothing looks ahead.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from typing import Any

import numpy as np
import torch

from streamwise.layers.lmu import legendre_system
from streamwise.learn.base import Forecaster, check_horizon, value_of
from streamwise.learn.running_stats import RunningStats


def calendar(t: datetime | None, harmonics: int = 3) -> np.ndarray:
    """Sin/cos of the day's phase (``harmonics`` of them) and of the week's phase."""
    if t is None:
        return np.zeros(2 * harmonics + 2)
    day = (t.hour * 3600 + t.minute * 60 + t.second) / 86400.0
    week = (t.weekday() + day) / 7.0
    phases = [2 * math.pi * k * day for k in range(1, harmonics + 1)] + [2 * math.pi * week]
    return np.array([f(p) for p in phases for f in (math.sin, math.cos)])


class NeuralForecaster(Forecaster):
    def __init__(self, horizon: int = 5, order: int = 8, thetas: tuple[float, ...] = (48.0, 336.0),
                 hidden: int = 64, lr: float = 1e-3, batch: int = 32, buffer: int = 5000,
                 seed: int = 0, log_values: bool = False) -> None:
        check_horizon(horizon, None)
        gen = torch.Generator().manual_seed(seed)
        systems = [legendre_system(order, th) for th in thetas]
        self.a = [a.double().numpy() for a, _ in systems]
        self.b = [b.double().numpy() for _, b in systems]
        self.memory = [np.zeros(order) for _ in thetas]
        n_in = order * len(thetas) + 1 + len(calendar(None))
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, horizon))
        for p in self.net.parameters():  # seeded initialisation, independent of global RNG
            with torch.no_grad():
                p.copy_(torch.empty_like(p).uniform_(-1, 1, generator=gen)
                        / math.sqrt(p.shape[-1]))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.horizon, self.batch = horizon, batch
        self.stats = RunningStats()
        self.pending: deque[np.ndarray] = deque()  # features still waiting for their targets
        self.recent: deque[float] = deque(maxlen=horizon)  # the last values (normalised)
        self.buffer: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=buffer)
        self.rng = np.random.default_rng(seed)
        self.features: np.ndarray | None = None
        self.log_values = log_values  # learn sign(v) log(1 + |v|): relative errors for counts

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        """Learn the next value ``y``; ``x`` may carry its ``timestamp``."""
        v = value_of(y)
        if x is not None and not isinstance(x, dict):
            raise ValueError(f"expected x a dict of features (or None), got {x!r}")
        if self.log_values:
            v = math.copysign(math.log1p(abs(v)), v)
        t = (x or {}).get("timestamp")
        self.stats.update(v)
        u = self.stats.standardise(v)
        self.recent.append(u)
        if len(self.pending) == self.horizon:  # its targets are the last ``horizon`` values
            self.buffer.append((self.pending.popleft(), np.array(self.recent)))
            self._train()
        for k in range(len(self.memory)):
            self.memory[k] = self.a[k] @ self.memory[k] + self.b[k] * u
        self.features = np.concatenate([*self.memory, [u],
                                        calendar(t if isinstance(t, datetime) else None)])
        self.pending.append(self.features)

    def _train(self) -> None:
        n = min(self.batch - 1, len(self.buffer) - 1)
        picks = [len(self.buffer) - 1] + list(self.rng.integers(0, len(self.buffer) - 1, n))
        xs = torch.tensor(np.stack([self.buffer[i][0] for i in picks]), dtype=torch.float32)
        ys = torch.tensor(np.stack([self.buffer[i][1] for i in picks]), dtype=torch.float32)
        loss = torch.nn.functional.mse_loss(self.net(xs), ys)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        """The ``horizon`` values after the last one learned (``xs`` is not used)."""
        check_horizon(horizon, xs, self.horizon)
        if self.features is None:
            raise ValueError("nothing learned yet: call learn_one() first")
        with torch.no_grad():
            us = self.net(torch.tensor(self.features, dtype=torch.float32)[None])[0, :horizon]
        vs = [self.stats.unstandardise(float(u)) for u in us]
        return [math.copysign(math.expm1(abs(v)), v) for v in vs] if self.log_values else vs


class Persistence(Forecaster):
    """Every value ahead is the last value seen (the naive baseline)."""

    def __init__(self) -> None:
        self.last: float | None = None

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        self.last = value_of(y)

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        check_horizon(horizon, xs)
        if self.last is None:
            raise ValueError("nothing learned yet: call learn_one() first")
        return [self.last] * horizon
