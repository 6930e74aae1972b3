"""``OnnxStream.reset(mask)``: restarted rows go through the ``start`` program again, on their own.

A restart falls on a chunk boundary of the batch (``frames_in = prologue + k*chunk``, nothing
pending), at input frame ``F``.  The batch goes on stepping every row; for the next ``P`` frames
(``P`` the prologue) the restarted rows' inputs are also kept, and the batch's outputs are held.
When the ``P``-th frame has been stepped, ``start`` runs on the restarted rows' ``P`` frames alone:
its state rows replace theirs in the batch's state (scattered on each batch axis), and in the held
outputs their rows become ``Z`` zeros then ``start``'s ``out_start`` outputs, where
``Z = P*stride - out_start`` is what lookahead held back of the old stream (``core.Stream.reset``
gives those positions as zeros too).  Since ``P`` is a multiple of the chunk, the new streams stay
on the batch's chunk boundaries from then on.  The held outputs come out in that push: the other
rows' outputs of those ``P`` frames wait for it (no wait where ``P`` equals the chunk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
#: ``m`` below is an ``OnnxModel`` (or ``ExecutorchModel``): its ``start``, ``names``, ``axes``,
#: ``row_size``, ``prologue``, ``stride``, ``contract`` (not imported: onnx_stream imports this)
Model = Any


@dataclass
class Restart:
    """Rows restarted at one chunk boundary whose ``start`` has not run yet."""

    rows: np.ndarray  # indices of the restarted rows
    xs: list[np.ndarray] = field(default_factory=list)  # their input chunks since the restart
    held: list[np.ndarray] = field(default_factory=list)  # the batch's outputs since then

    def frames(self, axis: int) -> int:
        return sum(x.shape[axis] for x in self.xs)

    def keep(self, chunk: np.ndarray, y: np.ndarray) -> None:
        """One stepped chunk of the batch and its output."""
        self.xs.append(chunk[self.rows])
        self.held.append(y)

    def finish(self, m: Model, state: Arrays) -> tuple[np.ndarray, Arrays]:
        """Run ``start`` on the restarted rows; the held outputs with their rows replaced, and
        the batch's state with their rows replaced."""
        tax, oax = m.time_axis % self.xs[0].ndim, m.out_time_axis % self.held[0].ndim
        y_new, fresh = m.start(np.ascontiguousarray(np.concatenate(self.xs, tax)))
        held = np.concatenate(self.held, oax)
        pad_shape = list(y_new.shape)
        pad_shape[oax] = held_back(m)
        rows = np.concatenate([np.zeros(pad_shape, held.dtype), y_new], oax)
        # an early close steps less than the prologue: keep what the batch stepped
        held[self.rows] = np.take(rows, np.arange(held.shape[oax]), axis=oax)
        new = {}
        for n in m.names:
            ax = m.axes[n]
            if ax is None:
                new[n] = state[n]
                continue
            v = np.array(state[n], copy=True)
            per_row = m.row_size[n]  # a row's extent on the batch axis (rows are contiguous)
            at = (self.rows[:, None] * per_row + np.arange(per_row)).ravel()
            where: list[Any] = [slice(None)] * v.ndim
            where[ax] = at
            v[tuple(where)] = fresh[n]
            new[n] = v
        return held, new



def held_back(m: Model) -> int:
    """``Z``: output frames of a prologue that lookahead holds back (``P*stride - out_start``)."""
    return int(m.prologue * m.stride) - int(m.contract["out_start"])
