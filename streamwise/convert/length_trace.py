"""Python on the sequence length while tracing: builtins recorded, length-invariant sizes folded.

Real models compute paddings and crops from the length in plain Python: ``math.ceil(n / s)``,
``max(length, 1)``, ``int(...)``, ``pad = (x.shape[-1] - y.shape[-1]) // 2``, and ``assert`` on
the results.  Two things make that traceable without freezing anything the stream cannot know:

- ``max``, ``min``, ``int`` and ``round`` called on a traced value are recorded as graph nodes
  (``recorded_builtins``), like the ``math`` functions ``torch.fx`` already records, so the
  arithmetic from ``x.shape[-1]`` to a pad amount stays in the graph and can be evaluated again
  at the stream's final length (``length_sizes``); ``isinstance(x, torch.Tensor)`` answers as
  the traced value's probe values do.
- Arithmetic on lengths alone (no data, parameters, batch or dtype) that comes out the same
  at every probe length is a constant (``Folds``; SNAC's ``pad``): the tracer checks it on
  extra probe runs, the example made longer by each of ``LENGTH_OFFSETS`` frames (different
  remainders modulo the usual strides, and a long one), and records the source line and the
  lengths in the conversion report.  So is an ``assert`` that holds at every probe (it computes
  nothing).  A comparison is never folded for an ``if``: ``if T > 4`` holds at every probe
  length and flips for short streams, so a branch on the length is refused with that reason.
"""

from __future__ import annotations

import builtins
import dis
import functools
import math
import operator
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import fx, nn

#: frames added to the example for the extra length probes: small remainders, and a long one
LENGTH_OFFSETS = (1, 2, 3, 5, 7, 11, 13, 31, 1031)

#: builtins recorded as graph nodes when they are given a traced value (``isinstance``: answered
#: from the probe values)
_RECORDED = ("max", "min", "int", "round", "isinstance")


class Folds:
    """The length-invariant values folded into constants, by source line (the report's notes)."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths  # the input's length in each probe run that changes it
        self._lines: dict[str, list[tuple[str, Any]]] = {}  # line -> (op, value) folded there

    def add(self, node: fx.Node, value: Any) -> None:
        line = source_line(node) or f"node `{node.name}`"
        op = getattr(node.target, "__name__", str(node.target))
        values = self._lines.setdefault(line, [])
        if (op, value) not in values:
            values.append((op, value))

    def notes(self) -> list[str]:
        if not self._lines:
            return []
        lengths = ", ".join(str(n) for n in sorted(set(self.lengths)))
        places = "; ".join(f"{line}: {', '.join(f'`{op}` = {v!r}' for op, v in values)}"
                           for line, values in self._lines.items())
        return [f"values computed from the sequence length were the same at every probe length "
                f"({lengths}) and are fixed: {places}; a stream is assumed to give them too"]


def source_line(node: fx.Node) -> str:
    """``file.py:line `code``` of the innermost frame of the model's own code, or ``""``."""
    lines = [ln.strip() for ln in (node.stack_trace or "").strip().splitlines() if ln.strip()]
    files = [i for i, ln in enumerate(lines) if ln.startswith("File ") and "/torch/" not in ln
             and "/streamwise/convert/" not in ln]
    if not files:
        return ""
    i = files[-1]
    parts = lines[i].split(",")
    loc = parts[0].removeprefix("File ").strip('"')  # Problem shortens it to the package's path
    line = parts[1].strip().removeprefix("line ") if len(parts) > 1 else "?"
    code = lines[i + 1] if i + 1 < len(lines) else ""
    return f"{loc}:{line} `{code}`"


#: ops whose result, the same at every probe length, is folded: arithmetic on sizes (a
#: comparison, ``min`` or ``max`` may flip at lengths shorter than the probes: a branch on it is
#: refused, an ``assert`` on it holds)
_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
               operator.mod, operator.neg, operator.pos, math.ceil, math.floor, math.trunc,
               builtins.int, builtins.round}


def is_arithmetic(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in _ARITHMETIC


def in_assert() -> bool:
    """Whether the traced code is testing the condition of an ``assert`` (its jump leads to
    raising ``AssertionError``), as opposed to an ``if`` or ``while``."""
    frame = sys._getframe(1)
    while frame is not None and ("/torch/" in frame.f_code.co_filename
                                 or "/streamwise/convert/" in frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return False
    code = list(dis.get_instructions(frame.f_code))
    at = next((i for i, ins in enumerate(code) if ins.offset == frame.f_lasti), None)
    if at is None or "JUMP" not in code[at].opname:
        return False
    after = code[at + 1].opname if at + 1 < len(code) else ""
    target = next((ins.opname for ins in code if ins.offset == code[at].argval), "")
    return "LOAD_ASSERTION_ERROR" in (after, target)


@contextmanager
def recorded_builtins(root: nn.Module) -> Iterator[None]:
    """While tracing ``root``, ``max``/``min``/``int``/``round`` in its modules' code record a
    node when given a traced value (and behave as usual otherwise)."""
    added: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for scope in _code_globals(root):
            for name in _RECORDED:
                if name not in scope:  # a module's own `max` is left alone
                    scope[name] = _WRAPPERS[name]
                    added.append((scope, name, _WRAPPERS[name]))
        yield
    finally:
        for scope, name, fn in added:
            if scope.get(name) is fn:
                del scope[name]


def _code_globals(root: nn.Module) -> Iterable[dict[str, Any]]:
    """The global namespaces of the code of every module class in ``root`` and of the functions
    that code imports (not torch's own, nor streamwise's)."""
    found: dict[int, dict[str, Any]] = {}

    def add(fn: Any) -> dict[str, Any] | None:
        scope = getattr(fn, "__globals__", None)
        if not isinstance(scope, dict) or _foreign(scope.get("__name__")) or id(scope) in found:
            return None
        found[id(scope)] = scope
        return scope

    for m in root.modules():
        for cls in type(m).__mro__:
            if _foreign(cls.__module__):
                continue
            for v in vars(cls).values():
                scope = add(getattr(v, "__func__", getattr(v, "fget", v)))
                package = cls.__module__.split(".")[0]
                for g in list(scope.values()) if scope is not None else []:
                    if callable(g) and not isinstance(g, type) and str(
                            getattr(g, "__module__", "")).split(".")[0] == package:
                        add(g)  # helpers it imports from its own package
    return found.values()


def _foreign(module: Any) -> bool:
    """Code whose builtins are left alone: torch's, streamwise's, Python's own."""
    return not isinstance(module, str) or module.split(".")[0] in (
        "torch", "streamwise", "builtins", "math", "typing", "functools")


def _first_proxy(a: Any) -> fx.Proxy | None:
    if isinstance(a, fx.Proxy):
        return a
    if isinstance(a, (list, tuple)):
        for b in a:
            if isinstance(b, fx.Proxy):
                return b
    if isinstance(a, dict):
        return _first_proxy(list(a.values()))
    return None


def _recording(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and fn in (builtins.max, builtins.min) and not isinstance(
                args[0], (fx.Proxy, str)):
            args = (list(args[0]),)  # max(iterable): a generator is read once
        proxy = next((p for p in (_first_proxy(a) for a in (*args, kwargs)) if p is not None),
                     None)
        if proxy is None:
            return fn(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", fn, args, kwargs)

    return call


class _IntMeta(type):
    """``int`` as the traced code sees it: a traced value is recorded, ``isinstance`` works."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _RECORDING_INT(*args, **kwargs)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, builtins.int)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, builtins.int)

    def __getattr__(cls, name: str) -> Any:
        return getattr(builtins.int, name)


def _isinstance(obj: Any, cls: Any) -> bool:
    """``isinstance`` of a traced value answers as its value does in every probe run (a tensor
    stays a tensor, an int an int, whatever the length)."""
    if isinstance(obj, fx.Proxy):
        known = getattr(obj.tracer, "known", {}).get(obj.node)
        values = getattr(known, "values", None)
        if values and len({type(v) for v in values}) == 1:
            return builtins.isinstance(values[0], cls)
    return builtins.isinstance(obj, cls)


_RECORDING_INT = _recording(builtins.int)
_WRAPPERS: dict[str, Any] = {
    "max": _recording(builtins.max),
    "min": _recording(builtins.min),
    "round": _recording(builtins.round),
    "int": _IntMeta("int", (), {}),
    "isinstance": _isinstance,
}
