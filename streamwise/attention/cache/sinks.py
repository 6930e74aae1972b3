"""``Sinks(n_sink, window)``: the first frames stay forever next to a sliding window (StreamingLLM).

Xiao et al. found that softmax attention parks surplus weight on the first tokens; evicting them
makes window-only attention collapse, keeping 4 of them restores it.  With
``positions='within_cache'`` keys are shown at their slot in the cache, not their arrival frame.
"""

from __future__ import annotations

from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, check_int


class Sinks(CachePolicy):
    """Frames ``0 .. n_sink-1`` plus the last ``window`` frames (the query's own included)."""

    def __init__(self, n_sink: int, window: int, positions: str = "within_cache") -> None:
        super().__init__(positions)
        self.n_sink = check_int("n_sink", n_sink, 0)
        self.window = check_int("window", window, 1)
        if n_sink > window:
            raise ValueError(f"n_sink ({n_sink}) must not exceed window ({window})")

    def rule(self, key: Tensor, query: Tensor) -> Tensor:
        return (key < self.n_sink) | (key > query - self.window)

    @property
    def bound(self) -> int:
        return self.n_sink + self.window - 1

    @property
    def receptive_field(self) -> int:
        return self.window

    def __repr__(self) -> str:
        return f"Sinks({self.n_sink}, {self.window}, positions={self.positions!r})"
