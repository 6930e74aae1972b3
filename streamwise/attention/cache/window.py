"""``Window(n)``: each frame attends to itself and the ``n - 1`` frames before it."""

from __future__ import annotations

from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class Window(CachePolicy):
    """Limited left context: keys ``j`` with ``i - n < j <= i``; keeps ``n - 1`` entries."""

    def __init__(self, n: int, positions: str = "absolute") -> None:
        super().__init__(positions)
        self.n = check_int("window", n, 1)

    def allows(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        return e["pos"][:, None, :] > qi["pos"][:, :, None] - self.n

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        return cache["pos"] > t - self.n  # the next frame, t, sees t - n + 1 onwards

    @property
    def bound(self) -> int:
        return self.n - 1

    @property
    def receptive_field(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Window({self.n}, positions={self.positions!r})"
