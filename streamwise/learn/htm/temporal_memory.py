"""Temporal memory: sequence learning with cells in columns and dendritic segments.

From the HTM sequence-memory rules (Hawkins & Ahmad 2016; BAMI):
- a column that becomes active activates its *predictive* cells (cells with an active segment);
  if it has none, it *bursts* (all its cells become active) and one winner cell learns;
- a segment is *active* when at least ``activation_threshold`` of its connected synapses
  (permanence >= ``connected``) come from cells active at the previous step, *matching* when at
  least ``min_threshold`` of its synapses (any permanence) do;
- learning reinforces a correct segment (``+inc`` on synapses from previously active cells,
  ``-dec`` on the others) and grows synapses to previous winner cells up to
  ``max_new_synapses`` active ones; a bursting column learns on its best matching segment, or
  grows a new segment on its least-used cell; matching segments of columns that did not become
  active are punished by ``predicted_decrement``;
- the raw anomaly score is the fraction of active columns that were not predicted.

Segments live in padded NumPy arrays (presynaptic cell, permanence), so computing every
segment's activity is a few vectorised gathers.  Written from the rules above.
"""

from __future__ import annotations

import numpy as np


class TemporalMemory:
    def __init__(
        self, columns: int = 2048, cells_per_column: int = 32, activation_threshold: int = 13,
        min_threshold: int = 10, max_new_synapses: int = 20, max_synapses: int = 32,
        initial_permanence: float = 0.21, connected: float = 0.5, inc: float = 0.1,
        dec: float = 0.1, predicted_decrement: float = 0.0, seed: int = 0,
    ) -> None:
        self.columns, self.k = columns, cells_per_column
        self.n_cells = columns * cells_per_column
        self.act_th, self.min_th = activation_threshold, min_threshold
        self.max_new, self.max_syn = max_new_synapses, max_synapses
        self.init_perm, self.connected = initial_permanence, connected
        self.inc, self.dec, self.punish = inc, dec, predicted_decrement
        self.rng = np.random.default_rng(seed)
        cap = 1024
        self.seg_cell = np.full(cap, -1, dtype=np.int64)
        self.presyn = np.full((cap, max_synapses), -1, dtype=np.int64)
        self.perm = np.zeros((cap, max_synapses), dtype=np.float32)
        self.n_segs = 0
        self.segs_per_cell = np.zeros(self.n_cells, dtype=np.int64)
        self.active_cells = np.zeros(0, dtype=np.int64)
        self.winner_cells = np.zeros(0, dtype=np.int64)
        self.active_segs = np.zeros(0, dtype=np.int64)
        self.matching_segs = np.zeros(0, dtype=np.int64)
        self.seg_potential = np.zeros(0, dtype=np.int64)  # active potential synapses per segment

    # -- queries ---------------------------------------------------------------------------------
    @property
    def predictive_cells(self) -> np.ndarray:
        return np.unique(self.seg_cell[self.active_segs])

    def predicted_columns(self) -> np.ndarray:
        return np.unique(self.predictive_cells // self.k)

    # -- one step ------------------------------------------------------------------------------
    def compute(self, active_columns: np.ndarray, learn: bool = True) -> float:
        """Process one step's active columns; returns the raw anomaly score."""
        cols = np.unique(np.asarray(active_columns, dtype=np.int64))
        predicted = self.predicted_columns()
        anomaly = 1.0 - len(np.intersect1d(cols, predicted)) / len(cols) if len(cols) else 0.0
        prev_active, prev_winners = self.active_cells, self.winner_cells
        seg_col = self.seg_cell[: self.n_segs] // self.k
        active_cells, winners = [], []
        for c in cols:
            segs_here = self.active_segs[seg_col[self.active_segs] == c]
            if len(segs_here):  # predicted: the predictive cells fire and learn
                cells = np.unique(self.seg_cell[segs_here])
                active_cells.append(cells)
                winners.append(cells)
                if learn:
                    for s in segs_here:
                        self._adapt(s, prev_active, prev_winners)
            else:  # burst
                active_cells.append(np.arange(c * self.k, (c + 1) * self.k))
                winner = self._burst_winner(c, seg_col, prev_active, prev_winners, learn)
                winners.append(np.array([winner]))
        if learn and self.punish > 0 and len(self.matching_segs):
            wrong = self.matching_segs[~np.isin(seg_col[self.matching_segs], cols)]
            for s in wrong:
                on = np.isin(self.presyn[s], prev_active) & (self.presyn[s] >= 0)
                self.perm[s, on] = np.clip(self.perm[s, on] - self.punish, 0.0, 1.0)
        self.active_cells = np.concatenate(active_cells) if active_cells else np.zeros(0, int)
        self.winner_cells = np.concatenate(winners) if winners else np.zeros(0, int)
        self._activate_segments()
        return float(anomaly)

    def _burst_winner(self, c: int, seg_col: np.ndarray, prev_active: np.ndarray,
                      prev_winners: np.ndarray, learn: bool) -> int:
        matching = self.matching_segs[seg_col[self.matching_segs] == c]
        if len(matching):
            best = matching[np.argmax(self.seg_potential[matching])]
            if learn:
                self._adapt(best, prev_active, prev_winners)
            return int(self.seg_cell[best])
        cells = np.arange(c * self.k, (c + 1) * self.k)
        counts = self.segs_per_cell[cells]
        least = cells[counts == counts.min()]
        winner = int(self.rng.choice(least))
        if learn and len(prev_winners):
            seg = self._new_segment(winner)
            self._grow(seg, prev_winners, self.max_new)
        return winner

    # -- learning --------------------------------------------------------------------------------
    def _adapt(self, s: int, prev_active: np.ndarray, prev_winners: np.ndarray) -> None:
        pre = self.presyn[s]
        valid = pre >= 0
        on = np.isin(pre, prev_active) & valid
        self.perm[s] = np.where(on, self.perm[s] + self.inc,
                                np.where(valid, self.perm[s] - self.dec, 0.0)).clip(0.0, 1.0)
        self.presyn[s] = np.where(valid & (self.perm[s] <= 0.0), -1, self.presyn[s])  # dead
        self._grow(s, prev_winners, self.max_new - int(on.sum()))

    def _grow(self, s: int, candidates: np.ndarray, n: int) -> None:
        if n <= 0 or not len(candidates):
            return
        existing = self.presyn[s][self.presyn[s] >= 0]
        new = np.setdiff1d(candidates, existing)
        free = np.flatnonzero(self.presyn[s] < 0)
        n = min(n, len(new), len(free))
        if n <= 0:
            return
        pick = self.rng.choice(new, size=n, replace=False)
        self.presyn[s, free[:n]] = pick
        self.perm[s, free[:n]] = self.init_perm

    def _new_segment(self, cell: int) -> int:
        if self.n_segs == len(self.seg_cell):  # grow capacity
            cap = 2 * len(self.seg_cell)
            self.seg_cell = np.concatenate([self.seg_cell, np.full(cap // 2, -1, np.int64)])
            self.presyn = np.concatenate([self.presyn, np.full_like(self.presyn, -1)])
            self.perm = np.concatenate([self.perm, np.zeros_like(self.perm)])
        s = self.n_segs
        self.seg_cell[s] = cell
        self.segs_per_cell[cell] += 1
        self.n_segs += 1
        return s

    # -- segment activity for the next step ----------------------------------------------------
    def _activate_segments(self) -> None:
        n = self.n_segs
        if n == 0:
            self.active_segs = self.matching_segs = np.zeros(0, dtype=np.int64)
            self.seg_potential = np.zeros(0, dtype=np.int64)
            return
        is_active = np.zeros(self.n_cells + 1, dtype=bool)  # last slot: the padding (-1)
        is_active[self.active_cells] = True
        hit = is_active[self.presyn[:n]]
        potential = hit.sum(1)
        connected = (hit & (self.perm[:n] >= self.connected)).sum(1)
        self.seg_potential = potential
        self.active_segs = np.flatnonzero(connected >= self.act_th)
        self.matching_segs = np.flatnonzero(potential >= self.min_th)
