"""``MovingBuffer``: StreamDiT's moving noise buffer, a flow-matching sampler that streams for ever.

Flow matching moves noise ``x(0) = z`` to data ``x(1)`` along a learned velocity ``v(x, t)``;
a sampler takes Euler steps ``x <- x + (t[k+1] - t[k]) v(x, t[k])`` over a grid
``0 = t[0] < ... < t[S] = 1``.  StreamDiT keeps a buffer of chunks at staggered levels of that
grid: every model call denoises the WHOLE buffer by one level at once (chunks side by side along
time, each frame with its own ``t``, so the model's window attention lets a chunk see its
cleaner and noisier neighbours), the chunk that reaches ``t = 1`` leaves, and a fresh chunk of
pure noise enters at ``t = 0``.  One call per output chunk, ``S - 1`` chunks of latency, a
bounded state (at most ``S`` chunks in flight), and no end: generation streams for ever.

This is ``StepPipeline(step, S, axis=1)`` with the Euler step of a velocity model as its step.
A ``memory`` (``write(chunk)`` / ``read()``; ``attention/cache/anchor.py``'s ``AnchorMemory``)
sees every finished chunk and hands the velocity its ``context`` at each call (StreamingT2V's
short-term and long-term memories).  ``moving_buffer_offline`` computes the same schedule on
the whole noise tensor at once; the streamed chunks equal it (a test).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from streamwise.core.step_pipeline import StepPipeline

#: ``velocity(x [B, T, ...], t [T], context) -> v`` (``t`` one flow time per frame)
Velocity = Callable[[Tensor, Tensor, Any], Tensor]


class Memory(Protocol):
    def write(self, frames: Tensor) -> None: ...
    def read(self) -> Any: ...


def check_times(times: Tensor) -> Tensor:
    """A 1-D grid of at least 2 strictly increasing flow times, as float64."""
    if not isinstance(times, Tensor) or times.dim() != 1 or times.numel() < 2:
        raise ValueError("times must be a 1-D tensor of at least 2 flow times "
                         f"(t[0] < ... < t[S]), got {times!r}")
    if not bool((times.diff() > 0).all()):
        raise ValueError(f"times must increase strictly, got {times.tolist()}")
    return times.double()


def flow_times(steps: int) -> Tensor:
    """The uniform grid ``0, 1/steps, ..., 1``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def euler(velocity: Velocity, times: Tensor, x: Tensor, k: Tensor, context: Any) -> Tensor:
    """One Euler step of every frame of ``x`` ``[B, T, ...]`` from level ``k[f]`` to the next."""
    t = times.to(x.device)[k]
    dt = (times.to(x.device)[k + 1] - t).to(x.dtype).view(1, -1, *[1] * (x.dim() - 2))
    v = velocity(x, t.to(x.dtype), context)
    if v.shape != x.shape:
        raise ValueError(f"velocity returned {tuple(v.shape)} for a buffer {tuple(x.shape)}")
    return x + dt * v


class MovingBuffer:
    """``push(noise [B, T, ...]) -> a finished chunk or None``, for ever; ``flush()`` the rest.

    ``times``: the flow-time grid (``flow_times(S)``: ``S`` levels, ``S`` chunks in the buffer).
    """

    def __init__(self, velocity: Velocity, times: Tensor, memory: Memory | None = None) -> None:
        self.velocity, self.times = velocity, check_times(times)
        self.memory = memory
        self.pipe = StepPipeline(self._step, self.times.numel() - 1, axis=1)

    @property
    def steps(self) -> int:
        return self.pipe.steps

    @property
    def calls(self) -> int:
        return self.pipe.calls

    def _step(self, x: Tensor, k: Tensor) -> Tensor:
        context = self.memory.read() if self.memory is not None else None
        return euler(self.velocity, self.times, x, k, context)

    def _done(self, y: Tensor | None) -> Tensor | None:
        if y is not None and self.memory is not None:
            self.memory.write(y)
        return y

    def push(self, noise: Tensor) -> Tensor | None:
        """A fresh chunk of pure noise enters at ``t[0]``; the whole buffer moves one level."""
        if not isinstance(noise, Tensor) or noise.dim() < 2:
            got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
            raise ValueError(f"expected a noise chunk [B, T, ...], got {got}")
        return self._done(self.pipe.push(noise))

    def prime(self, clean: list[Tensor], noise: list[Tensor]) -> None:
        """Start from known chunks (a prompt to continue): clean chunk ``i`` of ``n`` (oldest
        first, ``n < S``) enters noised to level ``S - 1 - i``, ``(1 - t) z + t x``, as if it
        had been generated; they leave first, then new chunks follow.  Only on an empty buffer."""
        if self.pipe.flight:
            raise ValueError("prime needs an empty buffer (call it before the first push)")
        if len(clean) != len(noise) or len(clean) >= self.steps:
            raise ValueError(f"prime takes n < {self.steps} clean chunks and as many noise "
                             f"chunks, got {len(clean)} and {len(noise)}")
        for i, (x, z) in enumerate(zip(clean, noise)):
            if x.shape != z.shape:
                raise ValueError(f"clean chunk {tuple(x.shape)} and noise {tuple(z.shape)} "
                                 "must have one shape")
            level = self.steps - 1 - i
            t = float(self.times[level])
            self.pipe.flight.append(((1 - t) * z + t * x, level))

    def flush(self) -> list[Tensor]:
        """Finish every chunk in the buffer (no new noise), oldest first."""
        done = []
        while self.pipe.flight:
            y = self._done(self.pipe.advance())
            if y is not None:
                done.append(y)
        return done

    def nbytes(self) -> int:
        """Bytes of the chunks in flight (the sampler's state, memory apart)."""
        return sum(x.numel() * x.element_size() for x, _ in self.pipe.flight)


def schedule(n_chunks: int, steps: int) -> list[list[tuple[int, int]]]:
    """Call by call, the ``(chunk, level)`` pairs a moving buffer advances (oldest first):
    chunk ``c`` enters at call ``c`` and leaves after call ``c + steps - 1``."""
    return [[(c, n - c) for c in range(max(0, n - steps + 1), min(n, n_chunks - 1) + 1)]
            for n in range(n_chunks + steps - 1 if n_chunks else 0)]


def moving_buffer_offline(velocity: Velocity, times: Tensor, noise: Tensor, chunk: int,
                          memory: Memory | None = None) -> Tensor:
    """The moving buffer's output for ``noise`` ``[B, n_chunks * chunk, ...]`` at once: the
    calls of ``schedule`` applied in place to slices of one tensor (the streamed sampler's
    reference).  ``memory`` is written each finished chunk as the sampler would."""
    times = check_times(times)
    steps = times.numel() - 1
    if noise.shape[1] % chunk:
        raise ValueError(f"noise has {noise.shape[1]} frames, not a multiple of chunk {chunk}")
    x = noise.clone()
    for call in schedule(noise.shape[1] // chunk, steps):
        frames = torch.cat([torch.arange(c * chunk, (c + 1) * chunk) for c, _ in call])
        k = torch.cat([torch.full((chunk,), lv, dtype=torch.long) for _, lv in call])
        context = memory.read() if memory is not None else None
        x[:, frames] = euler(velocity, times, x[:, frames], k, context)
        c, lv = call[0]
        if lv == steps - 1 and memory is not None:
            memory.write(x[:, c * chunk:(c + 1) * chunk])
    return x
