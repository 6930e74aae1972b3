"""Pads and crops of the time axis: ``F.pad`` and slicing recognised and streamed exactly.

A pad of fixed amounts writes its left frames before the first chunk and its right ones at the
end (``Pad``); a slice with fixed margins drops its start and holds back what might be among the
last frames until later ones arrive (``Crop``).  Amounts that depend on the length are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx

from streamwise.convert.length_sizes import end_crop, end_pad, length_sources
from streamwise.convert.node_ops import Crop, NodeOp, Pad, pad_fn
from streamwise.convert.probe import probe
from streamwise.convert.sizes import time_sizes
from streamwise.convert.statics import Traced
from streamwise.convert.trace import Unstreamable, bind_args, nodes_in


def pad_op(t: Traced, node: fx.Node, stream_args: list[fx.Node], axis: int | None) -> NodeOp:
    """``F.pad``: streamed by ``Pad`` where it pads time, per frame where it pads other axes;
    an amount after the end computed from a length is computed at the end (``EndPad``)."""
    a = bind_args(node, ["input", "pad", "mode", "value"], {"mode": "constant", "value": None})
    ndim = t.ndim(node.args[0]) or 3
    assert axis is not None
    i = ndim - 1 - axis
    entries = list(a["pad"])[2 * i: 2 * i + 2] if isinstance(a["pad"], (list, tuple)) else []
    # computed from one stream's length: at the end (from several, fixed amounts only)
    sized = len(length_sources(t, entries)) == 1
    pads = [list(t.concrete(a["pad"], r)) for r in (0, 1)]
    if pads[0] != pads[1] and not (sized and _others(pads[0], i) == _others(pads[1], i)):
        raise Unstreamable(f"pads by amounts that depend on the sequence length ({pads[0]} "
                           f"vs {pads[1]})", "pad by fixed amounts (a stream has no length)")
    pad = [int(v) for v in pads[0]]
    pl, pr = (pad[2 * i], pad[2 * i + 1]) if 2 * i + 1 < len(pad) else (0, 0)
    mode, value = a["mode"], float(a["value"] or 0.0)
    if pl == pr == 0 and not sized:
        return probe(t, node, stream_args)  # pads other axes only: per frame
    if pl < 0 or pr < 0:
        raise Unstreamable("crops time with a negative pad", "slice instead")
    if mode not in ("constant", "replicate", "reflect"):
        raise Unstreamable(f"pads time with mode {mode!r}", "use constant, replicate or "
                           "reflect")
    rest_pad = list(pad)
    if 2 * i + 1 < len(pad):
        rest_pad[2 * i] = rest_pad[2 * i + 1] = 0
    rest = pad_fn(rest_pad, mode, value)
    src = node.args[0]
    assert isinstance(src, fx.Node)
    if not sized and (pl or pr) and length_sources(t, entries):
        raise Unstreamable("pads time by an amount computed from the sizes of several streams "
                           "(it depends on where they end)", "pad by fixed amounts, or pad "
                           "the input before streaming")
    op = (end_pad(t, entries, src, axis, mode, value, rest) if sized
          else Pad(axis, pl, pr, mode, value, rest))
    op.out_axis = t.info[node].time_axis or axis
    return op


def _others(pad: list[Any], i: int) -> list[Any]:
    """The amounts of a pad besides those of axis ``i`` (counted from the last)."""
    return pad[:2 * i] + pad[2 * i + 2:]


def crop_op(t: Traced, node: fx.Node, stream_args: list[fx.Node], axis: int | None) -> NodeOp:
    """``x[..., a:b:s]``: streamed by ``Crop`` where it slices time, per frame otherwise."""
    src = node.args[0]
    assert isinstance(src, fx.Node) and axis is not None
    ndim = t.info[src].values[0].dim()
    idx = node.args[1]
    parts = list(idx) if isinstance(idx, tuple) else [idx]
    pos = _axis_entry(parts, ndim, axis)
    entry = parts[pos] if pos is not None else slice(None)
    if isinstance(entry, slice) and entry == slice(None):
        return probe(t, node, stream_args)
    if not isinstance(entry, slice):
        raise Unstreamable("indexes one time frame (or a fixed set of frames)",
                           "slice a range instead, or reduce over channels")
    assert pos is not None
    lengths = t.info[src].lengths
    spans = []
    for run, length in enumerate(lengths):
        sl = t.concrete(entry, run)
        start, stop, step = slice(sl.start, sl.stop, sl.step).indices(length)
        spans.append((start, length - stop, step))
    if (spans[0][0], spans[0][2]) == (spans[1][0], spans[1][2]) and spans[0][2] >= 1:
        crop = end_crop(t, entry, src, axis, _rest(t, parts, pos))
        if crop is not None:  # the end follows a length: cut where the stream ends
            crop.out_axis = t.info[node].time_axis or axis
            return crop
    if spans[0] != spans[1] or spans[0][2] < 1:
        raise Unstreamable(f"slices time at places that depend on its length ({spans[0]} vs "
                           f"{spans[1]} as (drop at start, drop at end, step))",
                           "crop a fixed number of frames from either end")
    start, end_drop, step = spans[0]
    crop = Crop(axis, start, step, end_drop, _rest(t, parts, pos))
    crop.out_axis = t.info[node].time_axis or axis
    crop.from_sizes = any(time_sizes(t.info, n) for n in nodes_in(entry))
    return crop


def _rest(t: Traced, parts: list[Any], pos: int) -> Callable[[Tensor], Tensor] | None:
    """The indexing of the other axes, applied to each chunk (None where there is none)."""
    if not (len([p for p in parts if p is not Ellipsis and p is not None]) > 1 or any(
            p is None for p in parts)):
        return None
    parts2 = list(parts)
    parts2[pos] = slice(None)
    index: Any = fx.node.map_arg(tuple(parts2), lambda n: t.info[n].values[0])

    def rest(x: Tensor) -> Tensor:
        return x[index]

    return rest


def _axis_entry(parts: list[Any], ndim: int, axis: int) -> int | None:
    """Index into ``parts`` of the entry that addresses tensor axis ``axis``."""
    consumed = [p for p in parts if p is not None and p is not Ellipsis]
    dim = 0
    for i, p in enumerate(parts):
        if p is None:
            continue
        if p is Ellipsis:
            skip = ndim - len(consumed)
            if dim <= axis < dim + skip:
                return None
            dim += skip
            continue
        if dim == axis:
            return i
        dim += 1
    return None
