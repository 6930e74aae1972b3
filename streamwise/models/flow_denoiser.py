"""A frame-causal flow-matching speech denoiser (after Stream.FM), streamed with few ODE steps.

Representation: the waveform in frames of ``hop`` samples (``[B, 1, T] -> [B, hop, T / hop]``,
scaled by ``gain``), an exact, invertible reshape: framing is a fixed identity convolution, so it
streams (it waits for a frame to fill); unframing is a reshape back, frame by frame.

Conditional flow matching on the noisy-to-clean path (the paper's): with ``y`` the noisy frames,
``x1`` the clean ones and ``x0 = y + sigma * eps`` (``eps ~ N(0, I)``),

    x_t = (1 - t) * x0 + t * x1,   target velocity  u = x1 - x0,
    loss = E_{t ~ U(0, 1), eps} || v(x_t, t, y) - u ||^2.

``v`` is a frame-causal convolutional network over frames: its first convolution sees the
previous, the current and ``lookahead`` future frames, the dilated residual blocks after it see
only the past.  At inference ``x0 = y + sigma * eps`` with ``eps`` drawn per sample from a
counter-based generator (``counter_normal``: a hash of the seed and the absolute sample index),
so a stream draws the very noise the offline run draws, whatever the chunking.  Then ``K`` Euler
steps ``x <- x + v(x, k/K, y) / K`` (``layers/ode.py``), each an application of ``v`` with its
own state, in series (or K midpoint steps, two applications each: count them as 2K below).

Latency, in samples, for pushes of ``chunk`` samples (a multiple of ``hop``)::

    algorithmic = chunk + (hop - 1) + K * lookahead * hop      (model.delay = the last two)
    total       = algorithmic + compute of one push

``hop - 1``: a frame's first sample waits for the frame to fill; each ODE step waits
``lookahead`` frames for the previous step's output.  With ``hop = 80`` (5 ms at 16 kHz),
``lookahead = 1`` and 10 ms chunks: 20 ms at K = 1, 35 ms at K = 4.  (Stream.FM's buffered
scheme instead keeps frames at staggered ``t`` in one buffer, so its lookahead does not grow
with K; it needs a network trained on such staggered inputs, which this one is not.)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import Spec, clock
from streamwise.layers.containers import Residual, Sequential
from streamwise.layers.conv import Conv1d
from streamwise.layers.ode import CALLS_PER_STEP, ode_sampler
from streamwise.layers.pointwise import ELU, Stateless

_MASK = 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mix (``x`` int64 in [0, 2^32)): products stay below 2^63."""
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK
    return (x >> 16) ^ x


def counter_normal(seed: int, positions: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal numbers, one per entry of ``positions`` (int64 sample indices), each a
    function of ``(seed, position)`` alone (Box-Muller on two hashed uniforms)."""
    key = (positions * 2 + (seed * 0x9E3779B1)) & _MASK
    u1 = (_hash32(key).to(dtype) + 0.5) / 2.0**32
    u2 = (_hash32((key + 1) & _MASK ^ 0x5BD1E995).to(dtype) + 0.5) / 2.0**32
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


class SourceNoise(StreamingModule):
    """``[B, 1, T] -> [B, 2, T]``: ``[y + sigma * eps, y]``, the ODE's start and its condition.

    ``eps`` at absolute sample ``n`` is ``counter_normal(seed, n)``: equal in every row, and
    equal streamed and offline.  The state is the sample clock.
    """

    in_ndim = 3
    fixed_in_channels = 1
    fixed_out_channels = 2

    def __init__(self, sigma: float, seed: int = 0) -> None:
        super().__init__()
        self.sigma, self.seed = float(sigma), int(seed)

    def state_spec(self, in_channels: int | None = None) -> Spec:
        return {"t_in": clock(rebase=False)}  # the noise reads the clock's value itself

    def _start(self, y: Tensor, first: int) -> Tensor:
        if y.dim() != 3 or y.shape[1] != 1:
            raise ValueError(f"expected noisy audio [B, 1, T], got {tuple(y.shape)}")
        pos = torch.arange(first, first + y.shape[-1], device=y.device)
        eps = counter_normal(self.seed, pos, y.dtype)
        return torch.cat([y + self.sigma * eps, y], 1)

    def forward(self, y: Tensor) -> Tensor:
        return self._start(y, 0)

    def step(self, y: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        return self._start(y, state["t_in"]), {"t_in": state["t_in"] + y.shape[-1]}

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, seed={self.seed}"


def framer(channels: int, hop: int, gain: float = 1.0) -> Conv1d:
    """``[B, channels, T] -> [B, channels * hop, T / hop]`` (channel-major), times ``gain``."""
    conv = Conv1d(channels, channels * hop, hop, stride=hop, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[c * hop:(c + 1) * hop, c] = gain * torch.eye(hop)
    conv.weight.requires_grad_(False)
    return conv


class Unframe(Stateless):
    """``[B, hop, N] -> [B, 1, N * hop]``, times ``gain``: the inverse of ``framer(1, hop)``
    (each frame is ``hop`` samples, so chunks of frames need no state)."""

    in_ndim = 3
    fixed_out_channels = 1

    def __init__(self, hop: int, gain: float = 1.0) -> None:
        super().__init__()
        self.hop, self.gain = hop, float(gain)
        self.fixed_in_channels = hop

    @property
    def stride(self) -> Fraction:
        return Fraction(self.hop)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.hop:
            raise ValueError(f"expected frames [B, {self.hop}, N], got {tuple(x.shape)}")
        return (self.gain * x).transpose(1, 2).reshape(x.shape[0], 1, -1)

    def extra_repr(self) -> str:
        return f"hop={self.hop}, gain={self.gain:g}"


def velocity_net(hop: int, width: int = 96, lookahead: int = 1,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)) -> Sequential:
    """``v``: ``[B, 2 * hop + 1, N]`` (``x_t``, ``y`` and ``t`` per frame) -> ``[B, hop, N]``,
    ``lookahead`` frames of delay, the rest causal."""
    blocks = [Residual(Sequential(ELU(), Conv1d(width, width, 3, dilation=d, padding=(2 * d, 0)),
                                  ELU(), Conv1d(width, width, 1))) for d in dilations]
    return Sequential(Conv1d(2 * hop + 1, width, 2 + lookahead, padding=(1, lookahead)),
                      *blocks, ELU(), Conv1d(width, hop, 1))


def _positive_int(name: str, v: Any, least: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    return v


class FlowDenoiser(nn.Module):
    """The velocity network and what it needs: ``loss`` to train it, ``sampler`` to stream it."""

    def __init__(self, hop: int = 80, width: int = 96, lookahead: int = 1, sigma: float = 0.02,
                 gain: float = 10.0, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8),
                 seed: int | None = 0) -> None:
        super().__init__()
        self.hop = _positive_int("hop", hop)
        self.lookahead = _positive_int("lookahead", lookahead, 0)
        _positive_int("width", width)
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number >= 0 (noise on x0), got {sigma!r}")
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
        self.sigma, self.gain = float(sigma), float(gain)
        if seed is not None:
            torch.manual_seed(seed)
        self.velocity = velocity_net(hop, width, lookahead, dilations)
        self._frame = framer(1, hop, gain)

    def frames(self, audio: Tensor) -> Tensor:
        """``[B, 1, T]`` (``T`` a multiple of ``hop``) -> scaled frames ``[B, hop, T / hop]``."""
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"expected audio [B, 1, T], got {tuple(audio.shape)}")
        if audio.shape[-1] % self.hop:
            raise ValueError(f"expected T a multiple of hop={self.hop}, got T={audio.shape[-1]}")
        return self._frame.forward(audio)

    def velocity_of(self, xt: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """``v(x_t, t, y)`` offline on frames ``[B, hop, N]``, ``t`` of shape ``[B]``."""
        tt = t.to(xt.dtype).view(-1, 1, 1).expand(xt.shape[0], 1, xt.shape[-1])
        out: Tensor = self.velocity(torch.cat([xt, y, tt], 1))
        return out

    def loss(self, clean: Tensor, noisy: Tensor, generator: torch.Generator | None = None
             ) -> Tensor:
        """The conditional flow-matching loss on a batch of ``[B, 1, T]`` pairs."""
        if clean.shape != noisy.shape:
            raise ValueError(f"clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} "
                             "must have one shape")
        x1, y = self.frames(clean), self.frames(noisy)
        x0 = y + self.gain * self.sigma * torch.randn(y.shape, generator=generator,
                                                      dtype=y.dtype, device=y.device)
        t = torch.rand(y.shape[0], generator=generator, dtype=y.dtype, device=y.device)
        xt, target = flow_path(x0, x1, t)
        return torch.mean((self.velocity_of(xt, y, t) - target) ** 2)

    def sampler(self, steps: int = 1, seed: int = 0, solver: str = "euler") -> Sequential:
        """The streaming denoiser ``[B, 1, T] -> [B, 1, T']`` (``T'``: ``T`` down to a multiple
        of ``hop``): noise at ``x0``, framing, ``steps`` ODE steps of ``solver`` (``"euler"``
        or ``"midpoint"``), unframing."""
        _positive_int("steps", steps)
        p = next(self.velocity.parameters())  # the fixed framings follow the weights' dtype
        return Sequential(SourceNoise(self.sigma, seed),
                          framer(2, self.hop, self.gain).to(p.device, p.dtype),
                          ode_sampler(self.velocity, steps, self.hop, solver),
                          Unframe(self.hop, 1.0 / self.gain))

    def latency_samples(self, steps: int, chunk: int, solver: str = "euler") -> dict[str, int]:
        """The latency formula of the module docstring, in samples."""
        if solver not in CALLS_PER_STEP:
            raise ValueError(f"solver must be one of {sorted(CALLS_PER_STEP)}, got {solver!r}")
        delay = self.hop - 1 + CALLS_PER_STEP[solver] * steps * self.lookahead * self.hop
        return {"delay": delay, "algorithmic": chunk + delay}


def flow_path(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``x_t = (1 - t) x0 + t x1`` and its velocity ``x1 - x0`` (``t`` per row, ``[B]``)."""
    if x0.shape != x1.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and x1 {tuple(x1.shape)} must have one shape")
    if t.dim() != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"t must be [B] = [{x0.shape[0]}], got {tuple(t.shape)}")
    tt = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - tt) * x0 + tt * x1, x1 - x0
