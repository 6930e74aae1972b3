"""Fuse runs of per-frame nodes into one generated function, so a chunk pays one call for them.

A run of consecutive per-frame nodes (in graph order) only reads values from before the run or
from inside it, so it is a function of its inputs' current frames: ``torch.fx`` writes it out as
straight-line Python, which runs without the executor's per-node bookkeeping.  Its streamed inputs
are aligned once, like any node with several inputs; sizes inside are computed from the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx

from streamwise.convert.graph_stream import Plan
from streamwise.convert.node_ops import Chunk, Framewise, NodeOp
from streamwise.convert.statics import Statics
from streamwise.convert.trace import ValueInfo

TimeSizes = Callable[[fx.Node], list[fx.Node]]


class Fused(NodeOp):
    """Several per-frame nodes run by one generated function; returns one value per output."""

    how = "per frame (fused)"

    def __init__(self, code: fx.GraphModule, consts: list[fx.Node], statics: Statics,
                 sized: list[fx.Node]) -> None:
        self.code, self.consts, self.statics, self.sized = code, consts, statics, sized

    def step(self, ins: list[Any], state: Any, chunk: Chunk) -> tuple[Any, Any]:
        # streams read only for their batch or channel count come as empty frames
        sized = [chunk.empty(n) for n in self.sized]
        return self.code(*ins, *sized, *[self.statics.get(n) for n in self.consts]), state


def fuse(gm: fx.GraphModule, plans: list[Plan], info: dict[fx.Node, ValueInfo],
         statics: Statics, time_sizes: TimeSizes) -> list[Plan]:
    """``plans`` with every run of two or more fusable per-frame nodes replaced by one."""
    out: list[Plan] = []
    run: list[Plan] = []

    def close() -> None:
        if len(run) >= 2:
            out.append(_fused(gm, run, info, statics, time_sizes))
        else:
            out.extend(run)
        run.clear()

    for p in plans:
        if (p.kind == "stream" and isinstance(p.op, Framewise) and p.args
                and p.template is not None and p.op.stride == 1
                and all(isinstance(info[a].values[0], Tensor) for a in p.args)):
            if run and info[p.node].lengths != info[run[0].node].lengths:
                close()  # another frame count (a rate or a crop between): aligned apart
            run.append(p)
        else:
            close()
            out.append(p)
    close()
    return out


def _fused(gm: fx.GraphModule, run: list[Plan], info: dict[fx.Node, ValueInfo],
           statics: Statics, time_sizes: TimeSizes) -> Plan:
    region = {p.node for p in run}
    streams: list[fx.Node] = []
    sized: list[fx.Node] = []  # streams whose batch or channels only are read
    consts: list[fx.Node] = []
    shapes: set[fx.Node] = set()

    def scan(a: fx.Node) -> None:
        if a in region or a in shapes:
            return
        kind = info[a].kind
        if kind in ("stream", "input"):
            if a not in streams:
                streams.append(a)
        elif kind == "static":
            if a not in consts:
                consts.append(a)
        else:  # a size: computed inside from what it reads
            shapes.add(a)
            for b in a.all_input_nodes:
                if info[b].kind in ("stream", "input") and b not in region:
                    if b not in sized:
                        sized.append(b)
                else:
                    scan(b)

    for p in run:
        for a in p.node.all_input_nodes:
            scan(a)
            if info[a].kind == "shape":
                for src in time_sizes(a):  # a length read from a stream: aligned with the rest
                    if src not in region and src not in streams:
                        streams.append(src)
    sized = [b for b in sized if b not in streams]
    g = fx.Graph()
    mapping: dict[fx.Node, fx.Node] = {}
    for i, a in enumerate(streams):
        mapping[a] = g.placeholder(f"stream_{i}")
    for i, a in enumerate(sized):
        mapping[a] = g.placeholder(f"sized_{i}")
    for i, a in enumerate(consts):
        mapping[a] = g.placeholder(f"const_{i}")

    def arg(a: fx.Node) -> fx.Node:
        if a not in mapping:  # a size node, copied before its first user
            mapping[a] = g.node_copy(a, arg)
        return mapping[a]

    for p in run:
        mapping[p.node] = g.node_copy(p.node, arg)
    outs = tuple(p.node for p in run if any(u not in region for u in p.node.users))
    g.output(tuple(mapping[o] for o in outs))
    code = fx.GraphModule(gm, g, "FusedFrames")
    op = Fused(code, consts, statics, sized)
    name = f"{run[0].name}..{run[-1].name}"
    axes = tuple(info[a].time_axis or 0 for a in streams)
    return Plan(outs[0], name, "stream", op, tuple(streams), axes, None, outs)
