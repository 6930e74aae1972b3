"""``StepPipeline``: successive chunks at staggered steps of an iterative process, advanced
together (StreamDiffusionV2's pipeline across denoising steps).

A generative model refines each chunk in ``steps`` passes of ``step(x, k)`` (a denoising step at
noise level ``k``).  Run one chunk at a time, a chunk costs ``steps`` calls and the next waits for
all of them.  Here every push brings a new chunk in at step 0 and moves each chunk in flight one
step on, all in ONE batched call (rows stacked, each with its own ``k``); the chunk that has done
its last step comes out.  A chunk's output is exactly what running its steps one after another
gives (a test); the price is ``steps - 1`` pushes of latency, the gain one call per chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

Step = Callable[[Tensor, Tensor], Tensor]


class StepPipeline:
    """``push(chunk) -> finished chunk or None``; ``flush() -> the rest``, oldest first."""

    def __init__(self, step: Step, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.step, self.steps = step, steps
        self.flight: deque[tuple[Tensor, int]] = deque()  # (state, steps done), oldest first
        self.calls = 0

    def _advance(self) -> Tensor | None:
        if not self.flight:
            return None
        xs = [x for x, _ in self.flight]
        ks = torch.cat([torch.full((len(x),), k, dtype=torch.long, device=x.device)
                        for x, k in self.flight])
        out = self.step(torch.cat(xs), ks)
        if out.shape[0] != ks.shape[0]:
            raise ValueError(f"step returned {out.shape[0]} rows for {ks.shape[0]}")
        self.calls += 1
        moved: deque[tuple[Tensor, int]] = deque()
        at = 0
        for x, k in self.flight:
            moved.append((out[at:at + len(x)], k + 1))
            at += len(x)
        self.flight = moved
        if self.flight[0][1] == self.steps:
            return self.flight.popleft()[0]
        return None

    def push(self, chunk: Tensor) -> Tensor | None:
        """Start ``chunk`` ``[B, ...]`` at step 0 and move every chunk in flight one step."""
        if self.flight and chunk.shape[1:] != self.flight[0][0].shape[1:]:
            want = ", ".join(map(str, self.flight[0][0].shape[1:]))
            raise ValueError(f"expected chunks of shape [B, {want}], got {tuple(chunk.shape)}")
        self.flight.append((chunk, 0))
        try:
            return self._advance()
        except Exception:
            self.flight.pop()  # a failed step leaves the pipeline as it was before this push
            raise

    def flush(self) -> list[Tensor]:
        """Finish every chunk in flight (no new input), oldest first."""
        done = []
        while self.flight:
            y = self._advance()
            if y is not None:
                done.append(y)
        return done
