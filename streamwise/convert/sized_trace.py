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

from streamwise.convert.decompose import AS_IT_IS, DECOMPOSED
from streamwise.convert.length_trace import Folds, in_assert, is_arithmetic, source_line
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

    def __init__(self, runs: list[Tensor] | None = None, branches: bool = False) -> None:
        super().__init__()
        self.record_stack_traces = True
        self.runs = runs
        self.known: dict[fx.Node, _Known] = {}
        self._inputs = 0
        self.branches = branches  # streams have a minimum length: fold branches on the length
        self.failure: tuple[fx.Node, Exception] | None = None  # the first op a probe failed at
        n = len(runs) if runs is not None else 0
        #: the runs that change the length (the longer probe and the extra length probes)
        self._time_runs = [i for i in range(1, n) if i != 2]
        self.folds = None if runs is None or n < 2 else Folds(
            [_length(runs[1], runs[0])] + [_length(runs[0], runs[i]) for i in self._time_runs])

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
        if kind == "call_function" and target in DECOMPOSED:
            out = DECOMPOSED[target](*args, **kwargs)  # recorded as the ops it is made of
            if out is not AS_IT_IS:
                return out
        p = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if self.runs is None or not isinstance(p, fx.Proxy):
            return p
        node = p.node
        known = self._know(node)
        self.known[node] = known
        if known.deps == {TIME} and is_arithmetic(node) and self._same_at_every_length(known):
            assert self.folds is not None and known.values is not None
            self.folds.add(node, known.values[0])  # a size that does not follow the length
            known = self.known[node] = _Known(known.values, frozenset())
        if known.deps or known.values is None:
            return p
        if kind != "placeholder":  # a placeholder stays: the forward keeps its signature
            self.graph.erase_node(node)
        return known.values[0]

    def to_bool(self, obj: fx.Proxy) -> bool:
        known = self.known.get(obj.node)
        if (known is not None and known.values is not None and known.deps <= {TIME, PARAM}
                and in_assert() and all(v is not _MISSING and bool(v) for v in known.values)):
            assert self.folds is not None  # an assert that holds at every probe: it computes
            self.folds.add(obj.node, True)  # nothing, so it is not checked while streaming
            return True
        if (known is not None and known.values is not None and known.deps == {TIME}
                and self.branches and len({bool(v) for v in known.values}) == 1
                and all(v is not _MISSING for v in known.values)):
            assert self.folds is not None  # the same way at every length, the shortest included
            self.folds.add(obj.node, bool(known.values[0]))
            return bool(known.values[0])
        if (known is not None and known.values is not None and known.deps == {TIME}
                and len({bool(v) for v in known.values}) == 1):
            why, fix = _WHY[TIME]  # one way at every probe: it may only flip for short streams
            raise ShapeRefusal(
                f"an `if`, `while` or `assert` tests a value that {why} (it is "
                f"{bool(known.values[0])} at every probe length)",
                f"{fix}; or, if streams are always long enough for it to go this way, convert "
                "with min_length=N (`streamwise convert --min-length N`)")
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
        failed = ""
        if known is not None and known.values is None and self.failure is not None:
            node, e = self.failure  # the value is unknown: an op before it failed on a probe
            where = source_line(node) or f"node `{node.name}`"
            failed = f" (not known: the model fails at {where} on a probe: {type(e).__name__}: {e})"
        for dep in (PARAM, TIME, BATCH, META):
            if dep in deps and DATA not in deps:
                why, fix = _WHY[dep]
                raise ShapeRefusal(f"{use} a value that {why}{failed}", fix)
        raise TraceError("symbolically traced variables cannot be used as inputs to control flow")

    def _know(self, node: fx.Node) -> _Known:
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "get_attr":
            return _Known([self._attr(str(node.target))] * self._n, frozenset({PARAM}))
        deps: set[str] = set()
        for a in node.all_input_nodes:
            k = self.known.get(a)
            deps |= k.deps if k is not None else {PARAM}
        values = self._run(node)
        if values is not None and self._reads_size(node):
            follows = {TIME} if any(values[i] is not _MISSING and not _same(values[0], values[i])
                                    for i in self._time_runs) else set()
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
            return _Known([_NoKwargs()] * self._n, frozenset())
        if target.startswith("*"):
            return _Known([_NoArgs()] * self._n, frozenset())
        self._inputs += 1
        assert self.runs is not None
        if self._inputs == 1:  # the streamed input
            return _Known(list(self.runs), frozenset({DATA}))
        if node.args:  # a defaulted argument: its default is a constant
            return _Known([node.args[0]] * self._n, frozenset())
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
        if k is None or k.values is None or k.values[run] is _MISSING:
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
            for run in range(self._n):
                try:
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs),
                                                   functools.partial(self._value, run=run))
                    out.append(fn(*args, **kwargs))
                except Exception as e:  # the probes report the model's failures (``analyse``)
                    if run < 3:
                        self.failure = self.failure or (node, e)
                        return None
                    out.append(_MISSING)  # an extra length the model does not take
        return out

    @property
    def _n(self) -> int:
        return len(self.runs) if self.runs is not None else 0

    def _same_at_every_length(self, known: _Known) -> bool:
        """A Python number computed from lengths that is the same in every run (the extra length
        probes included, all of which must have run)."""
        v = known.values
        return (v is not None and len(v) > 3 and isinstance(v[0], int | float | bool)
                and not isinstance(v[0], Tensor)
                and all(x is not _MISSING and type(x) is type(v[0]) and x == v[0] for x in v))


def _length(a: Tensor, b: Tensor) -> int:
    """``b``'s length on the axis where it differs from ``a`` (the time axis)."""
    return next((m for n, m in zip(a.shape, b.shape) if n != m), b.shape[-1] if b.dim() else 0)


#: the value in an extra length probe run the model failed on
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


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

