"""Spatial pooler: a fixed-sparsity code of the input, learned by Hebbian permanence updates.

Each column has a potential pool (a random fraction of the inputs) with a permanence per
potential synapse; a synapse is connected when its permanence reaches ``connected``.  As in
Numenta's pooler, half the potential synapses start connected (permanence uniform in
``[connected, 1]``) and half not (uniform in ``[0, connected)``), so that the slow learning below
refines the columns' codes instead of reshuffling them.  A column's
overlap is its number of connected synapses onto active inputs; the ``active_columns`` columns
with the largest overlap win (global inhibition, ties broken by a fixed random order).  Learning
moves the winners' permanences towards the input: up by ``inc`` on active inputs, down by ``dec``
on inactive ones.  Vectorised with NumPy; deterministic for a seed.
"""

from __future__ import annotations

import numpy as np


class SpatialPooler:
    def __init__(
        self, inputs: int, columns: int = 2048, active_columns: int = 40,
        potential_fraction: float = 0.8, connected: float = 0.2, inc: float = 0.003,
        dec: float = 0.0005, seed: int = 0,
    ) -> None:
        if not 0 < active_columns <= columns or not 0 < potential_fraction <= 1:
            raise ValueError("need 0 < active_columns <= columns and 0 < potential_fraction <= 1")
        rng = np.random.default_rng(seed)
        self.inputs, self.columns, self.k = inputs, columns, active_columns
        self.connected, self.inc, self.dec = connected, inc, dec
        self.potential = rng.random((columns, inputs)) < potential_fraction
        # Numenta's initialisation: half the potential synapses connected, permanence uniform in
        # [connected, 1]; the rest uniform in [0, connected).  Far from the threshold, so the
        # code of an input stays stable while the pooler learns slowly.
        u = rng.random((columns, inputs))
        perm = np.where(rng.random((columns, inputs)) < 0.5, connected + (1.0 - connected) * u,
                        connected * u)
        self.permanence = np.where(self.potential, perm, 0.0).astype(np.float32)
        self.tiebreak = rng.random(columns) * 1e-3
        # connected synapses, input-major: an input's row is contiguous, so overlaps are fast
        self.connected_t = np.ascontiguousarray((self.permanence >= connected).T)

    def overlaps(self, active_inputs: np.ndarray) -> np.ndarray:
        return self.connected_t[active_inputs].sum(0, dtype=np.int64).astype(np.float64)

    def compute(self, active_inputs: np.ndarray, learn: bool = True) -> np.ndarray:
        """Sorted indices of the active columns for the active input bits."""
        active_inputs = np.asarray(active_inputs, dtype=np.int64)
        if active_inputs.size and (active_inputs.min() < 0 or active_inputs.max() >= self.inputs):
            raise ValueError(f"input bits must lie in [0, {self.inputs})")
        score = self.overlaps(active_inputs) + self.tiebreak
        winners = np.sort(np.argpartition(-score, self.k - 1)[: self.k])
        if learn:
            self._learn(winners, active_inputs)
        return winners

    def _learn(self, winners: np.ndarray, active_inputs: np.ndarray) -> None:
        rows = self.permanence[winners]
        on = np.zeros(self.inputs, dtype=bool)
        on[active_inputs] = True
        delta = np.where(on, self.inc, -self.dec).astype(np.float32)
        rows = np.where(self.potential[winners], np.clip(rows + delta, 0.0, 1.0), 0.0)
        self.permanence[winners] = rows
        self.connected_t[:, winners] = (rows >= self.connected).T
