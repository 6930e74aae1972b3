"""``Chunked(size, left_chunks)``: a frame sees its whole chunk plus ``left_chunks`` chunks before.

The Stateful Conformer's ``chunked_limited`` context: chunks are aligned to frame 0, so a frame
waits for the end of its chunk (lookahead up to ``size - 1`` frames) and the cache keeps
``left_chunks * size`` frames.
"""

from __future__ import annotations

from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class Chunked(CachePolicy):
    """Chunked limited context: a query in chunk ``c`` sees chunks ``c - left_chunks .. c``."""

    shift_invariant = True  # chunk membership and relative positions survive whole-chunk shifts

    def __init__(self, size: int, left_chunks: int, positions: str = "absolute") -> None:
        super().__init__(positions)
        self.size = check_int("chunk size", size, 1)
        self.left_chunks = check_int("left_chunks", left_chunks, 0)
        self.block = self.size

    def visible(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        kc = e["pos"][:, None, :] // self.size
        qc = qi["pos"][:, :, None] // self.size
        return (kc <= qc) & (kc >= qc - self.left_chunks) & e["valid"][:, None, :]

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        next_chunk = -(-t // self.size)  # the first chunk not answered yet
        return cache["pos"] >= (next_chunk - self.left_chunks) * self.size

    def warm_keep(self) -> tuple[int, int] | None:
        return 0, self.left_chunks * self.size  # frames arrive in whole chunks: the last ones

    @property
    def bound(self) -> int:
        return self.left_chunks * self.size

    @property
    def receptive_field(self) -> int:
        return (self.left_chunks + 1) * self.size

    def __repr__(self) -> str:
        return f"Chunked({self.size}, {self.left_chunks}, positions={self.positions!r})"
