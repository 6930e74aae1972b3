"""``Window(n)``: each frame attends to itself and the ``n - 1`` frames before it."""

from __future__ import annotations

from streamwise.attention.cache.base import CachePolicy, SinkWindow


class Window(SinkWindow, CachePolicy):
    """Limited left context: keys ``j`` with ``i - n < j <= i``; keeps ``n - 1`` entries."""

    def __init__(self, n: int, positions: str = "absolute") -> None:
        super().__init__(positions)
        self._sink_window(0, n)
        self.n = n

    def warm_keep(self) -> tuple[int, int]:
        return self.n_sink, self.window - 1  # the sinks, then the window the next frame sees

    def __repr__(self) -> str:
        return f"Window({self.n}, positions={self.positions!r})"
