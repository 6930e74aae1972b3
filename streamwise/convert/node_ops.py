"""The streaming form of one graph node: per frame, sliding window, crop, pad, recurrence, module.

Each op consumes the new frames of its streamed inputs (already aligned by frame index) and
returns the frames of its output that are now final.  Metadata is in the op's own input frames:
``delay`` (frames it waits past an output's own time), ``ahead`` (future frames an output reads),
``past`` (earlier frames it reads; None when unbounded) and ``stride`` (output per input frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import ANY, Leaf, Spec, clock, const, tensor
from streamwise.layers.rnn import recurrent_step
from streamwise.layers.window import TimeWindow


@dataclass(frozen=True)
class Chunk:
    """What one executor step knows besides an op's own inputs, passed down the call (never
    stored): the values computed so far in this step, and empty frames of any stream (for a
    batch or channel count read from a stream with no chunk at hand)."""

    values: dict[fx.Node, Any]
    empty: Callable[[fx.Node], Any]


Call = Callable[[list[Any], Chunk], Any]


def value_leaf(time_axis: int) -> Leaf:
    """Frames of a graph value held between chunks (made on the first chunk).  A converted
    graph's values keep the example's layout: the batch is axis 0, or axis 1 where time is axis
    0 (a time-first recurrent layer's values); their other sizes come from the first chunk."""
    if time_axis == 0:  # [T, B, ...]
        return tensor(None, "B", ANY, batch_axis=1, grows=0, lazy=True)
    return tensor("B", ANY, lazy=True)


class NodeOp:
    """Base: a stateless per-frame op (output frame j from input frames j*rate ... only)."""

    how = "per frame"
    delay = Fraction(0)
    ahead = Fraction(0)
    past: Fraction | None = Fraction(0)
    stride = Fraction(1)

    def state_spec(self) -> Spec:
        """The op's state, declared (``core/state.py``); the converted graph's ``init_state``
        builds from it.  Per-frame ops hold nothing."""
        return const(None)

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        raise NotImplementedError

    def flush(self, state: Any) -> tuple[Any, Any]:
        return None, state


class Framewise(NodeOp):
    """The node's own function applied to each chunk: it never mixes frames (checked by probes)."""

    def __init__(self, call: Call, rate: int = 1) -> None:
        self.call, self.stride = call, Fraction(rate)
        self.args: list[Any] | None = None  # the streamed inputs it takes, sizes' sources included
        self.how = "per frame" if rate == 1 else f"per frame, {rate} frames each"

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        return self.call(ins, chunk), state


class ModuleOp(NodeOp):
    """A streaming module (the user's own streamwise layers, or one built for a torch op)."""

    def __init__(self, module: StreamingModule, how: str) -> None:
        self.module, self.how = module, how
        self.stride, self.delay, self.ahead = module.stride, module.delay, module.delay
        rf = module.receptive_field
        self.past = Fraction(rf - 1) - module.delay if rf < 2**62 else None

    def state_spec(self) -> Spec:
        return self.module.state_spec()

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        return self.module.step(ins[0], state)

    def flush(self, state: Any) -> tuple[Any, Any]:
        return self.module.flush(state)


class Sliding(TimeWindow):
    """Any op that reads windows of ``span`` frames every ``hop`` frames (convs, pools, unfold).

    ``fn`` is the op with no padding on the time axis; the window machinery pads, buffers and
    aligns windows to the absolute frame index.  ``empty_shape`` is the output's shape with no
    frames, and the axis (the same in input and output) whose size is the batch's, where the
    converter knows them; otherwise the shape is learnt from ``fn`` once per input frame shape.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], span: int, hop: int, pad: tuple[int, int],
                 pad_value: float = 0.0, replicate: bool = False, out_axis: int = -1,
                 empty_shape: tuple[list[int], int | None] | None = None,
                 in_frame: tuple[Any, ...] | None = None) -> None:
        super().__init__()
        self.fn, self.out_axis, self.empty_shape = fn, out_axis, empty_shape
        self.in_frame = in_frame  # an input frame's shape besides batch and time, where known
        self._setup_window(span, hop, pad[0], pad[1], pad_value=pad_value, replicate=replicate)
        #: input frame shape -> empty output shape; a memo of a pure function (entries are only
        #: added, each whole), used where ``empty_shape`` is not given
        self._learnt: dict[tuple[int, ...], tuple[int, ...]] = {}

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        return self.fn(window)

    def _frame_shape(self, in_channels: int | None) -> tuple[Any, ...]:
        return self.in_frame if self.in_frame is not None else super()._frame_shape(in_channels)

    def _empty_out(self, x: Tensor) -> Tensor:
        if self.empty_shape is not None:
            shape, batch_axis = self.empty_shape
            if batch_axis is not None:
                shape = list(shape)
                shape[batch_axis] = x.shape[batch_axis]
            return x.new_zeros(shape)
        key = tuple(x.shape[:-1])
        learnt = self._learnt.get(key)
        if learnt is None:
            out = list(self.fn(x.new_zeros(*key, self._span)).shape)
            out[self.out_axis] = 0
            learnt = self._learnt[key] = tuple(out)
        return x.new_zeros(learnt)


class Recurrent(NodeOp):
    """``nn.RNN``/``nn.GRU``/``nn.LSTM`` (unidirectional): the hidden state carries over chunks."""

    past = None

    def __init__(self, rnn: nn.RNNBase) -> None:
        self.rnn = rnn
        self.how = f"recurrent ({type(rnn).__name__}, hidden state kept)"

    def state_spec(self) -> Spec:
        r = self.rnn
        out = r.proj_size if getattr(r, "proj_size", 0) else r.hidden_size
        h = tensor(r.num_layers, "B", out, batch_axis=1)
        if isinstance(r, nn.LSTM):
            return (h, tensor(r.num_layers, "B", r.hidden_size, batch_axis=1))
        return h

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        y, h = recurrent_step(self.rnn, ins[0], state)
        return (y, h), h


class Crop(NodeOp):
    """Keeps frames ``start, start + step, ...`` up to ``end_drop`` frames before the end.

    Frames that might be among the last ``end_drop`` are held back until later frames arrive;
    ``flush`` drops them.  ``rest`` applies the non-time part of the indexing to each chunk.
    """

    def __init__(self, axis: int, start: int, step: int, end_drop: int,
                 rest: Callable[[Tensor], Tensor] | None = None) -> None:
        self.axis, self.start, self.every, self.end_drop, self.rest = (
            axis, start, step, end_drop, rest)
        self.out_axis = axis  # where time is after ``rest`` (None indices may move it)
        self.from_sizes = False  # bounds computed from sizes: fixed for the example's lengths
        self.delay = Fraction(start + end_drop)
        self.ahead = Fraction(start)
        self.past = Fraction(-start)
        self.stride = Fraction(1, step)
        self.how = (f"crop (drop {start} at the start, keep 1 of {step}, "
                    f"hold {end_drop} for the end)")

    def state_spec(self) -> Spec:
        # ``held``: frames that might be among the last ``end_drop`` (made on the first chunk)
        return {"t_in": clock(), "held": value_leaf(self.axis)}

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        t_new = state["t_in"] + ins[0].shape[self.axis]
        return self._cut(ins[0], state, t_new - self.end_drop, bool(self.end_drop))

    def _cut(self, x: Tensor, state: Any, final_end: int, hold: bool) -> tuple[Any, Any]:
        """The kept frames before ``final_end`` (absolute), from the held ones and ``x``; the
        frames from there on are held where ``hold``."""
        ax = self.axis
        held = state["held"]
        buf = x if held is None else torch.cat([held, x], ax)
        t_new = state["t_in"] + x.shape[ax]
        first = t_new - buf.shape[ax]  # absolute index of buf's first frame
        lo = max(first, self.start)
        if lo > self.start:  # first kept index at or after lo
            lo = self.start + -(-(lo - self.start) // self.every) * self.every
        idx = torch.arange(lo, max(lo, final_end), self.every, device=x.device) - first
        y = buf.index_select(ax, idx)
        keep = max(final_end, first) - first
        new_held = buf.narrow(ax, keep, buf.shape[ax] - keep).clone() if hold else None
        return _apply_rest(self.rest, y, ax, self.out_axis), {"t_in": t_new, "held": new_held}


class Pad(NodeOp):
    """``F.pad`` on the time axis: left frames before the first chunk, right ones at ``flush``.

    Constant, replicate and reflect modes.  ``rest`` pads the other axes of each chunk.
    """

    def __init__(self, axis: int, left: int, right: int, mode: str, value: float,
                 rest: Callable[[Tensor], Tensor] | None) -> None:
        self.axis, self.left, self.right, self.mode, self.value = axis, left, right, mode, value
        self.out_axis = axis
        self.rest = rest
        self.delay = Fraction(-left)
        self.past = Fraction(left)
        self.ahead = Fraction(-left)
        self.how = f"pad ({mode}, {left} frames before, {right} after)"

    @property
    def _need(self) -> int:
        """Frames the left pad needs before it can be written (reflect reads frames 1..left)."""
        return self.left + 1 if self.mode == "reflect" else (1 if self.mode == "replicate" else 0)

    def state_spec(self) -> Spec:
        # ``last``: the frames kept (all of them until the left pad is written, then what the
        # right pad reads); one leaf whatever the phase, so states of several streams stack
        return {"t_in": clock(), "last": value_leaf(self.axis)}

    def _const(self, like: Tensor, n: int) -> Tensor:
        shape = list(like.shape)
        shape[self.axis] = n
        return like.new_full(shape, self.value)

    def _frames(self, x: Tensor, idx: list[int]) -> Tensor:
        return x.index_select(self.axis, torch.tensor(idx, dtype=torch.long, device=x.device))

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        x, ax, need = ins[0], self.axis, self._need
        seen = state["t_in"]
        last = x if state["last"] is None else torch.cat([state["last"], x], ax)
        keep = max(self.right + 1, need)
        new = {"t_in": seen + x.shape[ax],
               "last": last.narrow(ax, max(0, last.shape[ax] - keep),
                                   min(keep, last.shape[ax])).clone()}
        started = seen >= need and (seen > 0 or need == 0) and state["last"] is not None
        if not started:
            if last.shape[ax] < need:  # ``last`` holds every frame so far
                return self._out(last.narrow(ax, 0, 0)), new
            x = torch.cat([self._head(last), last], ax)
        return self._out(x), new

    def _head(self, x: Tensor) -> Tensor:
        if self.mode == "constant":
            return self._const(x, self.left)
        if self.mode == "replicate":
            return self._frames(x, [0] * self.left)
        return self._frames(x, list(range(self.left, 0, -1)))

    def _out(self, x: Tensor) -> Tensor:
        return _apply_rest(self.rest, x, self.axis, self.out_axis)

    def flush(self, state: Any) -> tuple[Any, Any]:
        return self._end(state, self.right)

    def _end(self, state: Any, right: int) -> tuple[Any, Any]:
        """The frames after the last chunk: ``right`` of them (and the left pad where the
        stream was too short to write it)."""
        last = state["last"]  # the executor steps every op (with an empty tail at least) first
        if last is None or (not last.shape[self.axis] and self.mode != "constant"):
            return None, state
        head = None
        if state["t_in"] < self._need:  # the whole stream is shorter than the left pad needs
            head = torch.cat([self._head(last), last], self.axis)
        n = last.shape[self.axis]
        if self.mode == "constant":
            tail = self._const(last, right)
        elif self.mode == "replicate":
            tail = self._frames(last, [n - 1] * right)
        else:
            tail = self._frames(last, list(range(n - 2, n - 2 - right, -1)))
        out = tail if head is None else torch.cat([head, tail], self.axis)
        return self._out(out), state


def _apply_rest(rest: Callable[[Tensor], Tensor] | None, x: Tensor, axis: int,
                out_axis: int) -> Tensor:
    """``rest`` (the non-time part of an op) on a chunk; on an empty chunk, on one dummy frame
    cut back to none (reflect padding and friends refuse empty tensors)."""
    if rest is None:
        return x
    if x.shape[axis]:
        return rest(x)
    shape = list(x.shape)
    shape[axis] = 1
    return rest(x.new_zeros(shape)).narrow(out_axis, 0, 0)


def pad_fn(pad: list[int], mode: str, value: float) -> Callable[[Tensor], Tensor] | None:
    """``F.pad`` with the given amounts, or None when they are all zero."""
    if not any(pad):
        return None
    if mode == "constant":
        return lambda x: F.pad(x, pad, mode=mode, value=value)
    return lambda x: F.pad(x, pad, mode=mode)
