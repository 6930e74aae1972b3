"""Backtracking temporal memory: the sequence memory of the 2011 HTM/CLA whitepaper with the
"pay attention" and backtracking extensions of Numenta's later temporal pooler (the one its NAB
results were produced with).  Written from the published descriptions; the rules:

- cells in columns; each cell has dendritic segments of at most ``max_synapses`` synapses
  (presynaptic cell, permanence); a synapse is *connected* at permanence >= ``connected``;
- *inference* and *learning* keep separate states.  Inference, per active column: its cells
  predicted at the previous step become active, or (none predicted) the column bursts; the step
  is *in sequence* when at least half the active columns were predicted.  A cell is predicted
  when one of its segments has ``activation_threshold`` connected synapses from active cells;
  the prediction is good enough when it covers at least half the average number of active
  columns;
- *inference backtracking*: when the step is out of sequence or predicts too little, the last
  ``max_inf_backtrack`` inputs are replayed from each start offset, oldest first, with only the
  *start cell* (cell 0) of each column active at the start; the first offset whose replay stays
  in sequence (and predicts enough) up to now gives the state; if none does, the bursting state
  stands.  Offsets that failed at the head of the history are dropped;
- *learning*, per active column, one *learning cell*: the cell the learning state predicted,
  or else the cell whose segment best matches the previous learning cells (``min_threshold``
  synapses of any permanence; adapted at once, with new synapses), or else a random non-start
  cell with room grows a new segment onto ``new_synapses`` previous learning cells.  The
  learning prediction is, per column, the best segment with ``activation_threshold`` synapses
  (any permanence) from the learning cells; its update (``+inc`` on synapses from them, ``-dec``
  on the others, new synapses up to ``new_synapses`` active ones) is *queued* and applied at the
  next step only if the column becomes active (positive reinforcement; otherwise dropped).
  A full segment makes room by dropping its weakest inactive synapses; synapses that reach 0
  are removed;
- *pay attention mode*: after ``pam_length`` steps out of sequence (fewer than half the columns
  predicted by the learning state), or ``max_seq_length`` steps into a sequence, learning starts
  over: it replays the last ``max_lrn_backtrack`` inputs from start cells (read-only, oldest
  first) and, if one replay stays in sequence up to now, relearns along it; otherwise the
  learning cells become the current columns' start cells.  Start cells never grow segments;
- the raw anomaly is the fraction of active columns not predicted by the inference state,
  where a column counts as predicted when one of its segments has ``activation_threshold``
  synapses of any permanence from the active cells (Numenta's "column confidence": a segment
  learned once already counts, before its synapses connect).

Segments live in ``segments.py``'s padded arrays, whose presynaptic index finds the segments a
set of cells reaches without scanning them all.
"""

from __future__ import annotations

import numpy as np

from streamwise.learn.htm.segments import EMPTY as _EMPTY
from streamwise.learn.htm.segments import SegmentStore


class BacktrackingTM(SegmentStore):
    segment_arrays = {**SegmentStore.segment_arrays, "seg_used": 0}

    def __init__(
        self, columns: int = 2048, cells_per_column: int = 32, activation_threshold: int = 13,
        min_threshold: int = 10, new_synapses: int = 20, max_synapses: int = 32,
        max_segments_per_cell: int = 128, initial_permanence: float = 0.21,
        connected: float = 0.5, inc: float = 0.1, dec: float = 0.1, pam_length: int = 3,
        max_inf_backtrack: int = 10, max_lrn_backtrack: int = 5, max_seq_length: int = 32,
        seed: int = 0,
    ) -> None:
        if not 0 < min_threshold <= activation_threshold:
            raise ValueError("need 0 < min_threshold <= activation_threshold")
        if not 0 < new_synapses <= max_synapses or cells_per_column < 2 or pam_length < 1:
            raise ValueError("need 0 < new_synapses <= max_synapses, cells_per_column >= 2, "
                             "pam_length >= 1")
        self.columns, self.k = columns, cells_per_column
        self._init_segments(columns * cells_per_column, max_synapses, initial_permanence, seed)
        self.act_th, self.min_th = activation_threshold, min_threshold
        self.new_syn = new_synapses
        self.max_segs = max_segments_per_cell
        self.connected = connected
        self.inc, self.dec = inc, dec
        self.pam_length, self.max_seq = pam_length, max_seq_length
        self.max_inf_bt, self.max_lrn_bt = max_inf_backtrack, max_lrn_backtrack
        self.seg_used = np.zeros(len(self.seg_cell), dtype=np.int64)  # last step it learned
        self.steps = 0
        self.avg_density = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget the sequence context (the learned segments stay)."""
        self.reset_called = True
        self.inf_active = self.inf_pred = self.inf_cols = _EMPTY
        self.lrn_active = self.lrn_pred = self.lrn_active_prev = self.lrn_pred_prev = _EMPTY
        self.inf_history: list[np.ndarray] = []
        self.lrn_history: list[np.ndarray] = []
        self.queued: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.pam = self.pam_length
        self.seq_len = 0

    # -- queries ---------------------------------------------------------------------------------
    @property
    def active_cells(self) -> np.ndarray:
        """The inference state's active cells."""
        return np.sort(self.inf_active)

    @property
    def predictive_cells(self) -> np.ndarray:
        return self.inf_pred

    def predicted_columns(self) -> np.ndarray:
        """Columns with a segment of ``activation_threshold`` active synapses, connected or not
        (Numenta's column confidence > 0): the prediction the anomaly score is measured
        against."""
        return self.inf_cols

    # -- one step --------------------------------------------------------------------------------
    def compute(self, active_columns: np.ndarray, learn: bool = True) -> float:
        """Process one step's active columns; returns the raw anomaly score."""
        cols = np.unique(np.asarray(active_columns, dtype=np.int64))
        if cols.size and (cols[0] < 0 or cols[-1] >= self.columns):
            raise ValueError(f"active columns must lie in [0, {self.columns})")
        hit = np.isin(cols, self.predicted_columns(), assume_unique=True).sum()
        anomaly = 1.0 - hit / len(cols) if len(cols) else 0.0
        self.avg_density = float(len(cols)) if self.steps == 0 else \
            0.99 * self.avg_density + 0.01 * len(cols)
        self.steps += 1
        self._infer(cols)
        if learn:
            self._learn(cols)
        if self.steps % 1000 == 0:
            self._rebuild_index_if_stale()
        self.reset_called = False
        return float(anomaly)

    # -- segment activity ----------------------------------------------------------------------
    def _activity(self, cells: np.ndarray, threshold: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segments with at least ``threshold`` synapses (any permanence) from ``cells``, with
        those counts and their counts of connected synapses from ``cells``."""
        if not len(cells) or not self.n_segs:
            return _EMPTY, _EMPTY, _EMPTY
        hits = self._index_hits(cells.tolist())
        if len(hits) < threshold:
            return _EMPTY, _EMPTY, _EMPTY
        cand = np.flatnonzero(np.bincount(hits, minlength=self.n_segs) >= threshold)
        if not len(cand):
            return _EMPTY, _EMPTY, _EMPTY
        on = self._mask(cells)[self.presyn[cand]]
        n = on.sum(1)
        keep = n >= threshold
        cand, on, n = cand[keep], on[keep], n[keep]
        return cand, n, (on & (self.perm[cand] >= self.connected)).sum(1)

    def _mask(self, cells: np.ndarray) -> np.ndarray:
        """Cells as a mask, with a last (always False) slot for the padding index -1."""
        m = np.zeros(self.n_cells + 1, dtype=bool)
        m[cells] = True
        return m

    def _best_per_column(self, segs: np.ndarray, counts: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Per column, its most active segment (ties: the later cell, then the older segment)."""
        cells = self.seg_cell[segs]
        cols = cells // self.k
        order = np.lexsort((segs, -cells, -counts, cols))
        segs, cols, counts = segs[order], cols[order], counts[order]
        first = np.ones(len(segs), dtype=bool)
        first[1:] = cols[1:] != cols[:-1]
        return segs[first], counts[first]

    # -- inference -----------------------------------------------------------------------------
    def _inf_phase1(self, cols: np.ndarray, start: bool) -> bool:
        if start:
            self.inf_active = cols * self.k
            return True
        pred = np.zeros(self.n_cells, dtype=bool)
        pred[self.inf_pred] = True
        block = pred.reshape(self.columns, self.k)[cols]
        has = block.any(1)
        rows, idx = np.nonzero(block[has])
        burst = cols[~has]
        self.inf_active = np.concatenate([cols[has][rows] * self.k + idx,
                                          (burst[:, None] * self.k + np.arange(self.k)).ravel()])
        return bool(has.sum() >= 0.5 * len(cols))

    def _inf_phase2(self) -> bool:
        segs, _, conn = self._activity(self.inf_active, self.act_th)
        self.inf_cols = np.unique(self.seg_cell[segs] // self.k)  # some confidence
        self.inf_pred = np.unique(self.seg_cell[segs[conn >= self.act_th]])
        return bool(len(np.unique(self.inf_pred // self.k)) >= 0.5 * self.avg_density)

    def _infer(self, cols: np.ndarray) -> None:
        if self.max_inf_bt > 0:
            self.inf_history.append(cols)
            del self.inf_history[:-(self.max_inf_bt + 1)]
        ok = self._inf_phase1(cols, start=self.reset_called)
        if ok:
            ok = self._inf_phase2()
        if not ok:
            self._inf_backtrack()

    def _inf_backtrack(self) -> None:
        pats = self.inf_history
        n = len(pats)
        if not n:
            self._inf_phase2()
            return
        backup = self.inf_active
        cand, bad = None, []
        for start in range(n):
            ok = True
            for off in range(start, n):
                ok = self._inf_phase1(pats[off], start=off == start) and self._inf_phase2()
                if not ok:
                    break
            if ok:
                cand = start
                break
            bad.append(start)
        if cand is None:
            self.inf_active = backup
            self._inf_phase2()
        drop = 0
        while drop < n and (drop in bad or (cand is not None and drop <= cand)):
            drop += 1
        del pats[:drop]

    # -- learning ------------------------------------------------------------------------------
    def _learn(self, cols: np.ndarray) -> None:
        self.lrn_active_prev, self.lrn_pred_prev = self.lrn_active, self.lrn_pred
        if self.max_lrn_bt > 0:
            self.lrn_history.append(cols)
            del self.lrn_history[:-(self.max_lrn_bt + 1)]
        self._process_updates(cols)
        if self.pam > 0:
            self.pam -= 1
        self.seq_len += 1
        if not self.reset_called and self._lrn_phase1(cols, read_only=False):
            self.pam = self.pam_length
        if self.reset_called or self.pam == 0 or 0 < self.max_seq <= self.seq_len:
            back = 0 if self.reset_called else self._lrn_backtrack()
            if back == 0:
                self.lrn_active = cols * self.k
                self.lrn_history = []
            self.pam, self.seq_len, self.queued = self.pam_length, back, None
        self._lrn_phase2(read_only=False)

    def _lrn_phase1(self, cols: np.ndarray, read_only: bool) -> bool:
        """Learning cells from the learning prediction; unpredicted columns learn (unless
        read-only).  In sequence when fewer than half the columns were unpredicted."""
        cell_of = np.full(self.columns, -1, dtype=np.int64)
        cell_of[self.lrn_pred_prev // self.k] = self.lrn_pred_prev
        pc = cell_of[cols]
        un = cols[pc < 0]
        chosen = [pc[pc >= 0]]
        if not read_only and len(un):
            segs, counts, _ = self._activity(self.lrn_active_prev, self.min_th)
            keep = np.isin(self.seg_cell[segs] // self.k, un)
            best, _ = self._best_per_column(segs[keep], counts[keep])
            self._adapt(best, self.lrn_active_prev, np.ones(len(best), dtype=bool))
            fresh = np.setdiff1d(un, self.seg_cell[best] // self.k, assume_unique=True)
            cells = self._cells_for_new_segments(fresh)
            if len(self.lrn_active_prev):
                new = self._new_segments(cells)
                self._grow(new, self.lrn_active_prev, np.full(len(new), self.new_syn))
            chosen += [self.seg_cell[best], cells]
        self.lrn_active = np.sort(np.concatenate(chosen))
        return bool(len(un) < len(cols) / 2)

    def _lrn_phase2(self, read_only: bool) -> None:
        segs, counts, _ = self._activity(self.lrn_active, self.act_th)
        best, counts = self._best_per_column(segs, counts)
        self.lrn_pred = np.sort(self.seg_cell[best])
        if not read_only:
            self.queued = (best, counts < self.new_syn, self.lrn_active)

    def _process_updates(self, cols: np.ndarray) -> None:
        """Apply the queued updates of segments whose column became active; drop the rest."""
        if self.queued is None:
            return
        segs, add, active = self.queued
        self.queued = None
        on = np.isin(self.seg_cell[segs] // self.k, cols)
        self._adapt(segs[on], active, add[on])

    def _lrn_backtrack(self) -> int:
        """Steps back to a start that explains the recent inputs, relearned; 0 if none."""
        n_prev = len(self.lrn_history) - 1
        if n_prev <= 0:
            return 0
        bad, found = [], None
        for start in range(n_prev):
            if self._learn_from(start, read_only=True):
                found = start
                break
            bad.append(start)
        if found is None:
            return 0
        self._learn_from(found, read_only=False)
        drop = 0
        while drop < n_prev and (drop in bad or drop <= found):
            drop += 1
        del self.lrn_history[:drop]
        return n_prev - found

    def _learn_from(self, start: int, read_only: bool) -> bool:
        pats = self.lrn_history
        if not read_only:
            self.queued = None
        ok = True
        for off in range(start, len(pats)):
            self.lrn_active_prev, self.lrn_pred_prev = self.lrn_active, self.lrn_pred
            if not read_only:
                self._process_updates(pats[off])
            if off == start:
                self.lrn_active, ok = pats[off] * self.k, True
            else:
                ok = self._lrn_phase1(pats[off], read_only)
            if not ok or off == len(pats) - 1:
                break
            self._lrn_phase2(read_only)
        return ok

    # -- segment changes -----------------------------------------------------------------------
    def _adapt(self, segs: np.ndarray, active: np.ndarray, add: np.ndarray) -> None:
        """``+inc`` on synapses from ``active`` cells, ``-dec`` on the others (removed at 0);
        where ``add``, new synapses up to ``new_synapses`` active ones."""
        if not len(segs):
            return
        pre = self.presyn[segs]
        valid = pre >= 0
        on = self._mask(active)[pre] & valid
        perm = np.clip(self.perm[segs] + np.where(on, self.inc, -self.dec), 0.0, 1.0)
        alive = valid & (perm > 1e-5)
        self.presyn[segs] = np.where(alive, pre, -1)
        self.perm[segs] = np.where(alive, perm, 0.0).astype(np.float32)
        self.seg_used[segs] = self.steps
        want = np.where(add, self.new_syn - on.sum(1), 0)
        self._grow(segs, active, want)

    def _cells_for_new_segments(self, cols: np.ndarray) -> np.ndarray:
        """Per column, a random non-start cell with room for a segment."""
        if not len(cols):
            return _EMPTY
        cells = cols[:, None] * self.k + np.arange(1, self.k)
        full = self.segs_per_cell[cells] >= self.max_segs
        pick = np.argmin(self.rng.random(cells.shape) + 2.0 * full, axis=1)
        out = cells[np.arange(len(cols)), pick]
        for i in np.flatnonzero(full.all(1)):  # every cell full: free the stalest segment
            segs = np.flatnonzero(self.seg_cell[: self.n_segs] // self.k == cols[i])
            old = segs[np.argmin(self.seg_used[segs])]
            out[i] = self.seg_cell[old]
            self.presyn[old], self.perm[old] = -1, 0.0
            self.seg_cell[old] = -2  # retired: never active again
            self.segs_per_cell[out[i]] -= 1
        return out

    def _new_segments(self, cells: np.ndarray) -> np.ndarray:
        segs = super()._new_segments(cells)
        self.seg_used[segs] = self.steps
        return segs
