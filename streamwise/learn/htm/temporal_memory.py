"""Temporal memory: sequence learning with cells in columns and dendritic segments.

From the HTM sequence-memory rules (Hawkins & Ahmad 2016; BAMI):
- a column that becomes active activates its *predictive* cells (cells with an active segment);
  if it has none, it *bursts* (all its cells become active) and one winner cell learns;
- a segment is *active* when at least ``activation_threshold`` of its connected synapses
  (permanence >= ``connected``) come from cells active at the previous step, *matching* when at
  least ``min_threshold`` of its synapses (any permanence) do;
- learning reinforces a correct segment (``+inc`` on synapses from previously active cells,
  ``-dec`` on the others) and grows synapses to previous winner cells up to
  ``max_new_synapses`` active ones (a full segment, ``max_synapses``, first drops its weakest
  synapses from other cells); a bursting column learns on its best matching segment, or grows a
  new segment on its least-used cell; matching segments of columns that did not become active
  are punished by ``predicted_decrement``;
- start cells (``start_cells``, as in Numenta's backtracking temporal memory that produced its
  NAB results): when more than half of the active columns burst, the sequence is lost and the
  step starts over: the bursting columns' winner cells, which the next step's segments learn
  from, are their first cells, so a transition out of a surprise is learned from the same cells
  whatever came before.  Start cells never grow segments;
- the raw anomaly score is the fraction of active columns that were not predicted.

Segments live in ``segments.py``'s padded arrays with its presynaptic index; every rule above is
one vectorised operation over all the segments it touches, with no loop over columns.  Written
from the rules above.
"""

from __future__ import annotations

import numpy as np

from streamwise.learn.htm.segments import EMPTY as _EMPTY
from streamwise.learn.htm.segments import SegmentStore


class TemporalMemory(SegmentStore):
    def __init__(
        self, columns: int = 2048, cells_per_column: int = 32, activation_threshold: int = 13,
        min_threshold: int = 10, max_new_synapses: int = 20, max_synapses: int = 32,
        initial_permanence: float = 0.21, connected: float = 0.5, inc: float = 0.1,
        dec: float = 0.1, predicted_decrement: float = 0.0, start_cells: bool = True,
        seed: int = 0,
    ) -> None:
        if not 0 < min_threshold <= activation_threshold:
            raise ValueError("need 0 < min_threshold <= activation_threshold")
        if not 0 < max_new_synapses <= max_synapses:
            raise ValueError("need 0 < max_new_synapses <= max_synapses")
        self.columns, self.k = columns, cells_per_column
        self._init_segments(columns * cells_per_column, max_synapses, initial_permanence, seed)
        self.act_th, self.min_th = activation_threshold, min_threshold
        self.max_new, self.connected = max_new_synapses, connected
        self.inc, self.dec, self.punish = inc, dec, predicted_decrement
        self.start_cells = start_cells
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        """Forget the sequence context (the learned segments stay)."""
        self.active_cells = self.winner_cells = _EMPTY
        self.active_segs = self.matching_segs = self.matching_potential = _EMPTY
        # active_cells as a mask over cells, plus a last slot (always False) for padding (-1)
        self.active_mask = np.zeros(self.n_cells + 1, dtype=bool)

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
        if cols.size and (cols[0] < 0 or cols[-1] >= self.columns):
            raise ValueError(f"active columns must lie in [0, {self.columns})")
        col_on = np.zeros(self.columns, dtype=bool)
        col_on[cols] = True
        correct = self.active_segs[col_on[self.seg_cell[self.active_segs] // self.k]]
        predicted_cells = np.unique(self.seg_cell[correct])
        predicted_cols = np.unique(predicted_cells // self.k)
        anomaly = 1.0 - len(predicted_cols) / len(cols) if len(cols) else 0.0
        burst = np.setdiff1d(cols, predicted_cols, assume_unique=True)
        burst_cells = (burst[:, None] * self.k + np.arange(self.k)).ravel()
        best, best_cols = self._best_matching(burst)
        fresh_cols = np.setdiff1d(burst, best_cols, assume_unique=True)
        fresh_cells = self._least_used_cells(fresh_cols)
        if learn:
            self._learn(correct, best, fresh_cells, col_on)
        self.active_cells = np.concatenate([predicted_cells, burst_cells])
        if self.start_cells and 2 * len(burst) > len(cols):  # out of sequence: start over
            self.winner_cells = np.concatenate([predicted_cells, burst * self.k])
        else:
            self.winner_cells = np.concatenate([predicted_cells, self.seg_cell[best], fresh_cells])
        self._activate_segments()
        self.steps += 1
        return float(anomaly)

    def _best_matching(self, burst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per bursting column, its matching segment with the most active potential synapses."""
        seg_cols = self.seg_cell[self.matching_segs] // self.k
        keep = np.isin(seg_cols, burst)
        segs, seg_cols = self.matching_segs[keep], seg_cols[keep]
        pot = self.matching_potential[keep]
        order = np.lexsort((segs, -pot, seg_cols))  # by column, most potential, oldest
        segs, seg_cols = segs[order], seg_cols[order]
        first = np.ones(len(segs), dtype=bool)
        first[1:] = seg_cols[1:] != seg_cols[:-1]
        return segs[first], seg_cols[first]

    def _least_used_cells(self, cols: np.ndarray) -> np.ndarray:
        """Per column, a cell with the fewest segments (ties broken at random), never the start
        cell when start cells are on."""
        first = 1 if self.start_cells and self.k > 1 else 0
        cells = cols[:, None] * self.k + np.arange(first, self.k)
        score = self.segs_per_cell[cells] + 0.5 * self.rng.random(cells.shape)
        return cells[np.arange(len(cols)), np.argmin(score, axis=1)] if len(cols) else _EMPTY

    # -- learning --------------------------------------------------------------------------------
    def _learn(self, correct: np.ndarray, best: np.ndarray, fresh_cells: np.ndarray,
               col_on: np.ndarray) -> None:
        prev_on = self.active_mask  # still the previous step's: kept by _activate_segments
        winners = np.unique(self.winner_cells)
        self._adapt(np.concatenate([correct, best]), prev_on, winners)
        if len(winners) and len(fresh_cells):
            segs = self._new_segments(fresh_cells)
            self._grow(segs, winners, np.full(len(segs), self.max_new))
        if self.punish > 0 and len(self.matching_segs):
            wrong = self.matching_segs[~col_on[self.seg_cell[self.matching_segs] // self.k]]
            hit = prev_on[self.presyn[wrong]]
            self.perm[wrong] = np.where(hit, np.maximum(self.perm[wrong] - self.punish, 0.0),
                                        self.perm[wrong])

    def _adapt(self, segs: np.ndarray, prev_on: np.ndarray, winners: np.ndarray) -> None:
        """Reinforce synapses from previously active cells, weaken the rest, regrow."""
        if not len(segs):
            return
        pre = self.presyn[segs]
        valid = pre >= 0
        on = prev_on[pre]
        perm = np.clip(self.perm[segs] + np.where(on, self.inc, -self.dec), 0.0, 1.0)
        perm = np.where(valid, perm, 0.0).astype(np.float32)
        self.presyn[segs] = np.where(valid & (perm <= 0.0), -1, pre)  # dead synapses go
        self.perm[segs] = perm
        self._grow(segs, winners, self.max_new - on.sum(1))

    # -- segment activity for the next step ----------------------------------------------------
    def _candidates(self) -> np.ndarray:
        """Segments that may have ``min_threshold`` synapses from currently active cells.

        The index counts, per segment, entries from active cells: an upper bound on its active
        synapses (dead synapses may linger), so segments below the threshold are skipped.
        """
        hits = self._index_hits(self.active_cells.tolist())
        return np.flatnonzero(np.bincount(hits, minlength=self.n_segs) >= self.min_th)

    def _activate_segments(self) -> None:
        if self.steps % 1000 == 999:
            self._rebuild_index_if_stale()
        cand = self._candidates()
        on = np.zeros(self.n_cells + 1, dtype=bool)
        on[self.active_cells] = True
        self.active_mask = on
        hit = on[self.presyn[cand]]
        potential = hit.sum(1)
        connected = (hit & (self.perm[cand] >= self.connected)).sum(1)
        self.active_segs = cand[connected >= self.act_th]
        matching = potential >= self.min_th
        self.matching_segs, self.matching_potential = cand[matching], potential[matching]
