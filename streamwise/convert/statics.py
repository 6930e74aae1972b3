"""What conversion knows of the traced graph: the probes' record of each value, and the model's
static values (weights, a weight-normalised kernel, an STFT basis) read live.

``Traced`` bundles the graph, the probes' ``ValueInfo`` per node and the live statics; every
mapping step (recognising ops, windows, pads and crops, the per-frame probe) reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from streamwise.convert.trace import Unstreamable, ValueInfo, stream_tensor, target
from streamwise.core.state import ANY


class Statics:
    """Values that do not depend on the input (weights, a weight-normalised kernel, an STFT
    basis), read live from the model: recomputed only when a parameter or buffer they come from
    changed (cast with ``.double()``, moved with ``.to()``, or updated in place by training)."""

    def __init__(self, gm: fx.GraphModule, info: dict[fx.Node, ValueInfo]) -> None:
        self.gm, self.info = gm, info
        self.nodes = {n for n, v in info.items() if v.kind == "static"}
        # each node's attribute leaves and each attribute's owner module, found once here
        self._owners = {n: _owner(gm, n) for n in self.nodes if n.op == "get_attr"}
        self._leaves = {n: self._find_leaves(n) for n in self.nodes}
        #: node -> (versions of its leaves, value): the one thing a step may write, a memo of a
        #: pure function of the parameters; an entry is replaced whole (one atomic dict store),
        #: so concurrent steps read either the old pair or the new one, never a mix
        self._cache: dict[fx.Node, tuple[tuple, Any]] = {}

    def __contains__(self, node: object) -> bool:
        return node in self.nodes

    def get(self, node: fx.Node) -> Any:
        key = tuple([_version(self._attr(leaf)) for leaf in self._leaves[node]])
        hit = self._cache.get(node)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = self._eval(node)
        self._cache[node] = (key, value)
        return value

    def _attr(self, node: fx.Node) -> Any:
        """The attribute's current value: its owner module was found once (``.double()`` and
        ``.to()`` keep modules and replace tensors), the tensor is read from its dicts."""
        module, name = self._owners[node]
        if isinstance(module, nn.Module):
            if name in module._parameters:
                return module._parameters[name]
            if name in module._buffers:
                return module._buffers[name]
        return getattr(module, name)

    def _find_leaves(self, node: fx.Node) -> list[fx.Node]:
        found, todo, seen = [], [node], set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n.op == "get_attr":
                found.append(n)
            todo.extend(a for a in n.all_input_nodes if a in self.nodes)
        return found

    def _eval(self, node: fx.Node) -> Any:
        if node.op == "get_attr":
            return self._attr(node)
        if node.op == "placeholder":
            return self.info[node].values[0]
        args, kwargs = fx.node.map_arg(
            (node.args, node.kwargs),
            lambda a: self.get(a) if a in self.nodes else self.info[a].values[0])
        with torch.no_grad():
            return target(self.gm, node)(*args, **kwargs)


def _owner(gm: fx.GraphModule, node: fx.Node) -> tuple[Any, str]:
    """The object holding attribute ``node`` and the attribute's name there."""
    *path, name = str(node.target).split(".")
    module: Any = gm
    for part in path:
        module = getattr(module, part)
    return module, name


def _version(t: Any) -> tuple:
    if not isinstance(t, Tensor):
        return (id(t),)
    try:
        version = t._version
    except RuntimeError:  # inference tensors keep no version counter
        version = -1
    return (id(t), version, t.dtype, t.device)


@dataclass(frozen=True)
class Traced:
    """The graph being converted, what the probes saw of each node, and its live statics."""

    gm: fx.GraphModule
    info: dict[fx.Node, ValueInfo]
    extra: int  # how much longer the second probe run was
    statics: Statics

    def static(self, a: Any) -> Any:
        """A value known at conversion: a constant, or a node that does not depend on the input."""
        if isinstance(a, fx.Node):
            v = self.info[a]
            if v.kind != "static":
                raise Unstreamable(f"argument `{a.name}` depends on the input",
                                   "only the data argument may stream; pass a fixed value")
            return v.values[0]
        if isinstance(a, (list, tuple)):
            return type(a)(self.static(b) for b in a)
        return a

    def live(self, a: Any) -> Callable[[], Any]:
        """A getter of a static argument's current value (None stays None)."""
        statics = self.statics
        if isinstance(a, fx.Node) and a in statics:
            return lambda: statics.get(a)
        value = self.static(a)
        return lambda: value

    def concrete(self, a: Any, run: int) -> Any:
        """An argument's value in probe run ``run`` (sizes differ between runs)."""
        return fx.node.map_arg(a, lambda n: self.info[n].values[run])

    def ndim(self, a: Any) -> int | None:
        """Rank of a streamed value's tensor (None for other values)."""
        if isinstance(a, fx.Node) and a in self.info:
            t = stream_tensor(a, self.info[a].values[0], self.gm)
            return t.dim() if t is not None else None
        return None

    def empty_shape(self, node: fx.Node) -> tuple[list[int], int | None]:
        """The node's output with no frames, and its batch axis (a window op's, as in its input)."""
        v = self.info[node]
        shape = list(v.values[0].shape)
        assert v.time_axis is not None
        shape[v.time_axis] = 0
        return shape, v.batch_axis

    def in_frame(self, a: Any) -> tuple[Any, ...]:
        """A window op's input frame shape besides batch (axis 0) and time (last), declared in
        its state; any shape where the value is laid out otherwise."""
        v = self.info[a] if isinstance(a, fx.Node) else None
        t = v.values[0] if v is not None else None
        if v is None or not isinstance(t, Tensor) or v.batch_axis != 0 or \
                v.time_axis != t.dim() - 1:
            return (ANY,)
        return tuple(t.shape[1:-1])

    def out_ndim(self, node: fx.Node) -> int:
        """Rank of the node's own output tensor (1 where it gives no tensor)."""
        t = stream_tensor(node, self.info[node].values[0], self.gm)
        return t.dim() if t is not None else 1
