"""The per-frame probe: a node with no known streaming form must work frame by frame, and proves it.

The node runs on slices of its recorded inputs (several windows of the longer probe run) and must
give the same slices of its recorded output; then it streams as its own function applied to each
chunk (``Framewise``), its sizes recomputed from the chunk (``make_call``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx

from streamwise.convert.node_ops import Call, Chunk, Framewise, NodeOp
from streamwise.convert.sizes import size_sources
from streamwise.convert.statics import Statics, Traced
from streamwise.convert.trace import (
    Unstreamable,
    ValueInfo,
    node_name,
    nodes_in,
    stream_tensor,
    target,
)
from streamwise.layers.unstreamable import CANNOT_STREAM, WINDOW_FIX


def probe(t: Traced, node: fx.Node, stream_args: list[fx.Node]) -> NodeOp:
    """Framewise if the node, run on slices of its inputs, gives the slices of its output."""
    info = t.info
    # streams whose sizes the node reads come in as inputs too, aligned with the others
    stream_args = stream_args + [a for a in size_sources(t.info, node) if a not in stream_args]
    call = make_call(t.gm, node, stream_args, info, t.statics)
    # probed on the longer run: a short example could leave a value one frame long
    ref = stream_tensor(node, info[node].values[1], t.gm)
    assert ref is not None
    out_axis = info[node].time_axis
    base = stream_args[0] if stream_args else None
    if base is not None:
        if len({info[a].lengths for a in stream_args}) > 1:
            raise Unstreamable("combines streams of different lengths "
                               f"{[info[a].lengths[0] for a in stream_args]}",
                               "crop or pad them to equal lengths first")
        l_in = info[base].lengths
    else:
        l_in = info[node].lengths
    l_out = info[node].lengths
    r = l_out[0] // max(l_in[0], 1)
    if r < 1 or l_out[0] != r * l_in[0] or l_out[1] != r * l_in[1]:
        raise mixes(t.gm, node, f"changes the number of frames ({l_in[0]} -> {l_out[0]}) "
                          "in a way that is not a window, crop or pad")
    n = l_in[1]
    # empty chunks never reach a per-frame op (the executor emits an empty template)
    windows = sorted({(0, min(1, n)), (0, min(3, n)), (n // 2, min(n, n // 2 + 4)),
                      (n // 3, min(n, n // 3 + 17)), (max(0, n - 3), n)})
    # sizes read from streams of other lengths (the batch, channels) come from empty frames
    def empty(m: fx.Node) -> Tensor:
        return _narrow(info[m].values[1], info[m].time_axis, 0, 0)

    for a, b in windows:
        values = {m: _narrow(v.values[1], v.time_axis, a, b) for m, v in info.items()
                  if v.kind in ("stream", "input") and v.lengths == l_in
                  and isinstance(v.values[1], Tensor)}
        ins = [values.get(s, info[s].values[1]) for s in stream_args]
        try:
            out = call(ins, Chunk(values, empty))
        except Exception as e:
            raise mixes(t.gm, node, f"fails on a slice of its input ({type(e).__name__}: "
                              f"{e})") from e
        got = stream_tensor(node, out, t.gm)
        want = _narrow(ref, out_axis, r * a, r * b)
        if got is None or got.shape != want.shape or not _close(got, want):
            raise mixes(t.gm, node, "mixes time frames (its output on a slice of the input "
                              "differs from the slice of its output)")
    op = Framewise(call, r)
    op.args = stream_args
    return op


def mixes(gm: fx.GraphModule, node: fx.Node, why: str) -> Unstreamable:
    """The problem of a node that mixes frames: the advice for its op where there is one."""
    name = node_name(gm, node)
    if name in CANNOT_STREAM:
        why, fix = CANNOT_STREAM[name]
        pattern = _einops_pattern(gm, node)
        return Unstreamable(why + (f", pattern `{pattern}`" if pattern else ""), fix)
    return Unstreamable(why, "write this op with streamwise layers " + WINDOW_FIX)


def _einops_pattern(gm: fx.GraphModule, node: fx.Node) -> str | None:
    """The pattern of an einops layer or function call (None for other ops)."""
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        return getattr(m, "pattern", None) if type(m).__module__.startswith("einops") else None
    fn = node.target
    if getattr(fn, "__module__", "").startswith("einops") and len(node.args) > 1:
        return str(node.args[1])
    return None


def make_call(gm: fx.GraphModule, node: fx.Node, stream_args: list[fx.Node],
              info: dict[fx.Node, ValueInfo], statics: Statics) -> Call:
    """The node's own function, with its streamed inputs given per call and its sizes recomputed
    from them (``x.shape[-1]`` is the chunk's length); other streams it reads sizes from come
    from the call's ``Chunk``."""
    fn = target(gm, node)
    index = {a: i for i, a in enumerate(stream_args)}
    fast = _fast_call(fn, node, index, statics)
    if fast is not None:
        return fast

    def call(ins: list[Any], chunk: Chunk) -> Any:
        sub: dict[fx.Node, Any] = dict(zip(stream_args, ins))

        def resolve(a: fx.Node) -> Any:
            if a in sub:
                return sub[a]
            if a in statics:
                return statics.get(a)
            if info[a].kind == "shape":
                args, kwargs = fx.node.map_arg((a.args, a.kwargs), resolve)
                sub[a] = target(gm, a)(*args, **kwargs)
                return sub[a]
            value = chunk.values.get(a)
            return value if value is not None else chunk.empty(a)

        args, kwargs = fx.node.map_arg((node.args, node.kwargs), resolve)
        return fn(*args, **kwargs)

    return call


def _fast_call(fn: Callable, node: fx.Node, index: dict[fx.Node, int],
               statics: Statics) -> Call | None:
    """A call that places the streamed inputs by position, for nodes whose arguments hold no
    sizes (most of them): no graph lookups per chunk.  None where sizes must be recomputed."""
    args = [_binder(a, index, statics) for a in node.args]
    kwargs = {k: _binder(v, index, statics) for k, v in node.kwargs.items()}
    if any(b is None for b in args) or any(b is None for b in kwargs.values()):
        return None
    arg_fns = tuple(b for b in args if b is not None)
    kw_fns = tuple((k, b) for k, b in kwargs.items() if b is not None)
    if not kw_fns:
        return lambda ins, chunk: fn(*[f(ins) for f in arg_fns])
    return lambda ins, chunk: fn(*[f(ins) for f in arg_fns], **{k: f(ins) for k, f in kw_fns})


def _binder(a: Any, index: dict[fx.Node, int],
            statics: Statics) -> Callable[[list[Any]], Any] | None:
    """A function of the streamed inputs giving argument ``a`` (None if ``a`` holds sizes)."""
    if isinstance(a, fx.Node):
        if a in index:
            return operator.itemgetter(index[a])
        if a in statics:
            node = a
            return lambda ins: statics.get(node)
        return None
    if isinstance(a, (list, tuple)):
        subs = [_binder(b, index, statics) for b in a]
        if any(b is None for b in subs):
            return None
        kind = type(a)
        if all(not isinstance(b, (fx.Node, list, tuple)) for b in a):
            return lambda ins: a  # a constant sequence
        return lambda ins: kind(f(ins) for f in subs if f is not None)
    if isinstance(a, (dict, slice)) and nodes_in(a):
        return None
    return lambda ins: a


def _narrow(t: Tensor, axis: int | None, a: int, b: int) -> Tensor:
    assert axis is not None
    return t.narrow(axis, a, b - a)


def _close(a: Tensor, b: Tensor) -> bool:
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    scale = max(float(b.abs().max()) if b.numel() else 0.0, 1.0)
    tol = (1e-9 if b.dtype == torch.float64 else 1e-4) * scale
    return bool(((a - b).abs() <= tol).all()) if b.numel() else True
