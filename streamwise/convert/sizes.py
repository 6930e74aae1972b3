"""Size tracing: which streams' lengths a size computation (``x.shape[-1]``, ``x.size(2)``) reads.

A node that reads a stream's length must see that stream's frames aligned with its own inputs (the
length of the chunk is then the right one); sizes read only for the batch or channel count can
come from any chunk of that stream, or from none (empty frames).
"""

from __future__ import annotations

import operator
from typing import Any

from torch import fx

from streamwise.convert.trace import ValueInfo

Info = dict[fx.Node, ValueInfo]


def size_sources(info: Info, node: fx.Node) -> list[fx.Node]:
    """Streams whose length reaches ``node`` through size computations (``x.shape[-1]``):
    they must come in aligned.  Other sizes (the batch, channels) read from any chunk."""
    found: list[fx.Node] = []
    for a in node.all_input_nodes:
        if info[a].kind == "shape":
            for src in time_sizes(info, a):
                if src not in found:
                    found.append(src)
    return found


def time_sizes(info: Info, a: fx.Node, seen: set[fx.Node] | None = None) -> list[fx.Node]:
    """The streams whose time length the size computation ``a`` reads."""
    seen = set() if seen is None else seen
    if a in seen or info[a].kind != "shape":
        return []
    seen.add(a)
    whole = _shape_of(info, a)
    if whole is not None:  # the whole shape, used as it is: its length too
        return [whole]
    if a.op == "call_function" and a.target is operator.getitem:
        src = _shape_of(info, a.args[0]) if isinstance(a.args[0], fx.Node) else None
        if src is not None:
            idx = a.args[1]
            ndim = info[src].values[0].dim()
            axes = [idx % ndim] if isinstance(idx, int) else (
                list(range(ndim))[idx] if isinstance(idx, slice) else list(range(ndim)))
            return [src] if info[src].time_axis in axes else []
    owner: Any = a.args[0] if a.args else None
    if not (isinstance(owner, fx.Node) and info[owner].kind in ("stream", "input")):
        owner = None
    if a.op == "call_method" and a.target == "size" and len(a.args) > 1 and owner:
        dim, ndim = a.args[1], info[owner].values[0].dim()
        return [owner] if not isinstance(dim, int) or (
            dim % ndim == info[owner].time_axis) else []
    if a.op == "call_method" and a.target == "numel" and owner:
        return [owner]
    out: list[fx.Node] = []
    for b in a.all_input_nodes:
        out.extend(time_sizes(info, b, seen))
    return out


def _shape_of(info: Info, a: Any) -> fx.Node | None:
    """The stream whose whole shape ``a`` is (``x.shape`` or ``x.size()``), else None."""
    if not isinstance(a, fx.Node):
        return None
    src = a.args[0] if a.args else None
    is_shape = ((a.op == "call_function" and a.target is getattr and len(a.args) > 1
                 and a.args[1] == "shape")
                or (a.op == "call_method" and a.target == "size" and len(a.args) == 1))
    if is_shape and isinstance(src, fx.Node) and info[src].kind in ("stream", "input"):
        return src
    return None
