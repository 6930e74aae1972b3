"""``Window(n)``: each frame attends to itself and the ``n - 1`` frames before it."""

from __future__ import annotations

from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, check_int


class Window(CachePolicy):
    """Limited left context: keys ``j`` with ``i - n < j <= i``; keeps ``n - 1`` entries."""

    def __init__(self, n: int, positions: str = "absolute") -> None:
        super().__init__(positions)
        self.n = check_int("window", n, 1)

    def rule(self, key: Tensor, query: Tensor) -> Tensor:
        return key > query - self.n

    @property
    def bound(self) -> int:
        return self.n - 1

    @property
    def receptive_field(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Window({self.n}, positions={self.positions!r})"
