"""``StepPipeline``: successive chunks at staggered steps of an iterative process, advanced
together (StreamDiffusionV2's pipeline across denoising steps).

A generative model refines each chunk in ``steps`` passes of ``step(x, k)`` (a denoising step at
noise level ``k``).  Run one chunk at a time, a chunk costs ``steps`` calls and the next waits for
all of them.  Here every push brings a new chunk in at step 0 and moves each chunk in flight one
step on, all in ONE batched call (rows stacked, each with its own ``k``); the chunk that has done
its last step comes out.  A chunk's output is exactly what running its steps one after another
gives (a test); the price is ``steps - 1`` pushes of latency, the gain one call per chunk.

``axis=1`` puts the chunks side by side along time instead of stacking them as rows: the step
then sees them all as one sequence (``[B, n_chunks * T, ...]``, ``k`` one level per frame), so
chunks in flight may attend to each other (StreamDiT's moving buffer, ``core/moving_buffer.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

Step = Callable[[Tensor, Tensor], Tensor]


class StepPipeline:
    """``push(chunk) -> finished chunk or None``; ``flush() -> the rest``, oldest first."""

    def __init__(self, step: Step, steps: int, axis: int = 0) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (chunks as rows) or 1 (chunks along time), "
                             f"got {axis!r}")
        self.step, self.steps, self.axis = step, steps, axis
        self.flight: deque[tuple[Tensor, int]] = deque()  # (state, steps done), oldest first
        self.calls = 0

    def advance(self) -> Tensor | None:
        """Move every chunk in flight one step (no new input); the chunk done, or None."""
        if not self.flight:
            return None
        a = self.axis
        xs = [x for x, _ in self.flight]
        ks = torch.cat([torch.full((x.shape[a],), k, dtype=torch.long, device=x.device)
                        for x, k in self.flight])
        out = self.step(torch.cat(xs, a), ks)
        if out.shape[a] != ks.shape[0]:
            what = "rows" if a == 0 else "frames"
            raise ValueError(f"step returned {out.shape[a]} {what} for {ks.shape[0]}")
        self.calls += 1
        moved: deque[tuple[Tensor, int]] = deque()
        at = 0
        for x, k in self.flight:
            moved.append((out.narrow(a, at, x.shape[a]), k + 1))
            at += x.shape[a]
        self.flight = moved
        if self.flight[0][1] == self.steps:
            return self.flight.popleft()[0]
        return None

    def push(self, chunk: Tensor) -> Tensor | None:
        """Start ``chunk`` ``[B, ...]`` at step 0 and move every chunk in flight one step."""
        if self.flight:
            ref = self.flight[0][0]
            other = [i for i in range(ref.dim()) if i != self.axis]
            if chunk.dim() != ref.dim() or any(chunk.shape[i] != ref.shape[i] for i in other):
                dims = [("B" if self.axis == 0 else "T") if i == self.axis else str(ref.shape[i])
                        for i in range(ref.dim())]
                raise ValueError(f"expected chunks of shape [{', '.join(dims)}], "
                                 f"got {tuple(chunk.shape)}")
        self.flight.append((chunk, 0))
        try:
            return self.advance()
        except Exception:
            self.flight.pop()  # a failed step leaves the pipeline as it was before this push
            raise

    _advance = advance  # the old private name

    def flush(self) -> list[Tensor]:
        """Finish every chunk in flight (no new input), oldest first."""
        done = []
        while self.flight:
            y = self.advance()
            if y is not None:
                done.append(y)
        return done
