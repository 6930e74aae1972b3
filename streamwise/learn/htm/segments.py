"""Dendritic segments in padded NumPy arrays, with a presynaptic index: the storage both
temporal memories (``temporal_memory.py``, ``backtracking_tm.py``) learn on.

Segment ``s`` belongs to cell ``seg_cell[s]`` and has up to ``max_syn`` synapses: presynaptic
cell ``presyn[s, j]`` (-1 for a free slot) with permanence ``perm[s, j]``.  To find the segments
a set of cells reaches without scanning them all, ``index`` maps each cell to the segments it has
(or had) synapses on; new synapses wait in ``pending`` until their cell is next looked up, stale
entries (synapses that died) only add candidates that an exact count then rejects, and the index
is rebuilt when they pile up.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.zeros(0, dtype=np.int64)


class SegmentStore:
    #: the per-segment arrays and the value a new slot holds (a subclass may add its own)
    segment_arrays: dict[str, int] = {"seg_cell": -1, "presyn": -1, "perm": 0}

    def _init_segments(self, n_cells: int, max_synapses: int, initial_permanence: float,
                       seed: int, capacity: int = 1024) -> None:
        self.n_cells, self.max_syn = n_cells, max_synapses
        self.init_perm = np.float32(initial_permanence)
        self.rng = np.random.default_rng(seed)
        self.seg_cell = np.full(capacity, -1, dtype=np.int64)
        self.presyn = np.full((capacity, max_synapses), -1, dtype=np.int64)
        self.perm = np.zeros((capacity, max_synapses), dtype=np.float32)
        self.n_segs = 0
        self.segs_per_cell = np.zeros(n_cells, dtype=np.int64)
        self.index: list[np.ndarray] = [EMPTY] * n_cells  # cell -> segments
        self.pending: dict[int, list[int]] = {}  # index entries not merged yet
        self.index_entries = 0

    def _index_hits(self, cells: list[int]) -> np.ndarray:
        """Every index entry of ``cells`` (a segment once per synapse it had from them)."""
        for c in self.pending.keys() & set(cells):
            self.index[c] = np.concatenate([self.index[c], self.pending.pop(c)])
        return np.concatenate([self.index[c] for c in cells]) if cells else EMPTY

    def _new_segments(self, cells: np.ndarray) -> np.ndarray:
        """One new, empty segment on each of ``cells``; their ids."""
        while self.n_segs + len(cells) > len(self.seg_cell):  # double the capacity
            for name, fill in self.segment_arrays.items():
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.full_like(a, fill)]))
        segs = np.arange(self.n_segs, self.n_segs + len(cells))
        self.seg_cell[segs] = cells
        np.add.at(self.segs_per_cell, cells, 1)
        self.n_segs += len(cells)
        return segs

    def _grow(self, segs: np.ndarray, sources: np.ndarray, want: np.ndarray) -> None:
        """Give each segment up to ``want`` new synapses (at ``init_perm``) from ``sources`` it
        does not reach yet, chosen at random; a full segment first drops its weakest synapses
        that do not come from ``sources``."""
        segs, want = segs[want > 0], want[want > 0]
        if not len(segs) or not len(sources):
            return
        pre = self.presyn[segs]
        exists = (pre[:, :, None] == sources[None, None, :]).any(1)
        want = np.minimum(want, (~exists).sum(1))
        free = pre < 0
        over = want - free.sum(1)
        if np.any(over > 0):
            keep = free | np.isin(pre, sources)
            order = np.argsort(np.where(keep, np.inf, self.perm[segs]), axis=1, kind="stable")
            drop = np.minimum(over.clip(0), (~keep).sum(1))
            r, j = np.nonzero(np.arange(self.max_syn)[None, :] < drop[:, None])
            self.presyn[segs[r], order[r, j]] = -1
            self.perm[segs[r], order[r, j]] = 0.0
            pre = self.presyn[segs]
            free = pre < 0
        priority = np.where(exists, 2.0, self.rng.random(exists.shape))
        order = np.argsort(priority, axis=1, kind="stable")
        n = np.minimum(want, free.sum(1)).clip(0)
        rows, j = np.nonzero(np.arange(len(sources))[None, :] < n[:, None])
        slot_rows, slots = np.nonzero(free & (np.cumsum(free, 1) <= n[:, None]))
        cells = sources[order[rows, j]]
        target = segs[slot_rows]
        self.presyn[target, slots] = cells
        self.perm[target, slots] = self.init_perm
        for seg, cell in zip(target.tolist(), cells.tolist()):
            self.pending.setdefault(cell, []).append(seg)
        self.index_entries += len(cells)

    def _rebuild_index_if_stale(self) -> None:
        """Rebuild the index when its entries outnumber the live synapses by half."""
        if self.index_entries > 1.5 * (self.presyn >= 0).sum():
            self._rebuild_index()

    def _rebuild_index(self) -> None:
        """Drop the index's stale entries (synapses that died)."""
        pre = self.presyn[: self.n_segs]
        segs, _ = np.nonzero(pre >= 0)
        cells = pre[pre >= 0]
        order = np.argsort(cells, kind="stable")
        bounds = np.searchsorted(cells[order], np.arange(self.n_cells + 1))
        self.index = np.split(segs[order], bounds[1:-1])
        self.pending.clear()
        self.index_entries = len(cells)
