"""``GraphStream``: a traced graph run chunk by chunk, one streaming op per node that carries time.

Each step walks the graph in order.  A node gets the new frames of its streamed inputs; where
several streams meet (a residual add, a skip concatenation, a gate), frames wait in a small queue
per input until every input has produced the same frame index, so the path with less delay is
delayed exactly as much as needed: the alignment buffers the issue asks for, found by construction
rather than computed by hand.  ``flush`` ends every op in order, feeding each one the tails of
the ops before it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, fx, nn

from streamwise.convert.node_ops import Chunk, Framewise, ModuleOp, NodeOp, value_leaf
from streamwise.convert.report import ConvertReport
from streamwise.core.protocol import (
    StreamingModule,
    ceil_frac,
    tree_nbytes,
)
from streamwise.core.state import Spec, clock, tensor
from streamwise.layers.window import keep_tail

Template = Callable[[int, Tensor], Tensor]


@dataclass
class Plan:
    """How one node runs in the stream."""

    node: fx.Node
    name: str
    kind: str  # "input" | "stream" | "output"
    op: NodeOp | None = None
    args: tuple[fx.Node, ...] = ()
    axes: tuple[int, ...] = ()  # time axis of each streamed input
    template: Template | None = None  # empty output for a batch (None for tuples)
    outs: tuple[fx.Node, ...] = ()  # a fused run of per-frame nodes: the values it gives out

    def __post_init__(self) -> None:
        self.multi = len(self.args) > 1
        # per-frame ops with tensor inputs, and fused runs, skip chunks of no frames
        self.skips_empty = bool(self.outs) or (isinstance(self.op, Framewise) and bool(self.args)
                                               and self.template is not None)


@dataclass
class Timing:
    """Static facts of a value, in input frames: rate, emission delay, reach ahead and back."""

    rate: Fraction
    delay: Fraction
    ahead: Fraction
    past: Fraction | None


@dataclass(frozen=True, eq=False)
class Layout:
    """Where time is: in the chunks (shaped like the example besides batch and time), in the
    output, and in every streamed value, with each value's empty-output template."""

    example_shape: tuple[int, ...]
    in_axis: int  # time axis of the input (-1 where last)
    out_axis: int  # time axis of the output (-1 where last)
    timing: Timing  # of the output
    axes: dict[fx.Node, int]  # time axis of every streamed value
    templates: dict[fx.Node, Template | None]


class GraphStream(StreamingModule):
    """A converted model: ``forward`` is the original graph, ``step`` streams it exactly.

    Built whole by ``convert``: ``startup`` is the measured start-up lag where it exceeds the
    graph's delay, ``report`` what the conversion found, ``source`` (example, time_dim, convert
    keyword arguments) how to convert a copy again.
    """

    def __init__(self, gm: fx.GraphModule, plans: list[Plan], layout: Layout, *,
                 startup: Fraction = Fraction(0), report: ConvertReport | None = None,
                 source: tuple[Tensor, int, dict[str, Any]] | None = None,
                 min_length: int | None = None) -> None:
        super().__init__()
        self.graph_module = gm
        self.plans, self.timing = plans, layout.timing
        self._in_axis, self._out_axis = layout.in_axis, layout.out_axis
        self._node_axes, self._templates = layout.axes, layout.templates
        shape = layout.example_shape
        self.in_ndim = len(shape)
        axis = layout.in_axis % len(shape)
        #: the chunk shape checked per step: the example's besides batch and time
        self._frame = [None if i in (0, axis) else n for i, n in enumerate(shape)]
        if len(shape) >= 3:  # [B, T] has no channel axis
            self.fixed_in_channels = shape[-1] if axis == 1 else shape[1]
        # streaming modules built for torch ops (convs, pools, ...), so .to() and .double() reach
        # their buffers; torch's own parameters stay shared with graph_module
        self.built = nn.ModuleList(p.op.module for p in plans if isinstance(p.op, ModuleOp)
                                   and not _owned(gm, p.op.module))
        self.startup, self.report = startup, report
        self.source = source if source is not None else (torch.zeros(0), -1, {})
        #: the shortest stream the conversion assumed (branches on the length were fixed for it)
        self.min_length = min_length

    # -- metadata ------------------------------------------------------------------------------
    @property
    def time_axis(self) -> int:
        return self._in_axis

    @property
    def out_time_axis(self) -> int:
        return self._out_axis

    @property
    def stride(self) -> Fraction:
        return self.timing.rate

    @property
    def delay(self) -> Fraction:
        return max(self.timing.delay, self.startup, Fraction(0))

    @property
    def receptive_field(self) -> int:
        t = self.timing
        return 2**62 if t.past is None else ceil_frac(t.past + t.ahead) + 1

    @property
    def period(self) -> int:
        return self.timing.rate.denominator

    def __deepcopy__(self, memo: dict[int, Any]) -> GraphStream:
        """A copy converted afresh from a copy of the graph (the streaming ops hold functions
        bound to this model's modules, which a plain deep copy would share)."""
        from streamwise.convert.convert import convert

        gm = copy.deepcopy(self.graph_module, memo)
        example, time_dim, kwargs = self.source
        p = next((t for t in gm.parameters() if t.is_floating_point()), None)
        if p is not None and example.is_floating_point():  # the model may have been cast
            example = example.to(p)
        new = convert(gm, example.clone(), time_dim, verify=False, **kwargs)
        memo[id(self)] = new
        return new

    # -- offline ---------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.graph_module(x)

    # -- streaming -------------------------------------------------------------------------------
    def state_spec(self, in_channels: int | None = None) -> Spec:
        """Each op's declared state, the alignment queues' held frames, and ``proto``: the
        stream's batch, dtype and device as a tensor with a batch axis (so states of separate
        streams stack for a batched step).  ``init_state`` builds from it."""
        spec = {"nodes": {pl.name: pl.op.state_spec() for pl in self.plans if pl.op is not None},
                "queues": {pl.name: tuple(value_leaf(ax) for ax in pl.axes)
                           for pl in self.plans if len(pl.args) > 1},
                "proto": tensor("B", 0)}
        if self.min_length is not None:  # frames so far, checked against it at the end
            spec["frames"] = clock(rebase=False)
        return spec

    def step(self, x: Tensor, state: dict) -> tuple[Tensor, dict]:
        frame = self._frame
        if x.dim() != len(frame) or any(n is not None and n != m
                                        for n, m in zip(frame, x.shape)):
            want = ", ".join("B" if i == 0 else "T" if n is None else str(n)
                             for i, n in enumerate(frame))
            raise ValueError(f"expected a chunk shaped [{want}] (time on axis "
                             f"{self._in_axis}), got {list(x.shape)}")
        nodes, queues = dict(state["nodes"]), dict(state["queues"])
        chunk = self._chunk(state["proto"])
        env = chunk.values
        out: Any = None
        for p in self.plans:  # kept lean: a graph of a hundred small ops pays it every chunk
            if p.kind == "stream":
                ins = [env[a] for a in p.args]
                if p.multi:
                    ins, queues[p.name] = _align(ins, queues[p.name], p.axes, False, p.name)
                nodes[p.name] = self._advance(p, ins, nodes[p.name], chunk)
            elif p.kind == "input":
                env[p.node] = x
            else:
                out = env[p.args[0]]
        new = {"nodes": nodes, "queues": queues, "proto": state["proto"]}
        if "frames" in state:
            new["frames"] = state["frames"] + x.shape[self._in_axis]
        return out, new

    def flush(self, state: dict) -> tuple[Tensor, dict]:
        """The same walk as ``step`` with no new input: each op gets the tails of the ops before
        it (or no frames), then ends; an empty tail keeps its shape, so a stream closed early ends
        ``[B, C, 0]``."""
        if "frames" in state and self.min_length is not None and \
                0 < state["frames"] < self.min_length:
            raise ValueError(f"this stream has {state['frames']} frames; it was converted for "
                             f"streams of at least min_length={self.min_length} (branches on "
                             "the length were fixed for them)")
        nodes, queues = dict(state["nodes"]), dict(state["queues"])
        chunk = self._chunk(state["proto"])
        env = chunk.values
        out: Any = None
        for p in self.plans:
            if p.kind == "input":
                env[p.node] = None
            elif p.kind == "output":
                out = env[p.args[0]]
            else:
                assert p.op is not None
                ins = [chunk.empty(a) if env[a] is None else env[a] for a in p.args]
                if p.multi:
                    ins, queues[p.name] = _align(ins, queues[p.name], p.axes, True, p.name)
                st = self._advance(p, ins, nodes[p.name], chunk)
                tail, nodes[p.name] = p.op.flush(st)
                if tail is not None and tail.shape[self._node_axes[p.node]]:
                    env[p.node] = torch.cat([env[p.node], tail], self._node_axes[p.node])
        return out, {"nodes": nodes, "queues": queues, "proto": state["proto"]}

    def _chunk(self, proto: Tensor) -> Chunk:
        """This step's values (filled as the walk goes) and empty frames of any stream, for the
        batch, dtype and device of ``proto``: held in locals, never on the module."""
        templates = self._templates

        def empty(a: fx.Node) -> Any:
            template = templates.get(a)
            return None if template is None else template(proto.shape[0], proto)

        return Chunk({}, empty)

    def _advance(self, p: Plan, ins: list[Any], st: Any, chunk: Chunk) -> Any:
        """Run one plan on its aligned inputs, place its outputs in ``env``, return its state.

        Per-frame ops and fused runs skip chunks of no frames (some torch ops refuse them) and
        give empty outputs shaped like theirs instead."""
        assert p.op is not None
        env = chunk.values
        if p.skips_empty and all(isinstance(t, Tensor) and not t.shape[ax]
                                 for t, ax in zip(ins, p.axes)):
            for o in p.outs or (p.node,):
                env[o] = chunk.empty(o)
            return st
        y, st = p.op.step(ins, st, chunk)
        if p.outs:
            env.update(zip(p.outs, y))
        else:
            env[p.node] = y
        return st

    def state_nbytes(self, batch_size: int, dtype: torch.dtype = torch.float32,
                     in_channels: int | None = None) -> int:
        """Bytes of a fresh state; buffers grow on the first chunks (the report measures them)."""
        return tree_nbytes(self.init_state(batch_size, dtype=dtype))


def _owned(gm: nn.Module, m: nn.Module) -> bool:
    return any(m is sub for sub in gm.modules())


def _align(ins: list[Any], queue: tuple[Any, ...], axes: tuple[int, ...], final: bool,
           name: str) -> tuple[list[Any], tuple[Any, ...]]:
    """Frames of every input up to the shortest; the rest waits in the queue."""
    full = [t if q is None or q.shape[ax] == 0 else torch.cat([q, t], ax)
            for t, q, ax in zip(ins, queue, axes)]
    m = min(t.shape[ax] for t, ax in zip(full, axes))
    if all(t.shape[ax] == m for t, ax in zip(full, axes)):
        return full, (None,) * len(full)
    if final:
        raise RuntimeError(f"node {name}: its inputs ended with different lengths "
                           f"{[t.shape[ax] for t, ax in zip(full, axes)]}; the model itself "
                           "fails on an input of this length (its branches disagree)")
    head = [t.narrow(ax, 0, m) for t, ax in zip(full, axes)]
    rest = tuple(keep_tail(t.movedim(ax, -1), m).movedim(-1, ax) for t, ax in zip(full, axes))
    return head, rest
