"""The declared state (``core/state.py``) of each op a converted graph runs.

A converted graph's values keep the example's layout: the batch is axis 0, or axis 1 where time is
axis 0 (a time-first recurrent layer's values); their other sizes come from the first chunk.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from streamwise.convert.node_ops import Crop, ModuleOp, NodeOp, Pad, Recurrent
from streamwise.core.state import ANY, Leaf, Spec, clock, const, tensor


def value_leaf(time_axis: int) -> Leaf:
    """Frames of a graph value held between chunks (made on the first chunk)."""
    if time_axis == 0:  # [T, B, ...]
        return tensor(None, "B", ANY, batch_axis=1, grows=0, lazy=True)
    return tensor("B", ANY, lazy=True)


def node_spec(op: NodeOp) -> Spec:
    """What ``op.init_state`` builds, declared."""
    if isinstance(op, ModuleOp):
        return op.module.state_spec()
    if isinstance(op, Recurrent):
        r = op.rnn
        out = r.proj_size if getattr(r, "proj_size", 0) else r.hidden_size
        h = tensor(r.num_layers, "B", out, batch_axis=1)
        return (h, tensor(r.num_layers, "B", r.hidden_size, batch_axis=1)) if isinstance(
            r, nn.LSTM) else h
    if isinstance(op, Crop):  # frames of the next kept index, on the absolute clock
        return {"t_in": clock(), "held": value_leaf(op.axis)}
    if isinstance(op, Pad):
        return {"t_in": clock(), "last": value_leaf(op.axis)}
    return const(None)  # per-frame ops hold nothing


def graph_spec(nodes: dict[str, NodeOp], queues: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """A converted graph's state: each op's, the frames each multi-input op holds for its
    slower inputs (``queues``: name -> time axis of each input), and a proto tensor carrying
    the stream's batch, dtype and device."""
    return {"nodes": {name: node_spec(op) for name, op in nodes.items()},
            "queues": {name: tuple(value_leaf(ax) for ax in axes)
                       for name, axes in queues.items()},
            "proto": tensor("B", 0)}
