"""Calls that ``torch.fx`` cannot trace into, recorded as single ops while a model is traced.

``torch.tensor`` of a traced shape, ``einops`` functions (they look up a backend by the tensor's
type, which a proxy does not have) and TorchScript functions (compiled: they reject proxies).  A
TorchScript function compiled from Python source is traced through that source instead; one
without source is one op, which the per-frame probe then checks like any other.  einops layers
and TorchScript modules are kept whole (leaves) for the same reasons.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CellType
from typing import Any

import torch
from torch import fx, nn

#: einops functions that take tensors (recorded as one op each)
_EINOPS = ("rearrange", "reduce", "repeat", "einsum", "pack", "unpack")


def is_opaque_module(m: nn.Module) -> bool:
    """A module fx cannot trace into: a TorchScript module, an einops layer."""
    return isinstance(m, torch.jit.ScriptModule) or type(m).__module__.startswith("einops.")


def graph_call(fn: Callable) -> Callable:
    """``fn``, recorded as one graph op when a traced value is among its arguments."""

    def call(*args: Any, **kwargs: Any) -> Any:
        proxy = _first_proxy((args, kwargs))
        if proxy is None:
            return fn(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", fn, args, kwargs)

    try:
        return functools.wraps(fn)(call)
    except (AttributeError, TypeError):  # compiled callables lack some attributes
        return call


def _python(fn: torch.jit.ScriptFunction) -> Callable:
    """A Python function calling the compiled ``fn`` (generated graph code refers to it as an
    object; it would spell a TorchScript function by a torch name it cannot import)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = str(getattr(fn, "name", "script"))
    call.__wrapped_script__ = fn  # type: ignore[attr-defined]
    return call


def script_of(fn: Any) -> torch.jit.ScriptFunction | None:
    """The TorchScript function a recorded call runs (None for other targets)."""
    return getattr(fn, "__wrapped_script__", None)


@contextmanager
def recorded_calls(model: nn.Module) -> Iterator[None]:
    """While tracing ``model``: ``torch.tensor``/``torch.as_tensor`` and einops functions take
    traced values; TorchScript functions the model's code calls are traced from their Python
    source (or recorded as one op).  Everything is put back afterwards."""
    saved: list[tuple[Any, str, Any]] = []

    def put(where: Any, name: str, new: Any) -> None:
        if isinstance(where, CellType):
            saved.append((where, name, where.cell_contents))
            where.cell_contents = new
        elif isinstance(where, dict):
            saved.append((where, name, where[name]))
            where[name] = new
        else:
            saved.append((where, name, getattr(where, name)))
            setattr(where, name, new)

    einops = sys.modules.get("einops")
    originals = [getattr(einops, n) for n in _EINOPS if hasattr(einops, n)] if einops else []
    for scope in _code_scopes(model):
        for name, value in list(scope.items()):
            where = value if isinstance(value, CellType) else scope
            if isinstance(value, CellType):  # a function the forward closes over
                value = value.cell_contents
            if isinstance(value, torch.jit.ScriptFunction):
                source = getattr(value, "_torchdynamo_inline", None)  # the Python it came from
                put(where, name, source if callable(source) else graph_call(_python(value)))
            elif any(value is f for f in originals):  # `from einops import rearrange`
                put(scope, name, graph_call(value))
    for name in ("tensor", "as_tensor"):
        put(torch, name, graph_call(getattr(torch, name)))
    for f in originals:  # `einops.rearrange(...)`
        put(einops, f.__name__, graph_call(f))
    try:
        yield
    finally:
        for where, name, old in reversed(saved):
            if isinstance(where, CellType):
                where.cell_contents = old
            elif isinstance(where, dict):
                where[name] = old
            else:
                setattr(where, name, old)


def _code_scopes(model: nn.Module) -> list[dict[str, Any]]:
    """Where the model's modules' code finds its helper functions: the global scopes of their
    ``forward`` methods, and the cells those close over (by the free variable's name)."""
    out: dict[int, dict[str, Any]] = {}
    for m in model.modules():
        for klass in type(m).__mro__:
            fwd = klass.__dict__.get("forward")
            scope = getattr(fwd, "__globals__", None)
            if not isinstance(scope, dict) or klass.__module__.startswith("torch."):
                continue
            out[id(scope)] = scope
            cells = getattr(fwd, "__closure__", None) or ()
            names = getattr(getattr(fwd, "__code__", None), "co_freevars", ())
            out[id(cells)] = {n: c for n, c in zip(names, cells) if _filled(c)}
    return list(out.values())


def _filled(cell: CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def _first_proxy(a: Any) -> fx.Proxy | None:
    if isinstance(a, fx.Proxy):
        return a
    if isinstance(a, (list, tuple)):
        for b in a:
            p = _first_proxy(b)
            if p is not None:
                return p
    if isinstance(a, dict):
        return _first_proxy(list(a.values()))
    return None
