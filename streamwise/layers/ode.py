"""A streaming few-step ODE sampler (flow matching) for any frame-causal velocity model.

Flow matching moves a sample ``x`` from ``t = 0`` to ``t = 1`` along ``dx/dt = v(x, t, c)``
(``c``: a condition, e.g. the noisy recording).  ``ode_sampler(velocity, steps, channels)``
solves it with ``steps`` steps on the grid ``t_k = k / steps``, ``h = 1 / steps``:

    euler:     x_{k+1} = x_k + h * v(x_k, t_k, c)
    midpoint:  x_{k+1} = x_k + h * v(x_k + h/2 * v(x_k, t_k, c), t_k + h/2, c)

Inputs are ``[B, channels + C_cond, T]``: ``x_0`` in the first ``channels`` channels, the
condition after them; the output is ``x_K``, ``[B, channels, T]``.  ``velocity`` takes
``[x, c, t]`` (``t`` appended as one constant channel) and returns ``[B, channels, T]``.

Each application of ``velocity`` (one per Euler step, two per midpoint step) has its own
state, the skip path ``(x_k, c)`` aligned to it by ``Parallel`` (no delay is threaded by hand).
An application at frame ``n`` needs its input up to frame ``n + L`` (``L = velocity.delay``),
so the applications in series have

    lookahead = calls * L frames,   calls = steps (euler) or 2 * steps (midpoint)

(0 for a causal velocity model, whatever the steps).

``velocity`` is shared by every step (one set of weights, ``steps`` states).  Streamed output
equals the offline solve of the same ODE on the whole sequence (``forward``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.core.protocol import StreamingModule
from streamwise.layers.containers import Parallel, Sequential
from streamwise.layers.pointwise import Identity, Stateless


def _check_channels(x: Tensor, need: int, who: str) -> None:
    if x.dim() != 3 or x.shape[1] < need:
        raise ValueError(f"{who} expects [B, C >= {need}, T] (x then the condition), got "
                         f"{tuple(x.shape)}")


class AppendTime(Stateless):
    """Appends the ODE time ``t`` as one constant channel: ``[B, C, T] -> [B, C + 1, T]``."""

    in_ndim = 3

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = float(t)

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels + 1

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"AppendTime expects [B, C, T], got {tuple(x.shape)}")
        return torch.cat([x, x.new_full((x.shape[0], 1, x.shape[2]), self.t)], 1)

    def extra_repr(self) -> str:
        return f"t={self.t:g}"


class EulerUpdate(Stateless):
    """``[v, x, c] -> [x + h * v, c]`` (``v`` and ``x`` of ``channels`` channels each)."""

    in_ndim = 3

    def __init__(self, h: float, channels: int) -> None:
        super().__init__()
        self.h, self.channels = float(h), channels

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels - self.channels

    def forward(self, x: Tensor) -> Tensor:
        c = self.channels
        _check_channels(x, 2 * c, "EulerUpdate")
        return torch.cat([x[:, c:2 * c] + self.h * x[:, :c], x[:, 2 * c:]], 1)

    def extra_repr(self) -> str:
        return f"h={self.h:g}, channels={self.channels}"


class Nudge(Stateless):
    """``[v, x, c] -> [x + a * v, x, c]``: the midpoint's half step, keeping ``x``."""

    in_ndim = 3

    def __init__(self, a: float, channels: int) -> None:
        super().__init__()
        self.a, self.channels = float(a), channels

    def forward(self, x: Tensor) -> Tensor:
        c = self.channels
        _check_channels(x, 2 * c, "Nudge")
        return torch.cat([x[:, c:2 * c] + self.a * x[:, :c], x[:, c:]], 1)


class DropChannels(Stateless):
    """Channels ``[start, stop)`` removed."""

    in_ndim = 3

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels - (self.stop - self.start)

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.stop, "DropChannels")
        return torch.cat([x[:, : self.start], x[:, self.stop:]], 1)


class TakeChannels(Stateless):
    """The first ``channels`` channels: ``x_K`` without the condition."""

    in_ndim = 3

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.fixed_out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, "TakeChannels")
        return x[:, : self.channels]


def euler_step(velocity: StreamingModule, t: float, h: float, channels: int) -> Sequential:
    """One Euler step from time ``t`` by ``h``: ``[x, c] -> [x + h * v(x, t, c), c]``."""
    return Sequential(Parallel(Sequential(AppendTime(t), velocity), Identity(), merge="cat"),
                      EulerUpdate(h, channels))


def midpoint_step(velocity: StreamingModule, t: float, h: float, channels: int) -> Sequential:
    """One midpoint step from ``t`` by ``h``: two applications of ``velocity`` in series."""
    c = channels
    half = Sequential(Parallel(Sequential(AppendTime(t), velocity), Identity(), merge="cat"),
                      Nudge(h / 2, c))  # [x_mid, x, cond]
    at_mid = Sequential(DropChannels(c, 2 * c), AppendTime(t + h / 2), velocity)
    return Sequential(half, Parallel(at_mid, Identity(), merge="cat"),  # [v_mid, x_mid, x, c]
                      DropChannels(c, 2 * c), EulerUpdate(h, c))


SOLVERS = {"euler": euler_step, "midpoint": midpoint_step}
CALLS_PER_STEP = {"euler": 1, "midpoint": 2}


def euler_sampler(velocity: StreamingModule, steps: int, channels: int) -> Sequential:
    """``ode_sampler`` with Euler steps."""
    return ode_sampler(velocity, steps, channels, "euler")


def ode_sampler(velocity: StreamingModule, steps: int, channels: int, solver: str = "euler"
                ) -> Sequential:
    """``steps`` steps of ``solver`` from ``t = 0`` to ``t = 1`` (see the module docstring):
    ``[B, channels + C_cond, T] -> [B, channels, T]``."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (ODE steps), got {steps!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be an integer >= 1 (channels of x), got {channels!r}")
    if not isinstance(velocity, StreamingModule) or velocity.time_axis != -1:
        raise ValueError("velocity must be a time-last StreamingModule ([B, C, T]), got "
                         f"{type(velocity).__name__}")
    h = 1.0 / steps
    layers: list[Any] = [SOLVERS[solver](velocity, k * h, h, channels) for k in range(steps)]
    return Sequential(*layers, TakeChannels(channels))
