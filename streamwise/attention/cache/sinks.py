"""``Sinks(n_sink, window)``: the first frames stay forever next to a sliding window (StreamingLLM).

Xiao et al. found that softmax attention parks surplus weight on the first tokens; evicting them
makes window-only attention collapse, keeping 4 of them restores it.  With
``positions='within_cache'`` keys are shown at their slot in the cache, not their arrival frame.
"""

from __future__ import annotations

from streamwise.attention.cache.base import CachePolicy, SinkWindow


class Sinks(SinkWindow, CachePolicy):
    """Frames ``0 .. n_sink-1`` plus the last ``window`` frames (the query's own included)."""

    def __init__(self, n_sink: int, window: int, positions: str = "within_cache") -> None:
        super().__init__(positions)
        self._sink_window(n_sink, window)

    def warm_keep(self) -> tuple[int, int]:
        return self.n_sink, self.window - 1  # the sinks, then the window the next frame sees

    def __repr__(self) -> str:
        return f"Sinks({self.n_sink}, {self.window}, positions={self.positions!r})"
