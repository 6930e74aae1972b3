"""``Anchored(size, left_chunks, anchor_chunks)``: chunked attention that also keeps the first
chunks for ever (StreamingT2V's two memories), and ``AnchorMemory``, the frames it keeps.

StreamingT2V conditions each new chunk on two memories: a short-term one, the previous chunk
(its conditional attention module), and a long-term anchor, features of the first chunk (its
appearance preservation module), kept for the whole stream so that later chunks do not forget
how it began.  As a cache rule: a query in chunk ``c`` sees chunks ``c - left_chunks .. c`` and
chunks ``0 .. anchor_chunks - 1``; everything else can be evicted, so the cache holds at most
``(anchor_chunks + left_chunks) * size`` entries, and streaming equals the offline mask.

``AnchorMemory`` keeps the same frames outside attention (a model that attends to its memory as
extra tokens, ``models/stream_dit.py``): after ``t`` frames it holds exactly the entries an
``Anchored(size, recent, anchor)`` cache keeps for the next chunk (a test).
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class Anchored(CachePolicy):
    """Chunks of ``size`` frames (aligned to frame 0; a frame waits for its chunk's end): a
    query in chunk ``c`` sees chunks ``max(0, c - left_chunks) .. c`` plus the first
    ``anchor_chunks`` chunks of the stream."""

    # the anchor is the stream's first chunks: outputs read absolute frames (like sinks)
    shift_invariant = False

    def __init__(self, size: int, left_chunks: int, anchor_chunks: int = 1,
                 positions: str = "absolute") -> None:
        super().__init__(positions)
        self.size = check_int("chunk size", size, 1)
        self.left_chunks = check_int("left_chunks", left_chunks, 0)
        self.anchor_chunks = check_int("anchor_chunks", anchor_chunks, 0)
        self.block = self.size

    def chunk_rule(self, key: Tensor, query: Tensor) -> Tensor:
        """May a query in chunk ``query`` see a key in chunk ``key`` (both chunk indices)?"""
        return (key <= query) & ((key >= query - self.left_chunks) | (key < self.anchor_chunks))

    def visible(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        kc = e["pos"][:, None, :] // self.size
        qc = qi["pos"][:, :, None] // self.size
        return self.chunk_rule(kc, qc) & e["valid"][:, None, :]

    def keep_positions(self, pos: Tensor, t: int) -> Tensor:
        """Frames at ``pos`` that a query after ``t`` frames (the next chunk on) may still see."""
        next_chunk = -(-t // self.size)  # the first chunk not answered yet
        return (pos >= (next_chunk - self.left_chunks) * self.size) | (
            pos < self.anchor_chunks * self.size)

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        return self.keep_positions(cache["pos"], t)

    def warm_keep(self) -> tuple[int, int]:
        return self.anchor_chunks * self.size, self.left_chunks * self.size

    @property
    def bound(self) -> int:
        return (self.anchor_chunks + self.left_chunks) * self.size

    @property
    def receptive_field(self) -> int:
        """The sliding part only (the anchor reaches back to frame 0, like attention sinks)."""
        return (self.left_chunks + 1) * self.size

    def __repr__(self) -> str:
        return (f"Anchored({self.size}, {self.left_chunks}, anchor_chunks={self.anchor_chunks}, "
                f"positions={self.positions!r})")


class AnchorMemory:
    """StreamingT2V's memories of a generated stream: the first ``anchor`` chunks of ``size``
    frames for ever (long-term) and the last ``recent`` chunks (short-term).

    ``write(frames)`` appends ``[B, n, C]`` frames of the stream (any ``n``); ``read()`` gives
    ``(frames [B, M, C], kind [M], pos [M])`` with kind 0 for anchor frames and 1 for recent
    ones (a frame in both is given twice, once of each kind), ``pos`` its frame in the stream;
    None before anything was written or when it keeps nothing.  Bounded: at most
    ``(anchor + recent) * size`` frames are held.
    """

    def __init__(self, size: int, recent: int = 1, anchor: int = 1) -> None:
        self.policy = Anchored(size, recent, anchor)
        self.size, self.recent, self.anchor = self.policy.size, recent, anchor
        self.frames: Tensor | None = None
        self.pos = torch.zeros(0, dtype=torch.long)
        self.t = 0

    def write(self, frames: Tensor) -> None:
        if not isinstance(frames, Tensor) or frames.dim() != 3:
            got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ValueError(f"expected frames [B, n, C], got {got}")
        if self.frames is not None and (frames.shape[0] != self.frames.shape[0]
                                        or frames.shape[2] != self.frames.shape[2]):
            b, _, c = self.frames.shape
            raise ValueError(f"expected frames [{b}, n, {c}], got {tuple(frames.shape)}")
        n = frames.shape[1]
        new_pos = self.t + torch.arange(n)
        held = frames if self.frames is None else torch.cat([self.frames, frames], 1)
        pos = torch.cat([self.pos, new_pos])
        self.t += n
        keep = self.policy.keep_positions(pos, self.t)
        self.frames, self.pos = held[:, keep], pos[keep]

    def read(self) -> tuple[Tensor, Tensor, Tensor] | None:
        if self.frames is None or not self.pos.numel():
            return None
        is_anchor = self.pos < self.anchor * self.size
        next_chunk = -(-self.t // self.size)
        is_recent = self.pos >= (next_chunk - self.recent) * self.size
        parts = [(is_anchor, 0), (is_recent, 1)]
        frames = torch.cat([self.frames[:, m] for m, _ in parts], 1)
        kind = torch.cat([torch.full((int(m.sum()),), k, dtype=torch.long) for m, k in parts])
        pos = torch.cat([self.pos[m] for m, _ in parts])
        if not kind.numel():
            return None
        return frames, kind, pos

    def nbytes(self) -> int:
        """Bytes held (frames and their positions)."""
        if self.frames is None:
            return 0
        return (self.frames.numel() * self.frames.element_size()
                + self.pos.numel() * self.pos.element_size())
