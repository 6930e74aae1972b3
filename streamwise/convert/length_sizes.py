"""Pads and crops whose END follows the sequence length: the amount computed at the stream's end.

``F.pad(x, (0, valid_length(T) - T))`` pads to a length the model likes, ``x[..., :length]``
cuts the output back to the input's length: a stream knows where it starts, and where it ends
once it ends.  So the right amount of such a pad, and the stop of such a crop, are computed at
``flush`` from the total length of the stream they read it from, by evaluating again the size
arithmetic the trace recorded between ``x.shape[-1]`` and the amount (``LengthExpr``: the same
code, on a shape-only tensor of the final length, checked against the probes).  Amounts at the
start (a left pad, a crop's start) and steps that follow the length stay refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx

from streamwise.convert.node_ops import Chunk, Crop, Pad
from streamwise.convert.sized_trace import _WHY, TIME
from streamwise.convert.sizes import time_sizes
from streamwise.convert.statics import Traced
from streamwise.convert.trace import Unstreamable, nodes_in, stream_tensor, target
from streamwise.core.state import Spec, clock

#: source lengths at which an amount is evaluated to bound it and check its shape
_NEAR, _SMALL = 128, 64


class LengthExpr:
    """The value of ``arg`` (sizes computed from one stream's length) at any length of it."""

    def __init__(self, t: Traced, arg: Any, source: fx.Node) -> None:
        self.t, self.arg, self.source = t, arg, source
        v = stream_tensor(source, t.info[source].values[0], t.gm)
        if v is None or t.info[source].time_axis is None:  # noqa: SIM102
            raise Unstreamable("computes an amount from the size of a value that is not one "
                               "tensor", "compute it from the tensor itself")
        self._shape, self._dtype = list(v.shape), v.dtype
        axis = t.info[source].time_axis
        assert axis is not None
        self._axis = axis
        for run in (0, 1):  # the recorded arithmetic, at the probes' lengths, gives their values
            if self(t.info[source].lengths[run]) != t.concrete(arg, run):
                raise Unstreamable("computes an amount from sizes in a way the converter "
                                   "cannot evaluate again", "pad or crop by fixed amounts")

    def __call__(self, length: int) -> Any:
        memo: dict[fx.Node, Any] = {}
        return fx.node.map_arg(self.arg, lambda n: self._eval(n, length, memo))

    def at(self, lengths: list[int]) -> dict[int, Any]:
        """The value at each of ``lengths`` where the model's arithmetic does not fail there."""
        out = {}
        for n in lengths:
            try:
                out[n] = self(n)
            except Exception:  # e.g. a negative pad a short input would make: not a stream's
                continue
        return out

    def _eval(self, n: fx.Node, length: int, memo: dict[fx.Node, Any]) -> Any:
        if n in memo:
            return memo[n]
        v = self.t.info[n]
        if n is self.source or v.kind in ("stream", "input"):
            t = stream_tensor(n, v.values[0], self.t.gm)
            if t is None:
                raise Unstreamable("reads the size of a value that is not one tensor",
                                   "compute it from the tensor itself")
            shape = list(t.shape)
            if n is self.source:
                shape[self._axis] = length
            out: Any = torch.empty(shape, dtype=t.dtype, device="meta")
        elif v.kind == "static":
            out = v.values[0]
        elif v.kind == "shape":
            args, kwargs = fx.node.map_arg((n.args, n.kwargs),
                                           lambda a: self._eval(a, length, memo))
            out = target(self.t.gm, n)(*args, **kwargs)
        else:
            raise Unstreamable("computes an amount from the input's values",
                               "pad or crop by fixed amounts")
        memo[n] = out
        return out


def length_sources(t: Traced, args: Any) -> list[fx.Node]:
    """The streams whose lengths the nodes in ``args`` read."""
    found: list[fx.Node] = []
    for n in nodes_in(args):
        for s in time_sizes(t.info, n):
            if s not in found:
                found.append(s)
    return found


def length_source(t: Traced, args: Any) -> fx.Node | None:
    """The one stream whose length the nodes in ``args`` read (None: they read none); refused
    where they read several."""
    found = length_sources(t, args)
    if len(found) > 1:
        raise Unstreamable(f"computes an amount from the lengths of {len(found)} streams "
                           f"({', '.join(s.name for s in found)})",
                           "compute it from one tensor's length")
    return found[0] if found else None


def _sweep(t: Traced, source: fx.Node) -> list[int]:
    n = t.info[source].lengths[0]
    return sorted(set(range(_SMALL + 1)) | set(range(max(0, n - _NEAR), n + _NEAR + 1)))


def _refuse_start(what: str) -> Unstreamable:
    why, fix = _WHY[TIME]
    return Unstreamable(f"{what} by an amount that {why}", fix)


def end_pad(t: Traced, entries: list[Any], own: fx.Node, axis: int, mode: str, value: float,
            rest: Callable[[Tensor], Tensor] | None) -> Pad:
    """``F.pad`` of time whose right amount follows a length: ``EndPad``."""
    source = length_source(t, entries)
    assert source is not None
    left, right = (LengthExpr(t, e, source) if nodes_in(e) else None for e in entries)
    lengths = _sweep(t, source)
    pl = int(entries[0]) if left is None else None
    if left is not None:
        lefts = set(left.at(lengths).values())
        if len(lefts) != 1:
            raise _refuse_start("pads the start of time")
        pl = int(lefts.pop())
    assert pl is not None
    if right is None:  # the left amount was read from sizes but is the same at every length
        return Pad(axis, pl, int(entries[1]), mode, value, rest)
    rights = [int(r) for r in right.at(lengths).values()]
    if pl < 0 or int(t.concrete(entries[1], 0)) < 0:
        raise Unstreamable("crops time with a negative pad", "slice instead")
    return EndPad(axis, pl, right, max(rights, default=0), mode, value, rest,
                  None if source is own else source)


def end_crop(t: Traced, entry: Any, own: fx.Node, axis: int,
             rest: Callable[[Tensor], Tensor] | None) -> Crop | None:
    """``x[..., a:stop]`` whose stop follows a length (``a`` and the step fixed): ``EndCrop``;
    None where the crop is not of that kind (the caller fixes its bounds at the probes)."""
    if nodes_in(entry.start) or nodes_in(entry.step) or not nodes_in(entry.stop):
        return None
    source = length_source(t, entry.stop)
    if source is None:
        return None
    stop = LengthExpr(t, entry.stop, source)
    start, step = entry.start or 0, entry.step or 1
    if start < 0 or step < 1:
        return None
    lengths = _sweep(t, source)
    stops = stop.at(lengths)
    if source is own:  # the end, where it is now, never moves back as the stream grows
        ends = {n: slice(start, s, step).indices(n)[1] for n, s in stops.items()}
    elif all(s is None or s >= 0 for s in stops.values()):
        ends = {n: s for n, s in stops.items()}
    else:
        return None
    seq = [ends[n] for n in sorted(ends)]
    if any(e is None for e in seq) or any(b < a for a, b in zip(seq, seq[1:])):
        return None
    n0 = t.info[own].lengths[0]
    hold = n0 - ends[n0] if source is own and n0 in ends else 0
    return EndCrop(axis, start, step, stop, hold, None if source is own else source, rest)


def _frames(chunk: Chunk, node: fx.Node, axis: int) -> int:
    v = chunk.values.get(node)
    if isinstance(v, (tuple, list)):
        v = v[0]
    return 0 if v is None else int(v.shape[axis])


class _Counted:
    """An op that counts the frames of the stream its amount reads (where not its own input)."""

    counted: tuple[fx.Node, int] | None

    def _source(self, expr: LengthExpr, counted: fx.Node | None) -> str:
        """Set what is counted; the words naming whose length the amount follows."""
        self.counted = None if counted is None else (counted, _axis_of(expr, counted))
        return "its input's" if counted is None else f"`{counted.name}`'s"

    def _clocks(self, kept: str, leaf: Any) -> Spec:
        """The state: the input's clock, the frames ``kept``, the counted stream's clock (their
        values are read: a stream steps with others only at equal clocks)."""
        spec = {"t_in": clock(rebase=False), kept: leaf}
        if self.counted is not None:
            spec["t_src"] = clock(rebase=False)
        return spec

    def _count(self, state: Any, new: dict[str, Any], chunk: Chunk) -> dict[str, Any]:
        if self.counted is not None:
            new["t_src"] = state["t_src"] + _frames(chunk, *self.counted)
        return new

    def _total(self, state: Any) -> int:
        return int(state["t_src"] if self.counted is not None else state["t_in"])


class EndPad(_Counted, Pad):
    """``F.pad`` of time whose right amount follows a length: computed at ``flush`` from the
    total length of the stream it reads (its own input, or the one it counts)."""

    def __init__(self, axis: int, left: int, right: LengthExpr, bound: int, mode: str,
                 value: float, rest: Callable[[Tensor], Tensor] | None,
                 counted: fx.Node | None) -> None:
        super().__init__(axis, left, bound, mode, value, rest)
        self.amount = right
        src = self._source(right, counted)
        self.how = (f"pad ({mode}, {left} frames before, after: computed at the end from "
                    f"{src} length)")

    def state_spec(self) -> Spec:
        return self._clocks("last", super().state_spec()["last"])

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        y, new = super().step(ins, state, chunk)
        return y, self._count(state, new, chunk)

    def flush(self, state: Any) -> tuple[Any, Any]:
        right = int(self.amount(self._total(state)))
        if right < 0:
            raise RuntimeError(f"a pad computed from the length is negative ({right}) at "
                               f"length {self._total(state)}")
        if right > self.right and self.mode == "reflect":
            raise RuntimeError(f"a reflect pad computed from the length ({right}) exceeds the "
                               f"frames kept for it ({self.right})")
        return self._end(state, right)


class EndCrop(_Counted, Crop):
    """``x[..., a:stop]`` whose stop follows a length: frames go out up to the stop where it
    is now (it never moves back as the stream grows, checked at conversion); ``flush`` cuts at
    the stop of the total length."""

    def __init__(self, axis: int, start: int, step: int, stop: LengthExpr, hold: int,
                 counted: fx.Node | None, rest: Callable[[Tensor], Tensor] | None) -> None:
        super().__init__(axis, start, step, hold, rest)
        self.stop = stop
        src = self._source(stop, counted)
        self.how = (f"crop (drop {start} at the start, keep 1 of {step}, end computed from "
                    f"{src} length)")

    def state_spec(self) -> Spec:
        return self._clocks("held", super().state_spec()["held"])

    def _end_at(self, length: int, t_in: int) -> int:
        s = self.stop(length)
        if self.counted is None:
            return slice(self.start, s, self.every).indices(length)[1]
        return min(s, t_in) if s is not None else t_in

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        t_new = state["t_in"] + ins[0].shape[self.axis]
        new = self._count(state, {}, chunk)
        end = self._end_at(self._total({**state, **new, "t_in": t_new}), t_new)
        y, cut = self._cut(ins[0], state, end, hold=True)
        return y, {**cut, **new}

    def flush(self, state: Any) -> tuple[Any, Any]:
        held = state["held"]
        if held is None or not held.shape[self.axis]:
            return None, state
        end = self._end_at(self._total(state), state["t_in"])
        y, cut = self._cut(held.narrow(self.axis, 0, 0), state, end, hold=True)
        return y, {**state, **cut}


def _axis_of(expr: LengthExpr, node: fx.Node) -> int:
    axis = expr.t.info[node].time_axis
    assert axis is not None
    return axis
