"""Tracing with the example's sizes known: Python that only looks at shapes resolves at conversion.

Plain ``torch.fx`` proxies know nothing of the values they stand for, so ``if x.dim() == 2:``,
``assert x.shape[1] == C``, ``len(x.shape)`` or ``if inference:`` (a defaulted argument) stop the
trace.  This tracer runs every op as it records it, on the three probe inputs (the example, the
example made longer in time, the example with one more batch row), and so knows each value in
each run.  A size read straight from a shape (``x.dim()``, ``x.ndim``, ``x.shape[1]``,
``x.size(1)``, ``len(x.shape)``, an entry of ``torch.tensor(x.shape)``) that is the same in all
three runs follows neither time nor batch: it becomes a constant, and so does a defaulted argument.
Every other value keeps what it depends on (the input's values, parameters, the sequence length,
the batch size, the dtype or device); Python that needs a concrete one (an ``if``, ``int()``,
``len(x)``) is refused with that reason, never frozen to the example's value.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.fx import _symbolic_trace as fx_trace
from torch.fx.proxy import Attribute, TraceError
from torch.nn.utils import parametrize

from streamwise.convert.wrapped_calls import is_opaque_module
from streamwise.core.protocol import StreamingModule
from streamwise.core.torch_layers import (
    HOOK_FIX,
    HOOK_WHY,
    is_torch_layer,
    unseen_hooks,
    weight_norm_of,
)

#: what a value depends on (a value that depends on none of these is a constant)
DATA, PARAM, TIME, BATCH, META = "data", "param", "time", "batch", "meta"

#: size reads whose result, the same in every probe run, follows neither time nor batch
_SIZE_METHODS = {"dim", "ndimension", "size", "numel", "nelement"}
_SIZE_ATTRS = {"shape", "ndim"}
_META_ATTRS = {"dtype", "device", "is_cuda", "layout"}
_REPACK = {torch.tensor, torch.as_tensor, list, tuple, torch.Size}

#: why Python that needs a concrete value of something that follows time, batch, ... is refused
_WHY = {
    PARAM: ("comes from a parameter or buffer, which training can change (the stream reads them "
            "live)", "decide it from a plain Python setting of the module instead"),
    TIME: ("follows the sequence length, which a stream does not have",
           "compute with the length inside tensor ops (slices, F.pad by fixed amounts), or "
           "stream this part with sw.WindowStream"),
    BATCH: ("follows the batch size, which each stream chooses",
            "write the code for any batch (x.new_zeros(x.shape[0], ...) instead of "
            "torch.zeros(x.shape[0], ...), reshape with -1)"),
    META: ("follows the input's dtype or device, which a stream may change",
           "decide it from a plain Python setting of the module instead"),
}


class ShapeRefusal(TraceError):
    """Python that needs a concrete value the stream cannot fix: why, and what to do."""

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why)
        self.why, self.fix = why, fix


@dataclass
class _Known:
    values: list[Any] | None  # the value in each probe run (None: it could not be computed)
    deps: frozenset[str]
    size_read: bool = False  # read straight from a shape (its runs tell what it follows)


class SizedTracer(fx.Tracer):
    """torch's tracer, streamwise modules kept whole, source lines recorded; given ``runs`` (the
    probe inputs), it runs each op as it records it and folds sizes that follow neither time nor
    batch (and defaulted arguments) into constants."""

    def __init__(self, runs: list[Tensor] | None = None) -> None:
        super().__init__()
        self.record_stack_traces = True
        self.runs = runs
        self.known: dict[fx.Node, _Known] = {}
        self._inputs = 0

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, StreamingModule) or is_opaque_module(m):
            return True
        if isinstance(m, nn.modules.padding._ConstantPadNd | nn.modules.padding._ReflectionPadNd
                      | nn.modules.padding._ReplicationPadNd):
            return False  # traced through: their F.pad is recognised
        if isinstance(m, parametrize.ParametrizationList):
            return False  # traced through: the weight is computed from its originals, live
        return is_torch_layer(m)  # fx's rule, on the class before parametrize's subclass

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        hooks = unseen_hooks(m)
        if hooks and not self.is_leaf_module(m, self.path_of_module(m)):
            raise ShapeRefusal(f"{type(m).__name__} " + HOOK_WHY.format(hooks), HOOK_FIX)
        return super().call_module(m, forward, args, kwargs)

    def create_arg(self, a: Any) -> Any:
        found = weight_norm_of(self.root, a) if isinstance(a, Tensor) else None
        if found is None:
            return super().create_arg(a)
        # an old-style weight norm's stale `weight`: recomputed from g and v as its hook would
        path, hook = found
        prefix = f"{path}.{hook.name}" if path else hook.name
        v, g = (self.create_proxy("get_attr", f"{prefix}{end}", (), {}) for end in ("_v", "_g"))
        return self.create_proxy("call_function", torch._weight_norm, (v, g, hook.dim), {}).node

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def create_proxy(self, kind: str, target: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], name: str | None = None, type_expr: Any = None,
                     proxy_factory_fn: Any = None) -> Any:
        p = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if self.runs is None or not isinstance(p, fx.Proxy):
            return p
        node = p.node
        known = self._know(node)
        self.known[node] = known
        if known.deps or known.values is None:
            return p
        if kind != "placeholder":  # a placeholder stays: the forward keeps its signature
            self.graph.erase_node(node)
        return known.values[0]

    def to_bool(self, obj: fx.Proxy) -> bool:
        self.refuse(obj, "an `if`, `while` or `assert` tests")
        raise AssertionError("unreachable")

    def iter(self, obj: fx.Proxy) -> Iterator:
        n = self.length(obj, "Python iterates over")
        return (operator.getitem(obj, i) for i in range(n))

    def length(self, obj: fx.Proxy, use: str) -> int:
        """``len()`` of a shape (its rank) or of a tensor (its first axis) where it is fixed."""
        known = self.known.get(obj.node)
        if known is None or known.values is None:
            return fx.Proxy.__len__(obj)
        lens = [len(v) for v in known.values]
        if len(set(lens)) == 1:
            return lens[0]
        first = {TIME} if lens[0] != lens[1] else {BATCH}
        self.refuse(obj, use, first)
        raise AssertionError("unreachable")

    def refuse(self, obj: fx.Proxy, use: str, deps: set[str] | None = None) -> None:
        """Raise why Python cannot use ``obj`` as a concrete value."""
        known = self.known.get(obj.node)
        deps = deps or (set(known.deps) if known is not None else {DATA})
        for dep in (PARAM, TIME, BATCH, META):
            if dep in deps and DATA not in deps:
                why, fix = _WHY[dep]
                raise ShapeRefusal(f"{use} a value that {why}", fix)
        raise TraceError("symbolically traced variables cannot be used as inputs to control flow")

    def _know(self, node: fx.Node) -> _Known:
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "get_attr":
            return _Known([self._attr(str(node.target))] * 3, frozenset({PARAM}))
        deps: set[str] = set()
        for a in node.all_input_nodes:
            k = self.known.get(a)
            deps |= k.deps if k is not None else {PARAM}
        values = self._run(node)
        if values is not None and self._reads_size(node):
            follows = {TIME} if not _same(values[0], values[1]) else set()
            follows |= {BATCH} if not _same(values[0], values[2]) else set()
            return _Known(values, frozenset(follows), True)
        if node.op == "call_function" and node.target is getattr and node.args[1] in _META_ATTRS:
            deps = {META}
        if node.op == "call_module":
            deps |= {PARAM}
        return _Known(values, frozenset(deps or {DATA}))

    def _placeholder(self, node: fx.Node) -> _Known:
        target = str(node.target)
        if target.startswith("**"):
            return _Known([_NoKwargs()] * 3, frozenset())
        if target.startswith("*"):
            return _Known([_NoArgs()] * 3, frozenset())
        self._inputs += 1
        assert self.runs is not None
        if self._inputs == 1:  # the streamed input
            return _Known(list(self.runs), frozenset({DATA}))
        if node.args:  # a defaulted argument: its default is a constant
            return _Known([node.args[0]] * 3, frozenset())
        return _Known(None, frozenset({DATA}))

    def _reads_size(self, node: fx.Node) -> bool:
        """Whether the node reads sizes straight from a shape (no arithmetic on them)."""
        if node.op == "call_function" and node.target is getattr:
            return node.args[1] in _SIZE_ATTRS
        rest: Any = (node.args[1:], node.kwargs)
        if node.op == "call_method" and node.target in _SIZE_METHODS:
            return not _has_nodes(rest)
        src = node.args[0] if node.args else None
        if not (isinstance(src, fx.Node) and src in self.known and self.known[src].size_read):
            return False
        return node.op == "call_function" and (
            node.target is operator.getitem or node.target in _REPACK) and not _has_nodes(rest)

    def _attr(self, target: str) -> Any:
        obj: Any = self.root
        with _plain_modules():  # fx's patched getattr would record a node for each step
            for part in target.split("."):
                obj = getattr(obj, part)
        return obj

    def _value(self, a: fx.Node, run: int) -> Any:
        k = self.known.get(a)
        if k is None and a.op == "get_attr":  # a tensor constant fx made an attribute of
            return self._attr(str(a.target))
        if k is None or k.values is None:
            raise _Unknown
        return k.values[run]

    def _run(self, node: fx.Node) -> list[Any] | None:
        """The node's value in each probe run, computed as the model would (None if it fails)."""
        if node.op == "call_module":
            fn: Any = self.root.get_submodule(str(node.target))
        elif node.op == "call_method":
            name = str(node.target)

            def fn(obj: Any, *a: Any, **k: Any) -> Any:
                return getattr(obj, name)(*a, **k)
        else:
            fn = node.target
        out = []
        with _plain_modules(), torch.no_grad():
            for run in range(3):
                try:
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs),
                                                   functools.partial(self._value, run=run))
                    out.append(fn(*args, **kwargs))
                except Exception:  # the probes report the model's failures (``analyse``)
                    return None
        return out


class _NoKwargs(dict):
    """The empty ``**kwargs`` of a traced forward (a dict that fx keeps as one argument)."""


class _NoArgs(tuple):
    """The empty ``*args`` of a traced forward."""


class _Unknown(Exception):
    """An argument's value is not known (an earlier op failed on a probe)."""


class _Proxy(fx.Proxy):
    """A proxy whose shape, rank and ``len`` resolve where they follow neither time nor batch."""

    def __getattr__(self, k: str) -> Any:
        if k in _SIZE_ATTRS or k in _META_ATTRS:
            return self.tracer.create_proxy("call_function", getattr, (self, k), {})
        return _Attribute(self, k)

    def __len__(self) -> int:
        tracer = self.tracer
        assert isinstance(tracer, SizedTracer)
        return tracer.length(self, "Python takes len() of")

    def __index__(self) -> int:
        tracer = self.tracer
        assert isinstance(tracer, SizedTracer)
        tracer.refuse(self, "Python uses as an integer (range(), an index)")
        raise AssertionError("unreachable")


class _Attribute(Attribute, _Proxy):
    """fx's lazy attribute (a method call, ``x.T``), keeping this tracer's size handling."""

    def __getattr__(self, k: str) -> Any:
        return _Proxy.__getattr__(self, k)


class _plain_modules:
    """While an op runs on real values, modules behave as outside tracing (fx patches their
    ``__call__`` and ``__getattr__`` and sets its tracing flag)."""

    def __enter__(self) -> None:
        self._saved = (nn.Module.__call__, nn.Module.__getattr__, fx_trace._is_fx_tracing_flag)
        nn.Module.__call__ = fx_trace._orig_module_call  # type: ignore[method-assign]
        nn.Module.__getattr__ = fx_trace._orig_module_getattr  # type: ignore[method-assign]
        fx_trace._is_fx_tracing_flag = False

    def __exit__(self, *exc: object) -> None:
        call, get, flag = self._saved
        nn.Module.__call__ = call  # type: ignore[method-assign]
        nn.Module.__getattr__ = get  # type: ignore[method-assign]
        fx_trace._is_fx_tracing_flag = flag


def _has_nodes(a: Any) -> bool:
    found: list[fx.Node] = []
    fx.node.map_arg(a, found.append)
    return bool(found)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False

