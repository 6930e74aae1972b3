"""``SegmentMemory``: Think While Watching's segment-level causal mask over variable-length
segments, with the notes written about each segment kept as its memory.

Two kinds of entries share one cache: *watch* frames (a video clip, an audio turn: segments of any
length) and *think* notes (what the model wrote about a segment).  Watching and thinking overlap,
so notes about segment ``s`` may arrive after frames of ``s + 1``; the mask follows the segment
numbers, not the arrival order.  The caller marks the last frame of each segment with
``'watch_end'`` and the last note about it with ``'think_end'``; an entry's segment number is the
count of ``_end`` marks of its kind before it.  For a query of segment ``s_q`` and a key of segment
``s_k`` that arrived no later (``pos_k <= pos_q``):

- a frame key is seen when ``s_q - watch < s_k <= s_q``: a note never reads frames of a later
  segment, and raw frames are kept for the last ``watch`` segments only;
- a note key is seen by a note when ``s_q - memory < s_k <= s_q`` and by a frame when
  ``s_q - memory <= s_k < s_q``: every query reads the notes of ``memory`` segments, a frame those
  of the segments before its own.

Segment numbers only grow for each kind, so an entry is dropped once the next frame and the next
note (segment ``counts``) can no longer see it; streaming equals the offline mask for every
chunking.  The cache is bounded when segments, notes and the lag of thinking behind watching are.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries
from streamwise.core.state import Spec, tensor

NAMES = ("watch", "watch_end", "think", "think_end")


class SegmentMemory(CachePolicy):
    """``SegmentMemory(watch=2, memory=8)``: raw frames of the last 2 segments, notes of the last 8.

    ``watch`` / ``memory``: segments whose frames / notes a query sees (``None``: all of them).
    ``positions``: 'absolute' or 'within_cache' (entries hold segment numbers, not group indices).
    Segment names per frame: 'watch', 'watch_end', 'think', 'think_end'.
    """

    segments = NAMES

    def __init__(self, watch: int | None = 1, memory: int | None = None,
                 positions: str = "absolute") -> None:
        if positions == "group":
            raise ValueError("SegmentMemory numbers segments, not position groups: expected "
                             "positions='absolute' or 'within_cache'")
        super().__init__(positions)
        self.watch = None if watch is None else check_int("watch", watch, 1)
        self.memory = None if memory is None else check_int("memory", memory, 1)

    def spec(self, heads: int, head_dim: int) -> Spec:
        # entries of each name seen so far: one count shared by the rows (one conversation)
        return {"counts": tensor(len(NAMES), dtype=torch.long, batch_axis=None)}

    def arrivals(self, t: int | Tensor, seg: Tensor, ps: PState, batch: int, dtype: torch.dtype
                 ) -> Entries:
        if isinstance(t, Tensor):
            raise ValueError("SegmentMemory keeps segment counts in Python: it cannot be exported "
                             "with a traced clock")
        fields = super().arrivals(t, seg, ps, batch, dtype)
        counts = fields["counts"]  # [B, n, 4], inclusive
        think = (seg >= 2)[None]
        end = (seg % 2 == 1)[None]
        ends = torch.where(think, counts[..., 3], counts[..., 1])
        return {**fields, "lidx": ends - end.long()}  # the segment number of each entry

    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        cache, ps = super().admit(cache, new, ps)
        if not new["pos"].shape[1]:
            return cache, ps
        return cache, {**ps, "counts": new["counts"][0, -1]}

    def _sees(self, k_think: Tensor, k_seg: Tensor, q_think: Tensor, q_seg: Tensor) -> Tensor:
        """May a query (kind, segment) see a key (kind, segment)?  Broadcasting tensors."""
        back = q_seg - k_seg  # segments the key lies behind the query
        inf = torch.iinfo(torch.long).max
        w = inf if self.watch is None else self.watch
        m = inf if self.memory is None else self.memory
        frame = ~k_think & (back >= 0) & (back < w)
        note_for_note = q_think & (back >= 0) & (back < m)
        note_for_frame = ~q_think & (back >= 1) & (back <= m)
        return frame | (k_think & (note_for_note | note_for_frame))

    def allows(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        return self._sees((e["seg"] >= 2)[:, None, :], e["lidx"][:, None, :],
                          (qi["seg"] >= 2)[:, :, None], qi["lidx"][:, :, None])

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        # the next frame is of segment counts[watch_end], the next note of counts[think_end];
        # later ones only of later segments, which see no further back
        # (a note key is seen by frames of later segments only: the first of those)
        c = ps["counts"]
        k_think, k_seg = cache["seg"] >= 2, cache["lidx"]
        yes = torch.ones_like(k_think)
        by_frame = self._sees(k_think, k_seg, ~yes, torch.maximum(c[1], k_seg + k_think.long()))
        by_note = self._sees(k_think, k_seg, yes, torch.maximum(c[3], k_seg))
        return by_frame | by_note

    @property
    def receptive_field(self) -> int:
        return 1

    def __repr__(self) -> str:
        return (f"SegmentMemory(watch={self.watch}, memory={self.memory}, "
                f"positions={self.positions!r})")
